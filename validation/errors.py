class ApplicationError(Exception):
    """A refusal whose message is safe to show the person who asked (becomes a 4xx)."""

    status_code = 400

    def __init__(
        self, message: str, *, errors: list[str] | None = None, status_code: int | None = None
    ):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if status_code is not None:
            self.status_code = status_code


class PermissionDenied(ApplicationError):
    status_code = 403
