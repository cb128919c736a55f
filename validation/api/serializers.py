"""Output shapes per audience. Vendors and partners get aggregates only; small cells are
withheld from them; case-level data has no serializer here at all."""

from rest_framework import serializers

from validation.models import ModelPackage, ValidationRun
from validation.stats.disclosure import (
    calibration_disclosed,
    failures_disclosed,
    independence_disclosed,
    roc_disclosed,
    rounded,
    subgroups_disclosed,
)


class PackageRefSerializer(serializers.ModelSerializer):
    """Another package named by id, version and SHA-256 (a package's predecessor)."""

    class Meta:
        model = ModelPackage
        fields = ["id", "name", "version", "sha256"]
        read_only_fields = fields


class PackageSerializer(serializers.ModelSerializer):
    vendor = serializers.CharField(source="vendor.name")
    supersedes = PackageRefSerializer(
        read_only=True,
        allow_null=True,
        help_text="The version of this model that this package succeeds (its manifest's "
        "`supersedes`), or null.",
    )

    class Meta:
        model = ModelPackage
        fields = [
            "id",
            "vendor",
            "name",
            "version",
            "sha256",
            "size_bytes",
            "model_format",
            "status",
            "review_note",
            "submitted_at",
            "smoke_load_seconds",
            "smoke_batch_seconds",
            "reviewed_at",
            "manifest",
            "refusal_category",
            "refusal_reasons",
            "supersedes",
        ]


class PackageTeamSerializer(PackageSerializer):
    """What the validation team reads: the smoke test's detail (stderr tail, traceback) too."""

    class Meta(PackageSerializer.Meta):
        fields = [*PackageSerializer.Meta.fields, "refusal_detail", "smoke_attempts"]


class PackageUploadSerializer(serializers.Serializer):
    file = serializers.FileField()


class PackageReviewSerializer(serializers.Serializer):
    approve = serializers.BooleanField()
    note = serializers.CharField(required=False, allow_blank=True, default="")


class RunStartSerializer(serializers.Serializer):
    package = serializers.IntegerField()
    dataset_version = serializers.IntegerField()
    protocol = serializers.IntegerField()


class RunSerializer(serializers.ModelSerializer):
    package = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    protocol = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    stage_seconds = serializers.SerializerMethodField()
    error = serializers.CharField(source="error_public")

    class Meta:
        model = ValidationRun
        fields = [
            "id",
            "status",
            "progress",
            "package",
            "dataset",
            "protocol",
            "stage_seconds",
            "sandboxed",
            "error",
            "queued_at",
            "started_at",
            "finished_at",
        ]

    def get_package(self, run) -> dict:
        return {
            "id": run.package_id,
            "name": run.package.name,
            "version": run.package.version,
            "sha256": run.package.sha256,
        }

    def get_dataset(self, run) -> dict:
        version = run.dataset_version
        return {
            "name": version.dataset.name,
            "version": version.version,
            "merkle_root": version.merkle_root,
            "partner": version.dataset.partner.name,
        }

    def get_protocol(self, run) -> dict:
        return {
            "id": run.protocol_id,
            "name": run.protocol.name,
            "version": run.protocol.version,
            "sha256": run.protocol.sha256,
        }

    def get_progress(self, run) -> dict:
        return {"cases_done": run.cases_done, "cases_total": run.cases_total}

    def get_stage_seconds(self, run) -> dict:
        """At the precision the report prints (2 decimals): a model sets its own run time."""
        return rounded(run.stage_seconds or {}, 2)


class RunTeamSerializer(RunSerializer):
    """The validation team also reads the failure details (stderr tail)."""

    error_detail = serializers.CharField()
    execution = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "error_detail", "isolation", "device", "execution"]

    def get_stage_seconds(self, run) -> dict:
        return run.stage_seconds or {}

    def get_execution(self, run) -> dict:
        """Shards: which worker and device took each, deliveries, cold starts and seconds."""
        from validation.selectors import run_execution

        shards = list(run.shards.all())
        return {
            **run_execution(run, shards),
            "per_shard": [
                {
                    "index": s.index,
                    "cases": len(s.case_ids),
                    "status": s.status,
                    "worker": s.worker,
                    "device": s.device,
                    "attempts": s.attempts,
                    "cold_start": s.cold_start,
                    "seconds": s.seconds,
                }
                for s in shards
            ],
        }


def aggregate_results(sections: dict, *, audience: str, min_cell: int) -> dict:
    """The aggregate results a given audience may read. The validation team reads them at full
    precision; for vendors and partners subgroup cells and calibration bins below the
    protocol's minimum size lose every number but their label (with complementary
    suppression), and every number is rounded to the precision the report prints."""
    table = sections.get("subgroups", [])
    subgroups = subgroups_disclosed(table, audience=audience)
    primary = dict(sections.get("primary", {}))
    bootstrap = dict(sections.get("bootstrap") or {})
    if bootstrap:
        bootstrap["subgroups"] = subgroups_disclosed(
            bootstrap["subgroups"], audience=audience, table=table
        )
    results = {
        "primary": primary,
        "subgroups": subgroups,
        "bootstrap": bootstrap,
        "calibration": sections.get("calibration", {}),
        "fairness": sections.get("fairness", []),
        "failures": sections.get("failures", {}),
        "acceptance": sections.get("acceptance", {}),
        # Runs scored before issue 18 have no independence section.
        "independence": sections.get("independence"),
    }
    if audience == "team":
        return results
    if results["independence"] is not None:
        results["independence"] = independence_disclosed(results["independence"], min_cell=min_cell)
    results["calibration"] = calibration_disclosed(results["calibration"], min_cell=min_cell)
    results["failures"] = failures_disclosed(results["failures"], min_cell=min_cell)
    counts = primary.get("counts") or {}
    if "roc" in primary:
        primary["roc"] = roc_disclosed(
            primary["roc"],
            n_pos=int(counts.get("n_pos", 0)),
            n_neg=int(counts.get("n_neg", 0)),
            min_cell=min_cell,
        )
    return rounded(results)
