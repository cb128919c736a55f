"""A complete, realistic report document for tests, previews and the rendering benchmark.

The numbers are internally consistent (the 2x2 table, the subgroup counts and the Wilson
intervals agree) and everything is computed without randomness, so the document and its hash
are the same in every process. The service key below is a fixed, public test key: it signs
nothing real.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import math
from statistics import NormalDist
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reports.findings import report_discussion, report_findings, report_limitations
from reports.plots import exemplar_png
from reports.rendering import UNHASHED_KEYS, document_sha256
from validation.stats.disclosure import rounded
from validation.stats.exemplars import exemplar_rule
from validation.stats.independence import RULE as INDEPENDENCE_RULE
from validation.stats.metrics import to_jsonable
from validation.stats.metrics.calibration import calibration_summary
from validation.stats.metrics.proportions import newcombe_difference_interval
from validation.stats.sample_size import hypotheses_section

_SAMPLE_KEY_SEED = bytes(range(32))

#: A complete study card (validation/study_card.py) as the partner would write it.
SAMPLE_STUDY_CARD: dict[str, Any] = {
    "schema_version": "1.0",
    "collection_period": {"start": "2021-03-01", "end": "2023-02-28"},
    "sites": [
        "Site A (university hospital)",
        "Site B (community hospital)",
        "Site C (outpatient clinic)",
    ],
    "inclusion_criteria": [
        "Adults aged 18 or over",
        "Frontal (PA or AP) chest radiograph",
        "Reference standard available within 30 days",
    ],
    "exclusion_criteria": ["Lateral projection only", "Image not diagnostic (motion, exposure)"],
    "sampling": {
        "method": "consecutive",
        "note": "All eligible examinations in the collection period, in order of acquisition.",
    },
    "prevalence": "Natural: as it occurred in the consecutive series.",
    "reference_standard": {
        "method": "consensus of thoracic radiologists, with CT where available",
        "readers": 2,
        "reader_qualification": "Board-certified thoracic radiologists, 8 and 15 years",
        "adjudication": "A third radiologist decided on disagreement",
    },
}
_Z95 = NormalDist().inv_cdf(0.975)


def _wilson(successes: int, n: int) -> dict:
    p = successes / n
    denominator = 1 + _Z95**2 / n
    centre = (p + _Z95**2 / (2 * n)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / denominator
    return {
        "estimate": round(p, 6),
        "lower": round(centre - half, 6),
        "upper": round(centre + half, 6),
        "method": "Wilson score",
        "level": 0.95,
    }


def _auc(estimate: float, lower: float, upper: float) -> dict:
    return {
        "estimate": estimate,
        "lower": lower,
        "upper": upper,
        "method": "DeLong (Sun & Xu 2014)",
        "level": 0.95,
    }


def _likelihood_ratio(ratio: float, log_se: float) -> dict:
    return {
        "estimate": round(ratio, 6),
        "lower": round(ratio * math.exp(-_Z95 * log_se), 6),
        "upper": round(ratio * math.exp(_Z95 * log_se), 6),
        "method": "log method (Simel et al. 1991)",
        "level": 0.95,
    }


def _difference(estimate: float, lower: float, upper: float) -> dict:
    return {
        "estimate": estimate,
        "lower": lower,
        "upper": upper,
        "method": "Newcombe hybrid score (method 10)",
        "level": 0.95,
    }


def _newcombe(x1: int, n1: int, x2: int, n2: int) -> dict:
    """The TPR difference of two groups as the fairness summary computes it."""
    interval = newcombe_difference_interval(x1, n1, x2, n2, level=0.95)
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in interval.as_dict().items()}


def _judged(interval: dict) -> dict:
    """The interval a criterion was judged on, as the acceptance evaluation records it."""
    return {key: interval[key] for key in ("estimate", "lower", "upper", "level")}


def _binormal_roc(a: float, b: float, points: int = 41) -> dict:
    """Binormal ROC curve, TPR = Phi(a + b * Phi^-1(FPR)); its AUC is Phi(a / sqrt(1 + b^2))."""
    normal = NormalDist()
    fpr = [0.0] + [round((i / (points - 1)) ** 2, 6) for i in range(1, points - 1)] + [1.0]
    tpr = [0.0] + [round(normal.cdf(a + b * normal.inv_cdf(r)), 6) for r in fpr[1:-1]] + [1.0]
    return {"fpr": fpr, "tpr": tpr}


def _subgroup(attribute, group, *, tp, fn, tn, fp, auc, min_cell_size=10) -> dict:
    n_pos, n_neg = tp + fn, tn + fp
    n = n_pos + n_neg
    suppressed = n < min_cell_size
    return {
        "attribute": attribute,
        "group": group,
        "n": n,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "prevalence": round(n_pos / n, 6),
        "selection_rate": round((tp + fp) / n, 6),
        "sensitivity": None if suppressed else _wilson(tp, n_pos),
        "specificity": None if suppressed else _wilson(tn, n_neg),
        "auc": None if suppressed else _auc(*auc),
        "suppressed": suppressed,
        "notes": [],
    }


def _calibration() -> dict:
    """A calibration section from the real engine on seeded, slightly over-confident scores."""
    rng = np.random.default_rng(2026)
    truth = rng.uniform(0.02, 0.98, 400)
    y = (rng.uniform(size=400) < truth).astype(int)
    logit = np.log(truth / (1 - truth)) * 1.4
    scores = 1 / (1 + np.exp(-logit))
    summary = to_jsonable(calibration_summary(y, scores, n_bins=10))
    return {**summary, "note": ""}


def _synthetic_radiograph(size: int, lesion: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size] / size
    lungs = np.exp(-(((x - 0.3) / 0.16) ** 2 + ((y - 0.5) / 0.32) ** 2)) + np.exp(
        -(((x - 0.7) / 0.16) ** 2 + ((y - 0.5) / 0.32) ** 2)
    )
    ribs = 0.15 * (np.sin(y * 38.0) > 0.6)
    image = 1.0 - 0.8 * lungs + ribs * lungs
    cy, cx = lesion
    cam = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / 0.012))
    return image, cam / cam.max()


def _exemplar(
    outcome: str,
    score: float,
    reference: str,
    group: str,
    lesion: tuple[float, float],
    *,
    has_roi: bool | None = None,
) -> dict:
    """An exemplar as the document holds it: a synthetic radiograph with its map centred on
    `lesion` (row, column fractions) and, for an annotated positive, a box around it."""
    size = 128
    image, cam = _synthetic_radiograph(size, lesion)
    has_roi = reference == "positive" if has_roi is None else has_roi
    cy, cx = (round(v * size) for v in lesion)
    box = [cx - 14, cy - 12, cx + 14, cy + 12] if has_roi else None
    return {
        "outcome": outcome,
        "score": score,
        "reference": reference,
        "group": group,
        "has_roi": has_roi,
        "image_png": exemplar_png(image, cam, roi_box=box, source_shape=(size, size)),
    }


def _hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


@functools.cache
def _hypotheses(tp: int, fn: int, tn: int, fp: int) -> dict:
    """Section 4 as report_document_build makes it, from stated goals and the primary results
    above (computed, not typed: the powers are those of validation.stats.sample_size)."""
    protocol = {
        "confidence_level": 0.95,
        "interval_method": "wilson",
        "auc_interval_method": "delong",
        "performance_goals": [
            {"metric": "sensitivity", "goal": 0.70, "anticipated": 0.85, "power": 0.8},
            {"metric": "specificity", "goal": 0.75, "anticipated": 0.85, "power": 0.8},
            {"metric": "auc", "goal": 0.85, "anticipated": 0.92, "power": 0.9},
        ],
    }
    primary = {
        "sensitivity": _wilson(tp, tp + fn),
        "specificity": _wilson(tn, tn + fp),
        "auc": _auc(0.912, 0.871, 0.953),
        "counts": {"n_pos": tp + fn, "n_neg": tn + fp},
    }
    return rounded(hypotheses_section(protocol, primary))


def _independence() -> dict:
    """Section 6: the declared GE scanner took 72 of the 200 test cases; the split's counts
    add up to the 2x2 table above (51/9/119/21)."""
    return {
        "declared_sites": ["Northwind reference hospital", "Public CXR corpus"],
        "declared_scanners": ["GE Healthcare Definium 656", "Carestream DRX-1"],
        "overlapping_sites": [],
        "overlapping_scanners": ["GE Healthcare Definium 656"],
        "n_cases": 200,
        "n_overlap": 72,
        "n_overlap_site": 0,
        "n_overlap_scanner": 72,
        "share": 0.36,
        "independent": False,
        "rule": INDEPENDENCE_RULE,
        "computed": True,
        "min_cell": 10,
        "split": [
            {
                "attribute": "training source",
                "group": "declared training source",
                "n": 72,
                "n_pos": 22,
                "n_neg": 50,
                "suppressed": False,
                "auc": _auc(0.934, 0.880, 0.988),
                "sensitivity": _wilson(20, 22),
                "specificity": _wilson(42, 50),
                "notes": [],
            },
            {
                "attribute": "training source",
                "group": "independent",
                "n": 128,
                "n_pos": 38,
                "n_neg": 90,
                "suppressed": False,
                "auc": _auc(0.899, 0.845, 0.953),
                "sensitivity": _wilson(31, 38),
                "specificity": _wilson(77, 90),
                "notes": [],
            },
        ],
    }


def _sample() -> dict:
    tp, fn, tn, fp = 51, 9, 119, 21
    doc = {
        "schema_version": "1.0",
        "report": {"id": "R-000001", "version": 1, "generated_at": "2026-11-23T10:00:00Z"},
        "identity": {
            "run_id": 1,
            "package": {
                "name": "PneumoDetect CXR",
                "version": "2.3.1",
                "sha256": _hash("package", "PneumoDetect CXR", "2.3.1"),
                "vendor": "Northwind Imaging AB",
            },
            "dataset": {
                "name": "Nordic Chest Radiograph Holdout",
                "version": "2026.1",
                "merkle_root": _hash("dataset", "Nordic Chest Radiograph Holdout", "2026.1"),
                "partner": "Karolinska Regional Imaging Consortium",
            },
            "protocol": {
                "name": "Pneumothorax detection, adult PA/AP chest radiographs",
                "version": "1.2",
                "sha256": _hash("protocol", "1.2"),
                "locked_at": "2026-11-20T14:32:05Z",
            },
            "run": {
                "queued_at": "2026-11-22T08:00:01Z",
                "started_at": "2026-11-22T08:00:04Z",
                "finished_at": "2026-11-22T08:03:41Z",
                "device": "cpu",
                "stage_seconds": {
                    "integrity_check": 3.42,
                    "decode": 11.87,
                    "inference": 41.06,
                    "explainability": 128.3,
                    "metrics": 2.71,
                },
            },
            "software": {
                "blindspot": "0.1.0",
                "python": "3.11.7",
                "torch": "2.14.1",
                "numpy": "2.4.6",
                "scikit-learn": "1.9.1",
                "pydicom": "3.0.2",
                "weasyprint": "70.0",
                "os": "Debian GNU/Linux 12 (bookworm)",
            },
            "sandbox": {
                "isolation": "bwrap --unshare-all",
                "seccomp_denied": ["socket", "socketpair", "execve", "execveat", "ptrace"],
                "limits": "rlimits NPROC 32, DATA 3 GiB; seccomp filter active, no_new_privs",
                "enabled": True,
            },
        },
        "summary": {
            "verdict": "pass",
            "criteria": [
                {
                    "name": "Primary: sensitivity",
                    "metric": "sensitivity",
                    "bound": "lower",
                    "comparator": ">=",
                    "value": 0.70,
                    "observed": _wilson(tp, tp + fn)["lower"],
                    "passed": True,
                    "method": "Wilson score",
                    "interval": _judged(_wilson(tp, tp + fn)),
                },
                {
                    "name": "Primary: specificity",
                    "metric": "specificity",
                    "bound": "lower",
                    "comparator": ">=",
                    "value": 0.75,
                    "observed": _wilson(tn, tn + fp)["lower"],
                    "passed": True,
                    "method": "Wilson score",
                    "interval": _judged(_wilson(tn, tn + fp)),
                },
                {
                    "name": "Secondary: AUC",
                    "metric": "auc",
                    "bound": "estimate",
                    "comparator": ">=",
                    "value": 0.85,
                    "observed": 0.912,
                    "passed": True,
                    "method": "DeLong (Sun & Xu 2014)",
                    "interval": _judged(_auc(0.912, 0.871, 0.953)),
                },
            ],
        },
        "intended_use": {
            "text": (
                "PneumoDetect CXR is a computer-aided triage device that flags adult PA and AP "
                "chest radiographs with findings suggestive of pneumothorax for prioritised "
                "review by a radiologist. It does not provide a diagnosis and is not intended "
                "to replace the radiologist's read."
            ),
            "indications": [
                "Pneumothorax on adult PA or AP chest radiographs",
                "Adults (18 years and older) in emergency, inpatient and outpatient settings",
            ],
        },
        "device": {
            "name": "PneumoDetect CXR",
            "version": "2.3.1",
            "sha256": _hash("package", "PneumoDetect CXR", "2.3.1"),
            "vendor": "Northwind Imaging AB",
            "task": "binary-classification",
            "format": "torch.export",
            "modalities": ["DX", "CR"],
            "input_shape": {"channels": 1, "height": 224, "width": 224},
            "output_labels": ["no-pneumothorax", "pneumothorax"],
            "activation": "softmax",
            "positive_index": 1,
            "threshold": 0.5,
            "intended_use": "PneumoDetect CXR is a computer-aided triage device.",
            "indications": [
                "Pneumothorax on adult PA or AP chest radiographs",
                "Adults (18 years and older) in emergency, inpatient and outpatient settings",
            ],
            "training_data": {
                "declared": True,
                "sites": ["Northwind reference hospital", "Public CXR corpus"],
                "scanners": ["GE Healthcare Definium 656", "Carestream DRX-1"],
                "date_range": ["2019-01-01", "2024-06-30"],
            },
        },
        "protocol": {
            "primary_endpoint": (
                "Sensitivity and specificity at the vendor-declared operating point against "
                "the consensus reference standard."
            ),
            "secondary_endpoints": [
                "Area under the ROC curve",
                "Subgroup sensitivity and specificity by sex and scanner manufacturer",
                "Equalised-odds difference across subgroups",
                "Grad-CAM localisation agreement with annotated regions",
            ],
            "operating_point": {"source": "vendor-declared", "threshold": 0.5},
            "min_cell_size": 10,
            "subgroup_attributes": ["sex", "manufacturer"],
            "confidence_level": 0.95,
            "failure_policy": "exclude-and-report",
        },
        "test_data": {
            "n_cases": 200,
            "n_pos": tp + fn,
            "n_neg": tn + fp,
            "sites": [
                {"name": "Site A (university hospital)", "n": 92},
                {"name": "Site B (regional hospital)", "n": 71},
                {"name": "Site C (outpatient clinic)", "n": 37},
            ],
            "scanners": [
                {"manufacturer": "GE Healthcare", "model": "Definium 656", "n": 72},
                {"manufacturer": "Siemens Healthineers", "model": "Ysio Max", "n": 66},
                {"manufacturer": "Philips", "model": "DigitalDiagnost C90", "n": 56},
                {"manufacturer": "Agfa", "model": "DR 600", "n": 6},
            ],
            "demographics": {
                "sex": [{"group": "F", "n": 100}, {"group": "M", "n": 100}],
                "age": {"median": 58, "min": 19, "max": 91},
            },
            "independence": {
                "declared_training_sites": ["Northwind reference hospital", "Public CXR corpus"],
                "overlapping_sites": [],
                "independent": True,
            },
            "exclusions": [
                {"reason": "Unreadable DICOM (truncated pixel data)", "n": 3},
                {"reason": "Age under 18 (outside intended use)", "n": 5},
                {"reason": "Lateral projection only", "n": 2},
            ],
        },
        "study_design": {
            "recorded": True,
            "card": SAMPLE_STUDY_CARD,
            "missing": [],
            "sha256": hashlib.sha256(
                json.dumps(SAMPLE_STUDY_CARD, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest(),
        },
        "reference_standard": {
            "text": (
                "Consensus of two board-certified thoracic radiologists blinded to the device "
                "output and to each other, with adjudication by a third reader on disagreement; "
                "CT within 24 hours where available (41 cases)."
            ),
            **SAMPLE_STUDY_CARD["reference_standard"],
        },
        "methods": [
            {"quantity": "AUC", "method": "DeLong (Sun & Xu 2014)"},
            {"quantity": "Sensitivity, specificity, PPV, NPV, accuracy", "method": "Wilson score"},
            {
                "quantity": "Subgroup metrics",
                "method": "Wilson score; cells with n < 10 suppressed",
            },
            {"quantity": "Fairness", "method": "Equalised-odds and demographic-parity differences"},
            {"quantity": "Localisation", "method": "Grad-CAM pointing game and energy in ROI"},
        ],
        "primary": {
            "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
            "auc": _auc(0.912, 0.871, 0.953),
            "metrics": {
                "sensitivity": _wilson(tp, tp + fn),
                "specificity": _wilson(tn, tn + fp),
                "ppv": _wilson(tp, tp + fp),
                "npv": _wilson(tn, tn + fn),
                "accuracy": _wilson(tp + tn, tp + tn + fp + fn),
            },
            # Passes through the operating point (0.15, 0.85) with AUC 0.912.
            "roc": _binormal_roc(1.464, 0.413),
            "likelihood_ratios": {
                "positive": _likelihood_ratio(
                    (tp / (tp + fn)) / (fp / (tn + fp)),
                    math.sqrt(1 / tp - 1 / (tp + fn) + 1 / fp - 1 / (tn + fp)),
                ),
                "negative": _likelihood_ratio(
                    (fn / (tp + fn)) / (tn / (tn + fp)),
                    math.sqrt(1 / fn - 1 / (tp + fn) + 1 / tn - 1 / (tn + fp)),
                ),
            },
        },
        "subgroups": [
            _subgroup("sex", "F", tp=28, fn=4, tn=57, fp=11, auc=(0.921, 0.866, 0.976)),
            _subgroup("sex", "M", tp=23, fn=5, tn=62, fp=10, auc=(0.903, 0.839, 0.967)),
            _subgroup(
                "manufacturer", "GE Healthcare", tp=24, fn=0, tn=40, fp=8, auc=(0.9, 0.826, 0.974)
            ),
            _subgroup(
                "manufacturer",
                "Siemens Healthineers",
                tp=18,
                fn=3,
                tn=42,
                fp=3,
                auc=(0.934, 0.871, 0.997),
            ),
            # The safety finding the report must state in words: Philips misses 6 of 14.
            _subgroup("manufacturer", "Philips", tp=8, fn=6, tn=34, fp=8, auc=(0.801, 0.68, 0.922)),
            _subgroup("manufacturer", "Agfa", tp=1, fn=0, tn=3, fp=2, auc=(0.8, 0.4, 1.0)),
        ],
        "calibration": _calibration(),
        "fairness": [
            {
                "attribute": "sex",
                "groups_compared": ["F", "M"],
                "groups_excluded": [],
                "equalized_odds_difference": 0.054,
                "demographic_parity_difference": 0.04,
                "tpr_difference": _difference(0.054, -0.139, 0.251),
                "tpr_max_group": "F",
                "tpr_min_group": "M",
                "fpr_difference": _difference(0.023, -0.098, 0.146),
                "fpr_max_group": "F",
                "fpr_min_group": "M",
                "notes": [],
            },
            {
                "attribute": "manufacturer",
                "groups_compared": ["GE Healthcare", "Philips", "Siemens Healthineers"],
                "groups_excluded": [{"group": "Agfa", "reason": "n < 10"}],
                "equalized_odds_difference": 0.429,
                "demographic_parity_difference": 0.159,
                "tpr_difference": _newcombe(24, 24, 8, 14),
                "tpr_max_group": "GE Healthcare",
                "tpr_min_group": "Philips",
                "fpr_difference": _difference(0.124, -0.011, 0.266),
                "fpr_max_group": "Philips",
                "fpr_min_group": "Siemens Healthineers",
                "notes": [],
            },
        ],
        "explainability": {
            "method": "Grad-CAM",
            "target_layer": "layer4.1",
            "n_maps": tp + fn,
            "localisation": {
                "n_with_roi": 46,
                "pointing_game": 0.783,
                "energy_in_roi": 0.412,
                "chance": 0.094,
            },
            "exemplars_allowed": True,
            "exemplar_rule": exemplar_rule("sex"),
            "exemplar_attribute": "sex",
            "exemplars_without_map": 0,
            "exemplar_outcomes_absent": [],
            "exemplars": [
                _exemplar("TP", 0.912, "positive", "F", (0.3, 0.22)),
                _exemplar("TP", 0.874, "positive", "M", (0.36, 0.7)),
                _exemplar("FN", 0.061, "positive", "F", (0.62, 0.66)),
                _exemplar("FN", 0.188, "positive", "M", (0.5, 0.28), has_roi=False),
                _exemplar("FP", 0.957, "negative", "M", (0.7, 0.3)),
                _exemplar("FP", 0.811, "negative", "unknown", (0.42, 0.64)),
            ],
        },
        # Cases the model could not score (real documents: the failures' categories).
        "failures": [{"category": "Unreadable DICOM (truncated pixel data)", "n": 3}],
        "audit_excerpt": [
            {"seq": seq, "at": at, "actor": actor, "action": action, "hash": _hash("audit", seq)}
            for seq, at, actor, action in [
                (1041, "2026-11-18T09:12:44Z", "vendor:northwind", "PACKAGE_SUBMITTED"),
                (1047, "2026-11-19T11:03:10Z", "staff:e.berg", "PACKAGE_APPROVED"),
                (1052, "2026-11-20T14:32:05Z", "staff:e.berg", "PROTOCOL_LOCKED"),
                (1060, "2026-11-22T08:00:01Z", "staff:e.berg", "RUN_QUEUED"),
                (1061, "2026-11-22T08:00:04Z", "system:runner", "RUN_STARTED"),
                (1062, "2026-11-22T08:03:41Z", "system:runner", "RUN_FINISHED"),
                (1070, "2026-11-23T10:00:00Z", "system:reports", "REPORT_GENERATED"),
            ]
        ],
    }
    doc["hypotheses"] = _hypotheses(tp, fn, tn, fp)
    doc["independence"] = _independence()
    # Findings, discussion and limitations by the report's own rules, as document.py adds them.
    findings = report_findings(doc)
    doc["findings"] = findings
    doc["discussion"] = report_discussion(doc, findings)
    doc["limitations"] = report_limitations(doc)
    doc["audit_gaps"] = [
        {"first": 1042, "last": 1046, "other_objects": 5, "unused": 0},
        {"first": 1048, "last": 1051, "other_objects": 3, "unused": 1},
        {"first": 1053, "last": 1059, "other_objects": 7, "unused": 0},
        {"first": 1063, "last": 1069, "other_objects": 7, "unused": 0},
    ]
    doc["signatures"] = [
        {
            "name": "Dr. Amara Okafor",
            "role": "Clinical reviewer",
            "meaning": "I have reviewed this report and confirm it accurately reports the run.",
            "signed_at": "2026-11-23T13:41:09Z",
        },
        {
            "name": "Jonas Lindqvist",
            "role": "QA approver",
            "meaning": "Approved for issue.",
            "signed_at": "2026-11-23T15:02:51Z",
        },
    ]
    # As reports.services issues it: the signed hash covers everything but the integrity block.
    digest = document_sha256(doc)
    key = Ed25519PrivateKey.from_private_bytes(_SAMPLE_KEY_SEED)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    doc["integrity"] = {
        "document_sha256": digest,
        "content_sha256": document_sha256({k: v for k, v in doc.items() if k not in UNHASHED_KEYS}),
        "service_signature": base64.b64encode(key.sign(digest.encode("ascii"))).decode(),
        "public_key_fingerprint": "SHA256:" + hashlib.sha256(public).hexdigest(),
    }
    return doc


def sample_document() -> dict:
    """A fresh deep copy of the sample report document (callers may mutate it)."""
    return copy.deepcopy(_sample())
