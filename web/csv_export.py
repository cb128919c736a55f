"""CSV downloads that a spreadsheet opens safely, streamed row by row."""

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse


def csv_cell(value) -> str:
    """A cell a spreadsheet will not run: text starting = + - @ (or a tab or carriage return)
    gets a leading apostrophe."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The header, then each row, every cell through `csv_cell`."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(csv_cell(v) for v in row)


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable]):
    """A streamed attachment of `rows` under `header`."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
