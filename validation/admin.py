from django.contrib import admin
from django.db.models import Model

from audit.admin import ReadOnlyAdmin
from validation import models

# The admin reads; services write. Every domain model here is read-only, grants and
# memberships included: a change made here would bypass the services and their audit events
# (a grant's run cap or scope changed with no trace in the record).
read_only: tuple[type[Model], ...] = (
    models.Organisation,
    models.Membership,
    models.Dataset,
    models.DatasetGrant,
    models.ModelPackage,
    models.DatasetVersion,
    models.Protocol,
    models.ValidationRun,
    models.MetricResult,
)
admin.site.register(read_only, ReadOnlyAdmin)

# Case-level rows (cases with their labels, predictions, Grad-CAM maps) are not browsable here:
# every read of case-level data is an audit event (CASE_DATA_VIEWED), which a page of the admin
# would not write.
