"""The report's findings, discussion, conclusion and limitations, assembled by fixed rules
from the document's own numbers (no Django).

Every sentence restates numbers the document already holds (in the formats of
``reports.numbers``); a rule that has nothing to say says nothing. The order of the findings is
fixed: criteria failed or borderline, subgroups, disparities, what cannot be judged,
calibration, localisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports.numbers import fixed3, interval_range, is_number, level_label
from reports.prose import (
    FAILS,
    calibration_meaning,
    criterion_finding,
    endpoint,
    localisation_meaning,
    requirement,
)

HIGH, MODERATE, INFO = "high", "moderate", "info"
KINDS = ("criterion", "subgroup", "disparity", "not_judgeable", "calibration", "localisation")
#: The subgroup table's metrics: (document key, name, whose cases its denominator counts).
SUBGROUP_METRICS = (
    ("sensitivity", "Sensitivity", "positive"),
    ("specificity", "Specificity", "negative"),
    ("auc", "AUC", None),
)
_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
# The per-group rate behind each disparity, and how a group's row gives it.
_DISPARITY_RATE = {"tpr_difference": ("tpr", "sensitivity"), "fpr_difference": ("fpr", "FPR")}


def _finding(kind: str, severity: str, sentence: str) -> dict[str, str]:
    return {"kind": kind, "severity": severity, "sentence": sentence}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _criteria(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in _list(_map(doc.get("summary")).get("criteria")) if isinstance(c, Mapping)]


def undecided(criterion: Mapping[str, Any]) -> bool:
    """A criterion the data could not decide: marked so, or (stored before the mark existed)
    without a number to judge."""
    return criterion.get("judgeable") is False or (
        criterion.get("passed") is not True and not is_number(criterion.get("observed"))
    )


def _failed(criterion: Mapping[str, Any]) -> bool:
    return criterion.get("passed") is False and not undecided(criterion)


def _min_cell(doc: Mapping[str, Any]) -> int:
    value = _map(doc.get("protocol")).get("min_cell_size")
    return int(value) if is_number(value) else 10


def _overall(doc: Mapping[str, Any], metric: str) -> float | None:
    primary = _map(doc.get("primary"))
    interval = primary.get("auc") if metric == "auc" else _map(primary.get("metrics")).get(metric)
    estimate = _map(interval).get("estimate")
    return estimate if is_number(estimate) else None


# --------------------------------------------------------------------------- subgroups


def _cases(row: Mapping[str, Any], whose: str | None) -> tuple[int | None, str]:
    """The cases a subgroup's metric rests on, in words: ``13 positive cases``."""
    if whose is None:  # the AUC: as few as its smaller class
        n, n_pos, n_neg = row.get("n"), row.get("n_pos"), row.get("n_neg")
        if not (is_number(n) and is_number(n_pos) and is_number(n_neg)):
            return None, ""
        return min(int(n_pos), int(n_neg)), f"{int(n)} cases, {int(n_pos)} positive"
    n = row.get("n_pos" if whose == "positive" else "n_neg")
    if not is_number(n):
        return None, ""
    return int(n), f"{int(n)} {whose} case{'' if int(n) == 1 else 's'}"


