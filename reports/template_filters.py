"""Display filters for the report template: every number and string reaches the page through
one of these (fixed formats, no locale), and text is made visibly safe (bidi controls shown,
not applied)."""

from __future__ import annotations

import numbers
import unicodedata
from collections.abc import Mapping
from typing import Any

from django.template import Library
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

from reports import comparison_prose, prose
from reports.numbers import MISSING as _MISSING
from reports.numbers import fixed3, interval_range, is_number, level_label, p_value
from validation import study_card as _study_card

register = Library()

FINDING_KINDS = {
    "criterion": "Criterion",
    "subgroup": "Subgroup",
    "disparity": "Disparity",
    "not_judgeable": "Not judgeable",
    "calibration": "Calibration",
    "localisation": "Localisation",
}


def _missing(value: Any) -> bool:
    return value is None or value == ""


@register.filter
def text(value: Any) -> str:
    """Any scalar as display text: numbers stay unlocalised, missing values become a dash."""
    if _missing(value):
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if is_number(value):
        return f"{float(value):.10g}"
    return str(value)


@register.filter
def clip(value: Any, limit: int) -> str:
    """Shorten display text to ``limit`` characters with an ellipsis (for titles and headers)."""
    value = str(value)
    return (
        value if len(value) <= int(limit) else value[: int(limit) - 1] + "\N{HORIZONTAL ELLIPSIS}"
    )


@register.filter
def num3(value: Any) -> str:
    """A number to 3 decimals; an interval record as ``ci`` writes it."""
    if isinstance(value, Mapping):
        return ci(value)
    return fixed3(value)


@register.filter
def pvalue(value: Any) -> str:
    """``p = 0.048`` or ``p < 0.001``: every p-value in the report goes through this."""
    return p_value(value)


@register.filter
def count(value: Any) -> str:
    if not is_number(value):
        return _MISSING if _missing(value) else str(value)
    return str(int(value))


@register.filter
def seconds(value: Any) -> str:
    if not is_number(value):
        return _MISSING if _missing(value) else str(value)
    return f"{float(value):.2f} s"


@register.filter
def ci(interval: Any) -> str:
    """``{estimate, lower, upper[, level]}`` as ``0.842 (95% CI 0.781–0.903)``."""
    if not isinstance(interval, Mapping) or not is_number(interval.get("estimate")):
        return _MISSING
    estimate = num3(interval["estimate"])
    lower, upper = interval.get("lower"), interval.get("upper")
    if not (is_number(lower) and is_number(upper)):
        return estimate
    label = level_label(interval.get("level"))
    return f"{estimate} ({label} {_range(lower, upper)})"


def _range(lower: float, upper: float) -> str:
    return interval_range(lower, upper)


@register.filter
def ci_range(interval: Any) -> str:
    """``{lower, upper}`` as ``(0.781–0.903)``, for tables whose header names the CI."""
    if not isinstance(interval, Mapping):
        return ""
    lower, upper = interval.get("lower"), interval.get("upper")
    if not (is_number(lower) and is_number(upper)):
        return ""
    return f"({_range(lower, upper)})"


@register.filter
def percent(value: Any) -> str:
    if not is_number(value):
        return _MISSING if _missing(value) else str(value)
    return f"{float(value) * 100:g}%"


@register.filter
def requirement(criterion: Any) -> str:
    """A criterion's requirement without its endpoint: ``lower 95% bound ≥ 0.750``."""
    return prose.requirement(criterion) if isinstance(criterion, Mapping) else _MISSING


@register.filter
def endpoint(criterion: Any) -> str:
    """What a criterion measures: ``AUC``, ``manufacturer: TPR difference``."""
    return prose.endpoint(criterion) if isinstance(criterion, Mapping) else _MISSING


@register.filter
def finding(criterion: Any) -> str:
    """The sentence for a failed or borderline criterion; empty for a clear pass."""
    return (prose.criterion_finding(criterion) or "") if isinstance(criterion, Mapping) else ""


@register.filter
def borderline(criterion: Any) -> bool:
    return isinstance(criterion, Mapping) and prose.borderline(criterion)


@register.filter
def calibration_meaning(calibration: Any) -> str:
    return (
        (prose.calibration_meaning(calibration) or "") if isinstance(calibration, Mapping) else ""
    )


@register.filter
def localisation_meaning(localisation: Any) -> str:
    if not isinstance(localisation, Mapping):
        return ""
    return prose.localisation_meaning(localisation) or ""


