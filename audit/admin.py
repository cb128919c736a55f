from django.contrib import admin
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from audit.services import audit_refusal


class ReadOnlyAdmin(admin.ModelAdmin):
    """For the record and every domain model: superusers may look, nobody may change (services
    own every write and its audit event). An attempted write is refused (403) and recorded."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST":
            self._refuse(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST":
            self._refuse(request)
        return super().delete_view(request, object_id, extra_context)

    def _refuse(self, request):
        answer = {"detail": "The admin is read-only; changes go through the services."}
        audit_refusal(
            actor=request.user, method="POST", path=request.path[:500], status=403, answer=answer
        )
        raise PermissionDenied(answer["detail"])


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "at", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action"]