def _subgroup_checks(doc: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    """(subgroup findings with their ranking keys, subgroup metrics too small to decide).

    A shown subgroup's metric is a finding when its point estimate fails an acceptance
    criterion on that metric (compared with the criterion's value) that the overall point
    estimate meets (where the overall estimate fails too, the criterion's own finding says
    so, and every subgroup repeating it would bury the ones that differ), or when its
    interval lies wholly below the overall estimate. It is too small to decide when its
    interval includes a criterion's value while it rests on fewer cases than the protocol's
    minimum cell size (for the AUC: positive or negative cases): then neither a pass nor a
    fail is claimed for it.
    """
    criteria = [c for c in _criteria(doc) if not c.get("attribute")]
    min_cell = _min_cell(doc)
    found, small = [], []
    for row in _list(doc.get("subgroups")):
        if not isinstance(row, Mapping) or row.get("suppressed"):
            continue
        who = f"{row.get('attribute')} {row.get('group')}"
        for key, name, whose in SUBGROUP_METRICS:
            interval = _map(row.get(key))
            estimate, lower, upper = (interval.get(k) for k in ("estimate", "lower", "upper"))
            if not is_number(estimate):
                continue
            n, cases = _cases(row, whose)
            overall = _overall(doc, key)
            ci = level_label(interval.get("level"))
            span = interval_range(lower, upper)
            shown = f"{name} for {who} is {fixed3(estimate)}"
            details = "; ".join(part for part in (f"{ci} {span}" if span else "", cases) if part)
            shown += f" ({details})" if details else ""
            on_metric = [c for c in criteria if c.get("metric") == key]
            spans = [
                c
                for c in on_metric
                if is_number(c.get("value")) and is_number(lower) and is_number(upper)
                if lower <= c["value"] <= upper
            ]
            if spans and n is not None and n < min_cell:
                small.append(
                    {
                        "sentence": f"{shown}: too few cases (fewer than {min_cell}) to decide "
                        f"against the required {fixed3(spans[0]['value'])}, which its interval "
                        "includes.",
                    }
                )
                continue
            failing = next(
                (
                    c
                    for c in on_metric
                    if is_number(c.get("value"))
                    and str(c.get("comparator")) in _COMPARE
                    and not _COMPARE[str(c["comparator"])](estimate, c["value"])
                    and (overall is None or _COMPARE[str(c["comparator"])](overall, c["value"]))
                ),
                None,
            )
            below = overall is not None and is_number(upper) and upper < overall
            if failing is None and not below:
                continue
            clauses = []
            if overall is not None and estimate < overall:
                clauses.append(f"below the overall {fixed3(overall)}")
            if failing is not None:
                verb, word = FAILS.get(str(failing["comparator"]), ("misses", "required"))
                clauses.append(f"{verb.removeprefix('is ')} the {word} {fixed3(failing['value'])}")
            sentence = shown + (", " + " and ".join(clauses) if clauses else "")
            if below:
                sentence += "; its interval lies wholly below the overall estimate"
            found.append(
                {
                    "sentence": sentence + ".",
                    "severity": HIGH if failing is not None else MODERATE,
                    # Missed disease first: the safety-relevant finding (see _main_subgroup).
                    "rank": (
                        failing is not None,
                        key == "sensitivity",
                        (overall - estimate) if overall is not None else 0.0,
                    ),
                    "short": f"{name.lower() if key != 'auc' else name} for {who} is "
                    f"{fixed3(estimate)}"
                    + (f" against {fixed3(overall)} overall" if overall is not None else ""),
                }
            )
    return found, small


def _suppressed(doc: Mapping[str, Any]) -> list[str]:
    return [
        f"{row.get('attribute')} {row.get('group')}"
        for row in _list(doc.get("subgroups"))
        if isinstance(row, Mapping) and row.get("suppressed")
    ]


# --------------------------------------------------------------------------- disparities


def _rate(doc: Mapping[str, Any], attribute: Any, group: Any, rate: str) -> float | None:
    for row in _list(doc.get("subgroups")):
        if (
            isinstance(row, Mapping)
            and row.get("attribute") == attribute
            and str(row.get("group")) == str(group)
            and not row.get("suppressed")
        ):
            interval = _map(row.get("sensitivity" if rate == "tpr" else "specificity"))
            estimate = interval.get("estimate")
            if not is_number(estimate):
                return None
            return estimate if rate == "tpr" else 1.0 - estimate
    return None


def _disparity_sentence(doc: Mapping[str, Any], criterion: Mapping[str, Any]) -> str:
    base = criterion_finding(criterion) or ""
    attribute = criterion.get("attribute")
    row = next(
        (
            r
            for r in _list(doc.get("fairness"))
            if isinstance(r, Mapping) and r.get("attribute") == attribute
        ),
        {},
    )
    metric = str(criterion.get("metric"))
    if metric in _DISPARITY_RATE:
        rate, name = _DISPARITY_RATE[metric]
        high, low = row.get(f"{rate}_max_group"), row.get(f"{rate}_min_group")
        if high is not None and low is not None:
            values = [_rate(doc, attribute, g, rate) for g in (high, low)]
            shown = [
                f"{g} ({name} {fixed3(v)})" if v is not None else str(g)
                for g, v in zip((high, low), values, strict=True)
            ]
            return f"{base} The gap lies between {attribute} {shown[0]} and {shown[1]}."
    compared = [str(g) for g in _list(row.get("groups_compared"))]
    if compared:
        return f"{base} Groups compared: {', '.join(compared)}."
    return base


# --------------------------------------------------------------------------- findings


def _calibration_severity(calibration: Mapping[str, Any]) -> str:
    for key, ideal in (("intercept", 0.0), ("slope", 1.0)):
        fit = _map(calibration.get(key))
        lower, upper = fit.get("lower"), fit.get("upper")
        if is_number(lower) and is_number(upper) and not lower <= ideal <= upper:
            return MODERATE
    return INFO


def report_findings(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """``[{kind, severity, sentence}]`` in the fixed order of ``KINDS``."""
    criteria = _criteria(doc)
    found: list[dict[str, str]] = []
    for criterion in criteria:
        if undecided(criterion) or (criterion.get("attribute") and _failed(criterion)):
            continue
        sentence = criterion_finding(criterion)
        if sentence:
            found.append(_finding("criterion", HIGH if _failed(criterion) else MODERATE, sentence))
    subgroups, small = _subgroup_checks(doc)
    found += [_finding("subgroup", item["severity"], item["sentence"]) for item in subgroups]
    for criterion in criteria:
        if criterion.get("attribute") and _failed(criterion):
            found.append(_finding("disparity", HIGH, _disparity_sentence(doc, criterion)))
    return found + _undecided_findings(doc, criteria, small) + _fit_findings(doc)


def _undecided_findings(
    doc: Mapping[str, Any], criteria: list[Mapping[str, Any]], small: list[dict]
) -> list[dict[str, str]]:
    found = [
        _finding("not_judgeable", HIGH, f"Degenerate outcome: {sentence}")
        for sentence in _list(_map(doc.get("summary")).get("degenerate"))
    ]
    found += [
        _finding("not_judgeable", HIGH, criterion_finding(criterion) or "")
        for criterion in criteria
        if undecided(criterion)
    ]
    found += [_finding("not_judgeable", MODERATE, item["sentence"]) for item in small]
    suppressed = _suppressed(doc)
    if suppressed:
        found.append(
            _finding(
                "not_judgeable",
                MODERATE,
                f"Too few cases to judge, so suppressed in this report (fewer than "
                f"{_min_cell(doc)} cases, or withheld so that a smaller group's numbers cannot "
                f"be derived): {'; '.join(suppressed)}.",
            )
        )
    return found


def _fit_findings(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """Calibration and localisation in words, where the document has them."""
    found = []
    calibration = _map(doc.get("calibration"))
    meaning = calibration_meaning(calibration) if calibration.get("bins") else None
    if meaning:
        found.append(_finding("calibration", _calibration_severity(calibration), meaning))
    localisation = _map(_map(doc.get("explainability")).get("localisation"))
    meaning = localisation_meaning(localisation) if localisation else None
    if meaning:
        found.append(_finding("localisation", INFO, meaning))
    return found


# --------------------------------------------------------------------------- discussion


def _named(criteria: list[Mapping[str, Any]]) -> str:
    return "; ".join(f"{endpoint(c)} ({requirement(c)})" for c in criteria)


def _main_subgroup(doc: Mapping[str, Any]) -> str | None:
    found, _ = _subgroup_checks(doc)
    if not found:
        return None
    return max(found, key=lambda item: item["rank"])["short"]


def report_discussion(doc: Mapping[str, Any], findings: Sequence[Mapping[str, str]]) -> dict:
    """``{paragraphs, conclusion}`` from the criteria and the findings: whether the
    pre-specified criteria were met, which were not, what could not be judged, and the main
    safety-relevant subgroup finding. Nothing beyond the numbers is claimed."""
    criteria = _criteria(doc)
    failed = [c for c in criteria if _failed(c)]
    open_ = [c for c in criteria if undecided(c)]
    paragraphs = [_criteria_paragraph(criteria, failed, open_)]
    degenerate = _list(_map(doc.get("summary")).get("degenerate"))
    if degenerate:
        paragraphs.append(
            "The outcome is degenerate: " + " ".join(str(d) for d in degenerate) + " The "
            "numbers of this run do not describe how the model performs."
        )
    by_kind: dict[str, list[Mapping[str, str]]] = {}
    for item in findings:
        by_kind.setdefault(item["kind"], []).append(item)
    paragraphs += _subgroup_paragraph(doc, by_kind.get("subgroup", []))
    fairness = [c for c in criteria if c.get("attribute")]
    exceeded = [c for c in fairness if _failed(c)]
    if exceeded:
        paragraphs.append(
            "Disparities exceeded the pre-registered limits for " + _named(exceeded) + "."
        )
    elif fairness and all(c.get("passed") is True for c in fairness):
        paragraphs.append("The disparities stayed within the pre-registered fairness limits.")
    if open_:
        paragraphs.append(
            "A criterion that cannot be judged is neither met nor failed; the overall verdict "
            "cannot be a pass while one stands."
        )
    if any(item["severity"] == MODERATE for item in by_kind.get("calibration", [])):
        paragraphs.append(
            "The calibration intercept or slope departs from its ideal beyond its interval "
            "(section 12): the scores should not be read as probabilities of disease without "
            "recalibration."
        )
    return {"paragraphs": paragraphs, "conclusion": _conclusion(doc, criteria, failed, open_)}


def _criteria_paragraph(criteria, failed, open_) -> str:
    if not criteria:
        return "The protocol pre-specified no acceptance criterion."
    n_fair = sum(1 for c in criteria if c.get("attribute"))
    kinds = [f"{len(criteria) - n_fair} on performance"] + (
        [f"{n_fair} on fairness"] if n_fair else []
    )
    met = [c for c in criteria if c.get("passed") is True and not undecided(c)]
    parts = [f"{len(met)} met"]
    if failed:
        parts.append(f"{len(failed)} not met ({_named(failed)})")
    if open_:
        parts.append(f"{len(open_)} could not be judged ({_named(open_)})")
    return (
        f"The protocol pre-specified {len(criteria)} criteria ({', '.join(kinds)}): "
        + ", ".join(parts)
        + "."
    )


def _subgroup_paragraph(doc: Mapping[str, Any], items: list[Mapping[str, str]]) -> list[str]:
    if items:
        plural = "s" if len(items) != 1 else ""
        found, _ = _subgroup_checks(doc)
        named = "; ".join(item["short"] for item in found)
        return [
            f"{len(items)} subgroup result{plural} fell below an acceptance criterion's "
            f"required value or wholly below the overall estimate ({named}): the overall "
            "estimates do not hold for every subgroup."
        ]
    shown = [
        r for r in _list(doc.get("subgroups")) if isinstance(r, Mapping) and not r.get("suppressed")
    ]
    if not shown:
        return []
    return [
        "No subgroup shown had a point estimate failing a criterion's required value or an "
        "interval wholly below the overall estimate. This is not evidence of equal "
        "performance: differences smaller than the intervals' width cannot be detected."
    ]


def _conclusion(doc, criteria, failed, open_) -> str:
    n_cases = _map(doc.get("test_data")).get("n_cases")
    on = f"on this test set of {int(n_cases)} cases" if is_number(n_cases) else "on this test set"
    if _list(_map(doc.get("summary")).get("degenerate")):
        text = (
            "The outcome is degenerate, so the pre-specified acceptance criteria were not met "
            f"{on}; the overall verdict is FAIL."
        )
    elif not criteria:
        text = "No acceptance criterion was pre-specified; the overall verdict is FAIL."
    elif failed:
        text = f"The pre-specified acceptance criteria were not met {on}. Not met: "
        text += f"{_named(failed)}."
        text += f" Not judgeable: {_named(open_)}." if open_ else ""
        text += " The overall verdict is FAIL."
    elif open_:
        text = (
            f"No pre-specified criterion failed {on}, but {_named(open_)} could not be judged; "
            "the overall verdict is NOT JUDGEABLE, not a pass."
        )
    else:
        text = (
            f"All {len(criteria)} pre-specified acceptance criteria were met {on}; the overall "
            "verdict is PASS."
        )
    main = _main_subgroup(doc)
    if main:
        text += f" The main safety-relevant subgroup finding: {main}."
    return text


# --------------------------------------------------------------------------- limitations


def _share(value: Any) -> str:
    return f"{value * 100:.1f}%" if is_number(value) else ""


def report_limitations(doc: Mapping[str, Any]) -> list[str]:
    """The run's own limitations, each from a rule that fired on its numbers."""
    found: list[str] = []
    sandbox = _map(_map(doc.get("identity")).get("sandbox"))
    if sandbox.get("enabled") is False:
        found.append(
            "The model was executed WITHOUT sandbox isolation: the results were produced in an "
            "uncontrolled environment."
        )
    found += [str(d) for d in _list(_map(doc.get("summary")).get("degenerate"))]
    failures = [f for f in _list(doc.get("failures")) if isinstance(f, Mapping)]
    n_failed = sum(int(f["n"]) for f in failures if is_number(f.get("n")))
    if n_failed:
        policy = _map(doc.get("protocol")).get("failure_policy")
        treated = (
            "counted as wrong decisions"
            if policy == "score-as-error"
            else "excluded from every metric"
        )
        categories = "; ".join(f"{f.get('category')} {int(f['n'])}" for f in failures)
        found.append(
            f"{n_failed} case{'s' if n_failed != 1 else ''} could not be read or scored and "
            f"{'were' if n_failed != 1 else 'was'} {treated}; the metrics describe the "
            f"remaining cases. By category: {categories}."
        )
    confusion = _map(_map(doc.get("primary")).get("confusion"))
    raw = [confusion.get(k) for k in ("tp", "fn", "tn", "fp")]
    counts = [int(c) for c in raw if is_number(c)]
    total = counts[0] + counts[1] + counts[2] + counts[3] if len(counts) == 4 else 0
    if total:
        positives = counts[0] + counts[1]
        prevalence = f"({fixed3(positives / total)}: {int(positives)} of {int(total)} cases)"
    else:
        prevalence = "(not estimable: no case scored)"
    found.append(
        f"PPV and NPV depend on the test set's prevalence {prevalence}; they transfer only to "
        "populations with a similar prevalence."
    )
    suppressed = _suppressed(doc)
    if suppressed:
        found.append(
            f"Subgroups suppressed for having fewer than {_min_cell(doc)} cases (or withheld so "
            f"that a smaller one cannot be derived) have no reported performance and are not "
            f"compared for fairness: {'; '.join(suppressed)}."
        )
    thin = _thin_subgroups(doc)
    if thin:
        found.append(
            f"Some subgroup metrics rest on fewer than {_min_cell(doc)} cases, and their "
            f"intervals are wide: {'; '.join(thin)}."
        )
    found += _independence_limitations(doc)
    missing = _list(_map(doc.get("study_design")).get("missing"))
    if missing:
        found.append(
            "The study card does not state: "
            + ", ".join(str(m) for m in missing)
            + "; the study design cannot be fully assessed."
        )
    sites = [s for s in _list(_map(doc.get("test_data")).get("sites")) if isinstance(s, Mapping)]
    if len(sites) == 1:
        found.append(
            f"Every test case comes from one site ({sites[0].get('name')}): the results may "
            "not transfer to other sites, scanners or populations."
        )
    if _map(doc.get("test_data")).get("synthetic") is True:
        found.append(
            "The test data are synthetic (generated, not acquired from patients): the results "
            "say nothing about performance on clinical images."
        )
    return found


def _thin_subgroups(doc: Mapping[str, Any]) -> list[str]:
    min_cell = _min_cell(doc)
    thin = []
    for row in _list(doc.get("subgroups")):
        if not isinstance(row, Mapping) or row.get("suppressed"):
            continue
        for key, name, whose in SUBGROUP_METRICS[:2]:
            n, cases = _cases(row, whose)
            if is_number(_map(row.get(key)).get("estimate")) and n is not None and n < min_cell:
                thin.append(
                    f"{name.lower()} of {row.get('attribute')} {row.get('group')} ({cases})"
                )
    return thin


def _independence_limitations(doc: Mapping[str, Any]) -> list[str]:
    training = _map(_map(doc.get("device")).get("training_data"))
    if training and training.get("declared") is False:
        return [
            "The vendor declared no training data: independence of the test data from the "
            "training data could not be checked."
        ]
    independence = _map(doc.get("independence"))
    if is_number(independence.get("n_overlap")) and is_number(independence.get("n_cases")):
        n_overlap, n_cases = int(independence["n_overlap"]), int(independence["n_cases"])
        if n_overlap == 0:
            return []
        share = _share(independence.get("share")) or _share(n_overlap / n_cases)
        return [
            f"{n_overlap} of {n_cases} test cases ({share}) come from sites or scanners the "
            "vendor declared as training sources: performance on them may overstate "
            "performance on sources the model has not seen."
        ]
    old = _map(_map(doc.get("test_data")).get("independence"))
    overlapping = _list(old.get("overlapping_sites"))
    if overlapping:
        return [
            "Test sites overlap the vendor's declared training sites ("
            + ", ".join(str(s) for s in overlapping)
            + "): performance there may overstate performance on unseen sites."
        ]
    return []
