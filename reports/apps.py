from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The issue task registers under its stable name, which `report_sign` queues it by.
        from reports import tasks  # noqa: F401
