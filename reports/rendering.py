"""Reproducible PDF rendering of a report document (canonical JSON: reports.canonical).

No database and no Django settings are needed: the template runs on a standalone Django
``Engine`` with autoescaping on, and every number reaches the template through one of the
formatting filters below (a bare number would be localised through settings).

The renderer fetches nothing: ``DataOnlyURLFetcher`` serves ``data:`` URLs only and makes any
other fetch abort the render, so a hostile package or dataset name cannot pull a local file or a
network resource into an issued PDF.

PDF metadata: ``/Title`` names the report id and version, ``/Subject`` and ``/Keywords`` carry
the document SHA-256, and custom info entries carry ``/blindspotreportid``,
``/blindspotreportversion``, ``/blindspotdocumentsha256``, ``/blindspotservicesignature``,
``/blindspotpublickeyfingerprint`` and ``/blindspotsignatures`` (canonical JSON of the
signature list).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import weasyprint
from django.template import Context, Engine
from weasyprint.urls import FatalURLFetchingError, URLFetcherResponse

from reports import plots
from reports.canonical import (  # noqa: F401 (re-exported: the rendering API)
    UNHASHED_KEYS,
    canonical_json,
    content_sha256,
    document_sha256,
)
from reports.numbers import is_number, level_label
from reports.template_filters import register, sanitise, text

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAME = "reports/report.html"
# A comparison report (document["report"]["kind"] == "comparison"): same stylesheet and filters.
COMPARISON_TEMPLATE_NAME = "reports/comparison.html"
STYLESHEET_PATH = TEMPLATE_DIR / "reports" / "report.css"

_MAX_DATA_URL_BYTES = 32 * 1024 * 1024


class ReportRenderError(RuntimeError):
    """The document could not be rendered (for example, it referenced a non-``data:`` URL)."""


class URLRefused(ValueError):
    """Raised by ``DataOnlyURLFetcher`` for any URL that is not a ``data:`` URL."""


# --------------------------------------------------------------------------- URL fetching


class DataOnlyURLFetcher(weasyprint.URLFetcher):
    """WeasyPrint URL fetcher that decodes ``data:`` URLs itself and refuses everything else.

    It never reaches the parent's file, FTP or HTTP handlers. ``fail_on_errors`` makes a
    refused URL abort the render instead of being logged and skipped.
    """

    def __init__(self) -> None:
        super().__init__(
            allowed_protocols=frozenset({"data"}), allow_redirects=False, fail_on_errors=True
        )

    def fetch(self, url: str, headers: Mapping | None = None) -> URLFetcherResponse:
        return _fetch_data_url(url)


def _fetch_data_url(url: str) -> URLFetcherResponse:
    if not isinstance(url, str) or not url[:5].lower() == "data:":
        raise URLRefused(f"Only data: URLs may be fetched, refused {str(url)[:80]!r}")
    header, separator, payload = url[5:].partition(",")
    if not separator:
        raise URLRefused("Malformed data: URL (no comma).")
    parameters = [part.strip() for part in header.split(";")]
    is_base64 = bool(parameters) and parameters[-1].lower() == "base64"
    if is_base64:
        parameters = parameters[:-1]
    media_type = parameters[0] if parameters and parameters[0] else "text/plain"
    raw = unquote_to_bytes(payload)
    if is_base64:
        try:
            body = base64.b64decode(raw, validate=True)
        except binascii.Error as error:
            raise URLRefused("Malformed base64 in data: URL.") from error
    else:
        body = raw
    if len(body) > _MAX_DATA_URL_BYTES:
        raise URLRefused("data: URL too large.")
    content_type = ";".join([media_type, *parameters[1:]])
    return URLFetcherResponse(url, body, headers={"Content-Type": content_type})


# --------------------------------------------------------------------------- rendering


@functools.cache
def _engine() -> Engine:
    engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=True, debug=False)
    engine.template_builtins.append(register)
    return engine


@functools.cache
def _stylesheet_text() -> str:
    return STYLESHEET_PATH.read_text(encoding="utf-8")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _section(document: Mapping, key: str) -> Mapping:
    value = document.get(key)
    return value if isinstance(value, Mapping) else {}


def _figures(document: Mapping) -> dict[str, str | None]:
    primary = _section(document, "primary")
    roc = _section(primary, "roc")
    metrics = _section(primary, "metrics")
    figures: dict[str, str | None] = {"roc": None, "forest": None, "calibration": None}
    calibration = _section(document, "calibration")
    if isinstance(calibration.get("bins"), list):
        figures["calibration"] = plots.calibration_plot(calibration["bins"])
    auc = _section(primary, "auc")
    if roc.get("fpr") and roc.get("tpr"):
        sensitivity = metrics.get("sensitivity") or {}
        specificity = metrics.get("specificity") or {}
        operating_point = None
        if is_number(sensitivity.get("estimate")) and is_number(specificity.get("estimate")):
            operating_point = (1 - specificity["estimate"], sensitivity["estimate"])
        figures["roc"] = plots.roc_plot(
            roc["fpr"], roc["tpr"], float(auc.get("estimate") or 0.0), operating_point
        )
    subgroups = document.get("subgroups")
    if isinstance(subgroups, list) and subgroups:
        reference = (metrics.get("sensitivity") or {}).get("estimate")
        figures["forest"] = plots.forest_plot(
            subgroups, metric="sensitivity", reference=reference if is_number(reference) else None
        )
    return figures


def _integrity_check(document: Mapping) -> dict[str, Any]:
    """Which part of this document the recorded hashes cover, and whether they match it.

    Both conventions occur: a hash over everything but ``integrity`` (signatures included)
    and a content hash that also leaves out ``signatures``.
    """
    integrity = _section(document, "integrity")
    content = content_sha256(dict(document))
    signed = document_sha256({k: v for k, v in document.items() if k != "integrity"})
    claimed = integrity.get("document_sha256")
    if not claimed:
        ok, message = False, "No hash recorded; computed over the content at rendering (draft)."
    elif claimed == signed and "signatures" in document:
        ok, message = (
            True,
            "Covers this document, signatures included, without its integrity block.",
        )
    elif claimed == content:
        ok, message = True, "Covers this document without its integrity and signatures blocks."
    else:
        ok, message = False, "Does NOT match this document's content."
    recorded_content = integrity.get("content_sha256")
    return {
        "document_hash": claimed or content,
        "ok": ok,
        "message": message,
        "content_status": None
        if not recorded_content
        else ("match" if recorded_content == content else "mismatch"),
    }


def _context(document: Mapping, check: Mapping[str, Any]) -> dict[str, Any]:
    identity = _section(document, "identity")
    report = _section(document, "report")
    sandbox = _section(identity, "sandbox")
    protocol_id = _section(identity, "protocol")
    run = _section(identity, "run")
    locked_at, started_at = (
        _parse_time(protocol_id.get("locked_at")),
        _parse_time(run.get("started_at")),
    )
    lock_before_run = None
    if locked_at is not None and started_at is not None:
        try:
            lock_before_run = locked_at <= started_at
        except TypeError:  # naive vs aware timestamps
            lock_before_run = None
    signatures = document.get("signatures")
    if not isinstance(signatures, list):
        signatures = []
    given = {s.get("meaning") for s in signatures if isinstance(s, Mapping)}
    required = report.get("required_signatures")
    required = [text(m) for m in required] if isinstance(required, list) else []
    missing = [m for m in required if m not in given]  # in signing order (review first)
    document_hash = check["document_hash"]
    confidence = _section(document, "protocol").get("confidence_level")
    return {
        "doc": document,
        "missing_signatures": missing,
        "figures": _figures(document),
        "unsandboxed": sandbox.get("enabled") is not True,
        "lock_before_run": lock_before_run,
        "document_hash": document_hash,
        "integrity_check": check,
        "ci_label": level_label(confidence),
        "metric_labels": [
            ("sensitivity", "Sensitivity"),
            ("specificity", "Specificity"),
            ("ppv", "PPV"),
            ("npv", "NPV"),
            ("accuracy", "Accuracy"),
        ],
        "subgroup_metric_keys": ["sensitivity", "specificity", "auc"],
        "meta": {
            "title": f"Blindspot validation report {text(report.get('id'))} "
            f"version {text(report.get('version'))}",
            "subject": f"Validation report {text(report.get('id'))}; "
            f"document SHA-256 {document_hash}",
            "keywords": ", ".join(
                [
                    "Blindspot",
                    "validation report",
                    f"report {text(report.get('id'))}",
                    f"version {text(report.get('version'))}",
                    f"sha256 {document_hash}",
                    *(
                        f"signed by {text(s.get('name'))} as {text(s.get('role'))} "
                        f"at {text(s.get('signed_at'))}".replace(",", ";")
                        for s in signatures
                        if isinstance(s, Mapping)
                    ),
                ]
            ),
            "generator": f"Blindspot {text((identity.get('software') or {}).get('blindspot'))}",
            "timestamp": _pdf_timestamp(report),
            "signatures_json": canonical_json({"signatures": signatures}).decode("utf-8"),
        },
    }


def _pdf_timestamp(report: Mapping) -> str | None:
    """The W3C timestamp WeasyPrint writes as creation and modification date."""
    moment = _parse_time(report.get("issued_at")) or _parse_time(report.get("generated_at"))
    if moment is None or moment.tzinfo is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def render_html(document: dict) -> str:
    """The report as an HTML string (the input to ``render_pdf``)."""
    if not isinstance(document, Mapping):
        raise TypeError("A report document must be a mapping.")
    # Render from the canonical form (sorted keys, rounded floats), so two documents with the
    # same hash give the same PDF even after a JSONB round trip has reordered their keys.
    canonical = json.loads(canonical_json(document))
    context = _context(sanitise(canonical), _integrity_check(canonical))
    template = TEMPLATE_NAME
    if _section(canonical, "report").get("kind") == "comparison":
        template = COMPARISON_TEMPLATE_NAME
        context.update(_comparison_context(context["doc"], context["meta"]))
    return _engine().get_template(template).render(Context(context, autoescape=True))


def _comparison_context(document: Mapping, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the comparison template needs beyond the shared context (title, sandbox)."""
    report = _section(document, "report")
    packages = _section(document, "packages")
    return {
        "unsandboxed": any(
            _section(_section(packages, role), "run").get("sandboxed") is not True
            for role in ("baseline", "candidate")
        ),
        "metric_keys": ["auc", "sensitivity", "specificity"],
        "subgroup_keys": ["sensitivity", "specificity", "auc"],
        "agreement_tables": [
            ("Positives (sensitivity)", "positives"),
            ("Negatives (specificity)", "negatives"),
        ],
        "meta": {
            **meta,
            "title": f"Blindspot comparison report {text(report.get('id'))} "
            f"version {text(report.get('version'))}",
        },
    }


_EPOCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _source_date_epoch(moment: datetime | None) -> Iterator[None]:
    """Pin SOURCE_DATE_EPOCH so a fontTools subsetting fallback writes a fixed font timestamp.

    With HarfBuzz subsetting (libharfbuzz-subset0) the fonts keep their original timestamps
    and this is a no-op in effect. os.environ is process-wide, hence the lock.
    """
    with _EPOCH_LOCK:
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        if previous is None:
            epoch = int(moment.timestamp()) if moment and moment.tzinfo else 0
            os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("SOURCE_DATE_EPOCH", None)


def render_pdf(document: dict) -> bytes:
    """Render a report document to PDF bytes; the same document gives the same bytes.

    The PDF's first /ID is derived from the content hash, its dates from the report's
    ``issued_at`` (or ``generated_at``). Raises ``ReportRenderError`` if the template tried
    to load anything other than a ``data:`` URL, ``ValueError`` for NaN or non-JSON values.
    """
    html = render_html(document)
    fetcher = DataOnlyURLFetcher()
    identifier = content_sha256(dict(document))[:32].encode("ascii")
    report = _section(document, "report")
    moment = _parse_time(report.get("issued_at")) or _parse_time(report.get("generated_at"))
    try:
        with _source_date_epoch(moment):
            return weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(
                stylesheets=[weasyprint.CSS(string=_stylesheet_text(), url_fetcher=fetcher)],
                pdf_identifier=identifier,
                custom_metadata=True,
            )
    except FatalURLFetchingError as error:
        # FatalURLFetchingError is a BaseException; callers (and Celery) expect an Exception.
        raise ReportRenderError(str(error)) from error.__cause__
