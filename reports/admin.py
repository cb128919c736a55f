from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from reports.models import Report, Signature

admin.site.register(Report, ReadOnlyAdmin)
admin.site.register(Signature, ReadOnlyAdmin)
