from django.contrib import admin
from django.db.models import Model

from audit.admin import ReadOnlyAdmin
from validation import models

editable: tuple[type[Model], ...] = (
    models.Organisation,
    models.Membership,
    models.Dataset,
    models.DatasetGrant,
)
admin.site.register(editable)

# Content-addressed, sealed, locked or case-level: superusers may look, never edit here.
read_only: tuple[type[Model], ...] = (
    models.ModelPackage,
    models.DatasetVersion,
    models.Case,
    models.Protocol,
    models.ValidationRun,
    models.Prediction,
    models.Explanation,
    models.MetricResult,
)
admin.site.register(read_only, ReadOnlyAdmin)
