"""A report shown as page images, for the people who sign it: the PDF the renderer makes of
the document (the draft's, or the issued file), each page to PNG by poppler's `pdftoppm` in a
subprocess with a timeout. The PNGs are kept by content hash in a private folder under VAR_DIR
(not MEDIA_ROOT: they show partner data, and only the team's console serves them)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from reports.models import Report
from reports.rendering import render_pdf
from validation.storage import media_path

PDFTOPPM_SECONDS = 60
RESOLUTION_DPI = 96  # an A4 page 794 px wide: the width the console shows it at


class PageImageError(RuntimeError):
    """The pages could not be made (poppler missing, too slow, or refused the PDF)."""


def _cache_root() -> Path:
    return Path(settings.VAR_DIR) / "cache" / "report-pages"


def report_page_key(report: Report) -> str:
    """What the images show: the issued PDF's hash once issued, else the draft's content."""
    if report.issued_at and report.pdf_sha256:
        return f"pdf-{report.pdf_sha256}"
    return f"draft-{report.content_sha256}"


def report_page_images_made(report: Report) -> list[Path]:
    """The report's page images if they are made already (none: not yet). Raises
    PageImageError when the last attempt to make them failed (its reason kept beside)."""
    folder = _cache_root() / report_page_key(report)
    failed = folder.with_suffix(".failed")
    if failed.exists():
        raise PageImageError(failed.read_text())
    return sorted(folder.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[1]))


def report_page_images(report: Report) -> list[Path]:
    """The report's pages as PNG files, first to last: made once per content hash (seconds for
    a draft: it is rendered; on a reports worker, `reports.services.report_pages_make`), then
    read from the cache. Raises PageImageError, and keeps its reason for the readers."""
    pages = report_page_images_made(report)
    if pages:
        return pages
    folder = _cache_root() / report_page_key(report)
    try:
        return _make(report, folder)
    except PageImageError as exc:
        folder.with_suffix(".failed").write_text(str(exc))
        raise


def _make(report: Report, folder: Path) -> list[Path]:
    if report.issued_at and report.pdf_path:
        try:
            pdf = media_path(report.pdf_path).read_bytes()
        except OSError as exc:
            raise PageImageError(
                f"the issued PDF is missing from storage ({report.pdf_path}); "
                "restore it from the backup: its SHA-256 is on this page"
            ) from exc
    else:
        pdf = render_pdf(report.document)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pages-", dir=folder.parent))
    try:
        (staging / "report.pdf").write_bytes(pdf)
        _pdftoppm(staging / "report.pdf", staging / "page")
        (staging / "report.pdf").unlink()
        for made in staging.glob("page-*.png"):  # pdftoppm pads the number: page-01.png
            made.rename(staging / f"page-{int(made.stem.split('-')[1])}.png")
        try:
            os.rename(staging, folder)  # atomic: a reader sees all the pages or none
        except OSError:
            if not folder.is_dir():  # not simply made meanwhile by another request
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(folder.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[1]))


def _pdftoppm(pdf: Path, prefix: Path) -> None:
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise PageImageError("poppler's pdftoppm is not installed (scripts/system-packages.txt).")
    try:
        subprocess.run(
            [tool, "-png", "-r", str(RESOLUTION_DPI), str(pdf), str(prefix)],
            check=True,
            capture_output=True,
            timeout=PDFTOPPM_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise PageImageError("Making the page images took too long.") from exc
    except subprocess.CalledProcessError as exc:
        raise PageImageError("The report's PDF could not be turned into page images.") from exc
