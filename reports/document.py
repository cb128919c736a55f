"""Assembling a run's canonical report document from stored results (reads only)."""

import platform
import statistics
from collections import Counter
from importlib.metadata import PackageNotFoundError, version

from django.db.models import Q

from audit.models import AuditEvent
from reports.findings import report_discussion, report_findings, report_limitations
from reports.plots import exemplar_png
from validation.dicom.display import load_mask, overlay_shape
from validation.dicom.pixels import InputSpec, read_dicom, resize, scale_unit
from validation.models import Case, DatasetGrant, MetricResult, ValidationRun
from validation.protocol_document import METRICS
from validation.runner.confinement import describe_measured
from validation.selectors import (
    active_grant_for,
    explanation_cam,
    run_exemplar_cases,
    run_localisation,
    study_card_of,
)
from validation.stats import sample_size
from validation.stats.disclosure import (
    calibration_disclosed,
    counts_disclosed,
    independence_disclosed,
    roc_disclosed,
    rounded,
    subgroups_disclosed,
)
from validation.stats.evaluation import LEGACY_AUC_INTERVAL
from validation.stats.exemplars import OUTCOMES, exemplar_rule
from validation.stats.independence import training_overlap
from validation.stats.metrics.proportions import CLOPPER_PEARSON, WILSON, WILSON_CC
from validation.stats.metrics.roc import DELONG, DELONG_LOGIT, HANLEY_MCNEIL_SCORE
from validation.storage import SequesteredDataError, case_dicom_bytes, case_mask_bytes

SCHEMA_VERSION = "1.0"
SOFTWARE = [
    "django",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "fairlearn",
    "grad-cam",
    "pydicom",
    "weasyprint",
    "celery",
]
METHOD_NAMES = {
    "likelihood_ratios": "log method (Simel et al. 1991)",
    "disparities": "Newcombe hybrid score (method 10)",
    "subgroups": "fairlearn MetricFrame",
    "explanations": "Grad-CAM (pytorch-grad-cam)",
    "calibration": "Brier score; ECE over equal-width bins; intercept and slope by logistic "
    "recalibration on logit(p), Wald intervals",
    "p_values": "pooled two-proportion z-test",
}


def _auc_method(plan: dict) -> str:
    """The AUC interval the locked plan names, and its fallback for a degenerate variance."""
    name = plan.get("auc_interval_method", LEGACY_AUC_INTERVAL)
    chosen = {"delong-logit": DELONG_LOGIT, "delong": DELONG}[name]
    return f"{chosen}; {HANLEY_MCNEIL_SCORE}"


def _proportion_method(plan: dict) -> str:
    name = plan.get("interval_method", "wilson")
    return {"wilson": WILSON, "wilson-cc": WILSON_CC, "clopper-pearson": CLOPPER_PEARSON}[name]


def _bootstrap_method(plan: dict) -> str:
    bootstrap = plan.get("bootstrap") or {}
    if not bootstrap.get("replicates"):
        return "not planned"
    method = "BCa" if bootstrap.get("method", "bca") == "bca" else "percentile"
    return (
        f"stratified bootstrap, {method}, B={bootstrap['replicates']}, seed {bootstrap.get('seed')}"
    )


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _software() -> dict:
    found = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    try:
        found["blindspot"] = version("blindspot")
    except PackageNotFoundError:
        found["blindspot"] = "0.1.0"
    return found


