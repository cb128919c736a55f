from django.apps import AppConfig


class ValidationConfig(AppConfig):
    name = "validation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The tasks register under their stable names, which services queue them by; the worker
        # lifecycle connects the GPU worker's signals.
        from validation import tasks, worker_lifecycle  # noqa: F401
