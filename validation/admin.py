from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from validation import models

for model in (models.Organisation, models.Membership, models.Dataset, models.DatasetGrant):
    admin.site.register(model)

# Content-addressed, sealed, locked or case-level: superusers may look, never edit here.
for model in (
    models.ModelPackage,
    models.DatasetVersion,
    models.Case,
    models.Protocol,
    models.ValidationRun,
    models.Prediction,
    models.Explanation,
    models.MetricResult,
):
    admin.site.register(model, ReadOnlyAdmin)
