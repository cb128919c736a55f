"""The bound on what a refusal may quote back of its input (issue 14, item 8): a 1 MB manifest
name must not become a 1 MB answer. Shared by the package format and the server's errors."""

ECHO_CHARS = 200


def bounded(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis and the original length when cut, and
    any NUL character written out as `\\u0000`: a refusal's answer goes to the audit record,
    and PostgreSQL's jsonb cannot store U+0000. Deterministic, so an audit payload built from it
    hashes the same every time."""
    text = str(text).replace("\x00", "\\u0000")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"