@register.filter
def verdict(value: Any) -> str:
    """``PASS``, ``FAIL`` or ``NOT JUDGEABLE`` for a verdict, a criterion's ``passed``, or a
    criterion itself (one the data could not decide is never a pass or a fail)."""
    if isinstance(value, Mapping):
        if value.get("judgeable") is False:
            return "NOT JUDGEABLE"
        value = value.get("passed")
    if value is True:
        return "PASS"
    if value is False:
        return "FAIL"
    return text(value).upper()


@register.filter
def verdict_class(value: Any) -> str:
    """The badge's class for what ``verdict`` prints: pass, fail or undecided."""
    shown = verdict(value)
    return {"PASS": "pass", "NOT JUDGEABLE": "undecided"}.get(shown, "fail")


@register.filter
def finding_kind(value: Any) -> str:
    """A finding's kind (``reports.findings.KINDS``) in words."""
    return FINDING_KINDS.get(str(value), text(value))


@register.filter
def image_uri(value: Any) -> str:
    """The value if it is a base64 PNG or SVG ``data:`` URI, else an empty string."""
    if isinstance(value, str) and value.startswith(
        ("data:image/png;base64,", "data:image/svg+xml;base64,")
    ):
        return value
    return ""


@register.filter
def describe(value: Any) -> str:
    """Free-form values (a policy string, a list, a small mapping) as one line of text."""
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {describe(item)}" for key, item in value.items()) or _MISSING
    if isinstance(value, list | tuple):
        return ", ".join(describe(item) for item in value) or "none"
    return text(value)


@register.filter
def is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


@register.filter
def break_at_dots(value: Any) -> str:
    """An identifier (``dataset_version.imported``) that may wrap only after its dots."""
    escaped = conditional_escape(text(value))
    return mark_safe(escaped.replace(".", ".<wbr>"))  # noqa: S308 (escaped above)


@register.filter
def timestamp(value: Any) -> str:
    """An ISO timestamp that may wrap between its date and its time, never inside either."""
    return text(value).replace("T", " ", 1) if isinstance(value, str) else text(value)


@register.filter
def get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


# --------------------------------------------------------------------------- sanitising

# Bidi controls would let a hostile name display reversed (U+202E "RLO" turns "fdp.exe" into
# "exe.pdf"); other control characters have no business in a report. Both are shown as
# visible code points instead of being applied.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _visible_text(value: str) -> str:
    if value.isascii() and value.isprintable():
        return value
    out = []
    for char in value:
        if char in _BIDI_CONTROLS or (unicodedata.category(char) == "Cc" and char not in "\n\t"):
            out.append(f"[U+{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


def sanitise(value: Any) -> Any:
    if isinstance(value, str):
        return _visible_text(value)
    if isinstance(value, Mapping):
        return {key: sanitise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [sanitise(item) for item in value]
    return value


@register.filter
def study_design_sentences(study_design: Any) -> list[str]:
    """The study design section's sentences, from the frozen study card's entries only."""
    card = study_design.get("card") if isinstance(study_design, Mapping) else None
    return _study_card.study_design_prose(card) if isinstance(card, Mapping) else []


@register.filter
def study_card_rows(study_design: Any) -> list[dict]:
    """The study card's entries as rows (label, text or items; missing ones flagged)."""
    card = study_design.get("card") if isinstance(study_design, Mapping) else None
    return _study_card.study_card_rows(card) if isinstance(card, Mapping) else []


@register.filter
def reference_standard_sentence(reference_standard: Any) -> str:
    """The reference standard from the study card's entries the document carries."""
    if not isinstance(reference_standard, Mapping):
        return ""
    entries = {
        key: reference_standard[key]
        for key in ("method", "readers", "reader_qualification", "adjudication")
        if reference_standard.get(key) not in (None, "")
    }
    return _study_card.reference_standard_prose({"reference_standard": entries})


# --- the comparison report (templates/reports/comparison.html) ---


@register.filter
def metric_name(value: Any) -> str:
    return comparison_prose.METRIC_NAMES.get(str(value), text(value))


@register.filter
def comparison_rule(endpoint: Any) -> str:
    """A pre-registered comparison endpoint's rule with its number: "lower bound > −0.050"."""
    return comparison_prose.margin_text(endpoint) if isinstance(endpoint, Mapping) else _MISSING
