"""The bound on what a refusal may quote back of its input (issue 14, item 8): a 1 MB manifest
name must not become a 1 MB answer. Shared by the package format and the server's errors."""

ECHO_CHARS = 200


def bounded(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis and the original length when cut.
    Deterministic, so an audit payload built from it hashes the same every time."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"