def _tally(values) -> list[dict]:
    return [
        {"group": str(k) if k is not None else "unknown", "n": n}
        for k, n in sorted(Counter(values).items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]


def _declared_synthetic(attrs: list[dict]) -> bool:
    """Every readable case's file declared itself synthetic (``validation.dicom.pixels``);
    cases imported before the attribute existed leave it unsaid."""
    declared = [a.get("synthetic") for a in attrs if a]
    return bool(declared) and all(value is True for value in declared)


def _test_data(run: ValidationRun, sections: dict, *, min_cell: int) -> dict:
    """The test set as the vendor may read it: distributions obey the disclosure rule (a cell
    below the minimum size keeps its label and loses its count)."""
    cases = list(Case.objects.filter(dataset_version=run.dataset_version))
    attrs = [c.attributes for c in cases]
    ages = [a["age"] for a in attrs if isinstance(a.get("age"), int)]
    scanners = Counter(
        (a.get("manufacturer") or "unknown", a.get("model") or "unknown") for a in attrs
    )
    declared = run.package.manifest.get("training_data") or {}
    sites = {a.get("institution") or a.get("site") for a in attrs} - {None}
    overlap = sorted(sites & set(declared.get("sites", [])))

    def disclosed(values) -> list[dict]:
        counts = {row["group"]: row["n"] for row in _tally(values)}
        return counts_disclosed(counts, min_cell=min_cell)

    return {
        "n_cases": len(cases),
        "n_pos": sum(c.label for c in cases),
        "n_neg": sum(1 - c.label for c in cases),
        "sites": [
            {"name": row.pop("group"), **row}
            for row in disclosed(a.get("institution") or a.get("site") for a in attrs)
        ],
        "scanners": [
            {"manufacturer": m, "model": mo, **{k: v for k, v in row.items() if k != "group"}}
            for row in counts_disclosed(dict(scanners), min_cell=min_cell)
            for m, mo in [row["group"]]
        ],
        "demographics": {
            "sex": disclosed(a.get("sex") for a in attrs),
            "race": disclosed(a.get("race") for a in attrs),
            "age": (
                {"median": statistics.median(ages), "min": min(ages), "max": max(ages)}
                if ages
                else None
            ),
        },
        "exclusions": sections["failures"]["by_category"],
        # Only when every case's file declared itself synthetic (validation.dicom.pixels).
        "synthetic": _declared_synthetic(attrs),
        "independence": {
            "declared_training_sites": declared.get("sites", []),
            "overlapping_sites": overlap,
            "independent": not overlap,
        },
    }


def _independence(run: ValidationRun, sections: dict, *, min_cell: int) -> dict:
    """Section 6: the share of test cases from the sites and scanners the vendor declared it
    trained on, and the primary metrics split by it (stored at scoring; a run scored before
    issue 18 has no split, and the share is taken from the case attributes here). The split
    obeys the disclosure rule; when one of the two groups is a small cell, its count is
    withheld too."""
    stored = sections.get("independence")
    if stored is None:
        cases = Case.objects.filter(dataset_version=run.dataset_version).order_by("case_id")
        _, stored = training_overlap(
            [c.attributes for c in cases], run.package.manifest.get("training_data")
        )
        stored = {**stored, "split": None}
    return {
        **independence_disclosed(stored, min_cell=min_cell),
        "computed": stored["split"] is not None,
    }


ONNX_NO_EXPLANATIONS = (
    "the model was submitted as ONNX, which runs through onnxruntime without the module tree "
    "that Grad-CAM hooks into. Submit a torch.export (.pt2) package for explanations."
)


def _explainability(run: ValidationRun, exemplars_allowed: bool) -> dict:
    if run.package.manifest.get("gradcam_target_layer") is None:
        return {
            "method": METHOD_NAMES["explanations"],
            "unavailable": ONNX_NO_EXPLANATIONS,
            "n_maps": 0,
            "exemplars_allowed": exemplars_allowed,
            "exemplars": [],
        }
    rows = list(run.explanations.select_related("case").order_by("case__case_id"))
    localisation = run_localisation(run)
    if localisation is not None:
        localisation.pop("n_maps")
    exemplars: list[dict] = []
    rule, attribute, without_map = None, None, 0
    chosen: list = []
    if exemplars_allowed:
        maps = {explanation.case_id: explanation for explanation in rows}
        chosen, attribute = run_exemplar_cases(run)
        rule = exemplar_rule(attribute)
        spec = InputSpec.from_dict(run.package.manifest["input"])
        for pick, case in chosen:
            explanation = maps.get(case.pk)
            if explanation is None:  # its map failed, or the run's maps predate the rule
                without_map += 1
                continue
            exemplars.append(
                {
                    "outcome": pick.outcome,
                    "score": rounded(pick.score),
                    "reference": "positive" if pick.label == 1 else "negative",
                    "group": pick.group,
                    "has_roi": bool(case.roi or case.mask_path),
                    "image_png": _exemplar_image(case, explanation, spec),
                }
            )
    return {
        "method": METHOD_NAMES["explanations"],
        "target_layer": run.package.manifest.get("gradcam_target_layer"),
        # The explanation stage failed (stage, category, message, limit): the validation stands.
        **({"failed": run.explain_failure} if run.explain_failure else {}),
        "n_maps": len(rows),
        "localisation": rounded(localisation),
        "exemplars_allowed": exemplars_allowed,
        **(
            {
                "exemplar_rule": rule,
                "exemplar_attribute": attribute,
                "exemplars_without_map": without_map,
                # Outcomes no scored case had at the operating point (nothing to choose from).
                "exemplar_outcomes_absent": [
                    name for name in OUTCOMES if not any(p.outcome == name for p, _c in chosen)
                ],
            }
            if exemplars_allowed
            else {}
        ),
        "exemplars": exemplars,
    }


#: Smallest side of an exemplar image (the model's input size times a whole factor).
EXEMPLAR_MIN_SIDE = 256


def _exemplar_image(case: Case, explanation, spec: InputSpec) -> str:
    """The case's image as the model saw it (scaling, aspect of the model's input), drawn at
    a whole multiple of the map's size, with the map, the reference ROI's outline (its mask's
    contour where it has one, else its box) and a colour bar."""
    cam = explanation_cam(explanation)
    image = read_dicom(case_dicom_bytes(case))
    unit = scale_unit(image, spec.scaling)
    height, width = overlay_shape(cam.shape, EXEMPLAR_MIN_SIDE)
    method = "area" if unit.shape[0] > height else "bilinear"
    shown = resize(unit, height, width, method)
    mask = None
    if case.mask_path:
        try:
            mask = load_mask(case_mask_bytes(case))
        except (SequesteredDataError, ValueError):
            mask = None  # the box still outlines the region
    return exemplar_png(
        shown,
        cam,
        roi_box=case.roi or None,
        source_shape=(int(unit.shape[0]), int(unit.shape[1])),
        roi_mask=mask,
    )


def audit_excerpt(run: ValidationRun) -> list[dict]:
    """The events about this run's objects: the run, its package, protocol, dataset and
    version, and the grants that let this vendor use the version."""
    dataset_version = run.dataset_version
    grants = DatasetGrant.objects.filter(dataset_version=dataset_version).filter(
        Q(vendor_id=run.package.vendor_id) | Q(vendor__isnull=True)
    )
    targets = [
        ("validation.ValidationRun", run.pk),
        ("validation.ModelPackage", run.package_id),
        ("validation.Protocol", run.protocol_id),
        ("validation.Dataset", dataset_version.dataset_id),
        ("validation.DatasetVersion", dataset_version.pk),
        *(("validation.DatasetGrant", pk) for pk in grants.values_list("pk", flat=True)),
    ]
    query = Q()
    for label, pk in targets:
        query |= Q(target_type=label, target_id=str(pk))
    return [
        {"seq": e.pk, "at": _iso(e.at), "actor": e.actor_label, "action": e.action, "hash": e.hash}
        for e in AuditEvent.objects.filter(query).order_by("id")
    ]


def audit_gaps(excerpt: list[dict]) -> list[dict]:
    """Why the excerpt's numbers skip: each gap's events record other objects (other runs,
    packages, datasets, accounts), and a number with no event was never used (the transaction
    that drew it from the sequence was rolled back)."""
    gaps = []
    for before, after in zip(excerpt, excerpt[1:], strict=False):
        first, last = before["seq"] + 1, after["seq"] - 1
        if first > last:
            continue
        other = AuditEvent.objects.filter(pk__gte=first, pk__lte=last).count()
        gaps.append(
            {
                "first": first,
                "last": last,
                "other_objects": other,
                "unused": last - first + 1 - other,
            }
        )
    return gaps


def _device(package, manifest: dict) -> dict:
    """The device as its manifest declares it (the vendor's words, shown as declared)."""
    spec, output = manifest.get("input") or {}, manifest.get("output") or {}
    indications = manifest.get("indications") or []
    training = manifest.get("training_data") or {}
    date_range = training.get("date_range") or []
    return {
        "name": package.name,
        "version": package.version,
        "sha256": package.sha256,
        "vendor": package.vendor.name,
        "task": manifest.get("task"),
        "format": {"pt2": "torch.export", "onnx": "ONNX"}.get(
            package.model_format, package.model_format
        ),
        "modalities": list(spec.get("modalities") or []),
        "input_shape": {k: spec.get(k) for k in ("channels", "height", "width")},
        "output_labels": list(output.get("labels") or []),
        "activation": output.get("activation"),
        "positive_index": output.get("positive_index"),
        "threshold": manifest.get("threshold"),
        "intended_use": manifest.get("intended_use", ""),
        "indications": [indications] if isinstance(indications, str) else list(indications),
        "training_data": {
            "declared": bool(training),
            "sites": list(training.get("sites") or []),
            "scanners": list(training.get("scanners") or []),
            "date_range": list(date_range) if len(date_range) == 2 else [],
        },
    }


def _study_design(dataset_version) -> dict:
    """The dataset version's study card as frozen with its seal (plain JSON), the labels of the
    entries the partner left out (printed as missing) and the card's SHA-256; `recorded` is
    false for a version sealed before study cards were recorded."""
    study = study_card_of(dataset_version)
    return {
        "recorded": study["recorded"],
        "card": study["card"],
        "missing": study["missing"],
        "sha256": study["sha256"],
    }


def _reference_standard(dataset_version) -> dict:
    """The study card's reference-standard entries (None where the partner gave none)."""
    entries = (dataset_version.study_card or {}).get("reference_standard") or {}
    return {
        key: entries.get(key)
        for key in ("method", "readers", "reader_qualification", "adjudication")
    }


def report_document_build(
    run: ValidationRun, *, report_ref: str, version: int, generated_at
) -> dict:
    """Everything the PDF shows, as plain JSON (no signatures or integrity block yet)."""
    sections = {m.section: m.value for m in MetricResult.objects.filter(run=run)}
    package, protocol, dataset_version = run.package, run.protocol, run.dataset_version
    manifest, plan = package.manifest, protocol.document
    grant = active_grant_for(dataset_version=dataset_version, vendor=package.vendor)
    primary = sections["primary"]
    excerpt = audit_excerpt(run)
    document = {
        "schema_version": SCHEMA_VERSION,
        "report": {
            "id": report_ref,
            "version": version,
            "generated_at": _iso(generated_at),
            "required_signatures": run.protocol.document.get(
                "required_signatures", ["reviewed", "approved"]
            ),
        },
        "identity": {
            "run_id": run.pk,
            "package": {
                "name": package.name,
                "version": package.version,
                "sha256": package.sha256,
                "vendor": package.vendor.name,
            },
            "dataset": {
                "name": dataset_version.dataset.name,
                "version": dataset_version.version,
                "merkle_root": dataset_version.merkle_root,
                "partner": dataset_version.dataset.partner.name,
            },
            "protocol": {
                "name": protocol.name,
                "version": protocol.version,
                "sha256": protocol.sha256,
                "locked_at": _iso(protocol.locked_at),
            },
            "run": {
                "queued_at": _iso(run.queued_at),
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "stage_seconds": run.stage_seconds,
                "device": run.device,
                "execution": _execution(run),
            },
            "software": _software(),
            "sandbox": {
                **_isolation(run.isolation or "none"),
                "enabled": bool(run.sandboxed),
                "limits": describe_measured(run.sandbox_limits) if run.sandbox_limits else "",
            },
        },
        "summary": rounded(sections["acceptance"]),
        "intended_use": {
            "text": manifest.get("intended_use", ""),
            "indications": _device(package, manifest)["indications"],
        },
        "device": _device(package, manifest),
        "protocol": {
            "primary_endpoint": plan["primary_endpoint"],
            "secondary_endpoints": plan.get("secondary_endpoints", []),
            "operating_point": {
                "source": plan["operating_point"]["source"],
                "threshold": manifest["threshold"],
            },
            "min_cell_size": plan["min_cell_size"],
            "subgroup_attributes": [s["attribute"] for s in plan["subgroups"]],
            "confidence_level": plan.get("confidence_level", 0.95),
            "failure_policy": plan.get("failure_policy"),
            "interval_method": plan.get("interval_method", "wilson"),
            "auc_interval_method": plan.get("auc_interval_method", LEGACY_AUC_INTERVAL),
            "multiplicity": plan.get("multiplicity", "holm"),
            "fairness_criteria": plan.get("fairness_criteria", []),
        },
        "test_data": _test_data(run, sections, min_cell=int(plan["min_cell_size"])),
        "study_design": _study_design(dataset_version),
        # Section 4: goals stated or derived from the criteria, precision, power (rounded).
        "hypotheses": rounded(sample_size.hypotheses_section(plan, primary)),
        "independence": _independence(run, sections, min_cell=int(plan["min_cell_size"])),
        "reference_standard": {
            "text": "Reference labels and lesion boxes supplied by the data "
            "partner in the dataset manifest; sealed with the dataset version's "
            "Merkle root before the run.",
            **_reference_standard(dataset_version),
        },
        "methods": [
            {"quantity": "AUC", "method": _auc_method(plan)},
            *[
                {
                    "quantity": m.upper() if len(m) == 3 else m.capitalize(),
                    "method": _proportion_method(plan),
                }
                for m in METRICS
                if m != "auc"
            ],
            {"quantity": "Likelihood ratios", "method": METHOD_NAMES["likelihood_ratios"]},
            {"quantity": "Subgroup metrics", "method": METHOD_NAMES["subgroups"]},
            {"quantity": "TPR/FPR differences", "method": METHOD_NAMES["disparities"]},
            {
                "quantity": "Disparity p-values",
                "method": f"{METHOD_NAMES['p_values']}; exploratory attributes adjusted by "
                f"{plan.get('multiplicity', 'holm')}",
            },
            {"quantity": "Calibration", "method": METHOD_NAMES["calibration"]},
            {"quantity": "Bootstrap intervals (supporting)", "method": _bootstrap_method(plan)},
            {"quantity": "Explanations", "method": METHOD_NAMES["explanations"]},
        ],
        # The issued report goes to the vendor: every number at the precision it prints.
        "primary": rounded(
            {
                "confusion": {k: primary["counts"][k] for k in ("tp", "fp", "tn", "fn")},
                "auc": primary["auc"],
                "metrics": {
                    k: primary[k] for k in ("sensitivity", "specificity", "ppv", "npv", "accuracy")
                },
                "likelihood_ratios": {
                    "positive": primary["positive_likelihood_ratio"],
                    "negative": primary["negative_likelihood_ratio"],
                },
                "roc": roc_disclosed(
                    primary["roc"],
                    n_pos=primary["counts"]["n_pos"],
                    n_neg=primary["counts"]["n_neg"],
                    min_cell=int(plan["min_cell_size"]),
                ),
            }
        ),
        # The issued report goes to the vendor: small cells carry no numbers in it.
        "subgroups": subgroups_disclosed(sections["subgroups"], audience="vendor"),
        "fairness": rounded(sections["fairness"]),
        "calibration": calibration_disclosed(
            sections.get("calibration") or {}, min_cell=int(plan["min_cell_size"])
        ),
        "explainability": _explainability(run, bool(grant and grant.allow_exemplars)),
        "failures": sections["failures"]["by_category"],
        "audit_excerpt": excerpt,
        "audit_gaps": audit_gaps(excerpt),
    }
    return with_findings(document)


def with_findings(document: dict) -> dict:
    """The document with its findings, discussion and limitations, generated by the rules of
    ``reports.findings`` from the numbers it already holds (so from what the vendor reads)."""
    found = report_findings(document)
    return {
        **document,
        "findings": found,
        "discussion": report_discussion(document, found),
        "limitations": report_limitations(document),
    }


SECCOMP_PREFIX, SECCOMP_SUFFIX = "; seccomp denies ", " (EPERM)"


def _isolation(text: str) -> dict:
    """The runner's isolation text, with the system calls its seccomp filter refuses as a list
    of their own (the runner writes them as one clause at the end, runner.confinement)."""
    head, found, calls = text.partition(SECCOMP_PREFIX)
    if not found or not calls.endswith(SECCOMP_SUFFIX):
        return {"isolation": text}
    names = calls.removesuffix(SECCOMP_SUFFIX).split(", ")
    return {"isolation": head, "seccomp_denied": names}


def _execution(run) -> dict:
    """How inference was spread: counts only (worker names are the service's infrastructure)."""
    from validation.selectors import run_execution

    execution = run_execution(run)
    return {
        "shards": execution["shards"],
        "workers": len(execution["workers"]),
        "devices": execution["devices"],
        "cold_starts": execution["cold_starts"],
        "redeliveries": execution["redeliveries"],
    }


def software_versions() -> dict:
    """The software a report names (Python and the libraries the analysis used)."""
    return _software()
