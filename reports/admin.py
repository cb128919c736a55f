from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from reports.models import Report, Signature


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    # The document holds the Grad-CAM exemplars (case-level images of partner data); reading
    # them is an audited download (reports.services.report_download), never an admin page.
    exclude = ["document"]


admin.site.register(Signature, ReadOnlyAdmin)
