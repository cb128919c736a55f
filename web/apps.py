from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Blindspot web application"

    def ready(self) -> None:
        from web import signals  # noqa: F401  (sign-in, sign-out and lockout into the record)
