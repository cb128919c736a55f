"""Assembling a comparison report's canonical document (issue 18 item 13) from a scored
comparison run (reads only): both packages named by SHA-256 with their lineage, the shared
sealed dataset version and its Merkle root, the locked protocol and its pre-registered
comparison, the paired results with a sentence per decision, per-subgroup paired differences
under the disclosure rule, and the agreement tables. Signed and issued like a run's report."""

from __future__ import annotations

from reports.comparison_prose import endpoint_sentence, verdict_sentence
from reports.document import software_versions
from validation.models import ComparisonRun, ModelPackage, ValidationRun
from validation.stats.disclosure import rounded, subgroups_disclosed

SCHEMA_VERSION = "1.0"
KIND = "comparison"


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _package(run: ValidationRun) -> dict:
    package = run.package
    predecessor = package.supersedes
    return {
        "name": package.name,
        "version": package.version,
        "sha256": package.sha256,
        "vendor": package.vendor.name,
        "threshold": package.manifest.get("threshold"),
        "supersedes": None
        if predecessor is None
        else {"version": predecessor.version, "sha256": predecessor.sha256},
        "run": {
            "id": run.pk,
            "started_at": _iso(run.started_at),
            "device": run.device,
            "sandboxed": run.sandboxed,
        },
    }


def lineage(candidate: ModelPackage, baseline: ModelPackage) -> list[dict]:
    """The versions from the candidate back to the baseline, newest first."""
    chain: list[dict] = []
    package: ModelPackage | None = candidate
    seen: set[int] = set()
    while package is not None and package.pk not in seen:
        seen.add(package.pk)
        chain.append({"version": package.version, "sha256": package.sha256})
        if package.pk == baseline.pk:
            break
        package = package.supersedes
    return chain


def comparison_document_build(
    comparison: ComparisonRun, *, report_ref: str, version: int, generated_at
) -> dict:
    """Everything the comparison report's PDF shows, as plain JSON (no signatures or integrity
    block yet). `comparison.result` is what `evaluate_comparison` returned."""
    baseline, candidate = comparison.baseline, comparison.candidate
    protocol, dataset_version = candidate.protocol, candidate.dataset_version
    result = comparison.result
    names = {
        "baseline_version": baseline.package.version,
        "candidate_version": candidate.package.version,
    }
    endpoints = [
        {**rounded(endpoint), "sentence": endpoint_sentence(endpoint, **names)}
        for endpoint in result["endpoints"]
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "report": {
            "id": report_ref,
            "kind": KIND,
            "version": version,
            "generated_at": _iso(generated_at),
            "required_signatures": protocol.document.get(
                "required_signatures", ["reviewed", "approved"]
            ),
        },
        "identity": {
            "comparison_id": comparison.pk,
            "software": software_versions(),
            "dataset": {
                "name": dataset_version.dataset.name,
                "version": dataset_version.version,
                "merkle_root": dataset_version.merkle_root,
                "partner": dataset_version.dataset.partner.name,
                "sealed_at": _iso(dataset_version.sealed_at),
            },
            "protocol": {
                "name": protocol.name,
                "version": protocol.version,
                "sha256": protocol.sha256,
                "locked_at": _iso(protocol.locked_at),
            },
        },
        "packages": {"baseline": _package(baseline), "candidate": _package(candidate)},
        "lineage": lineage(candidate.package, baseline.package),
        "plan": {
            "endpoints": protocol.document["comparison"]["endpoints"],
            "confidence_level": result.get("level"),
            "min_cell_size": protocol.document["min_cell_size"],
            "interval_method": protocol.document.get("interval_method", "wilson"),
        },
        "cases": {
            key: result.get(key)
            for key in (
                "n_cases",
                "n_paired",
                "n_pos",
                "n_neg",
                "n_excluded",
                "n_failed_baseline",
                "n_failed_candidate",
                "exclusion",
            )
        },
        "overall": rounded(result["overall"]),
        "endpoints": endpoints,
        "verdict": result["verdict"],
        "verdict_sentence": verdict_sentence(result["verdict"], result["endpoints"], **names),
        "agreement": result["agreement"],
        # The issued report goes to the vendor: a group under the minimum keeps its name and
        # loses every number, and so does its complement where it alone is small (the run
        # report's disclosure rule).
        "subgroups": subgroups_disclosed(result["subgroups"], audience="vendor"),
    }
