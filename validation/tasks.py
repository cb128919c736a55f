"""Thin Celery entry points: ids in, a service call, nothing else. Each task declares its
stable name (`validation.task_names`); services queue them by that name."""

import socket

from config.celery import cpu_task, gpu_task, report_task
from validation import task_names
from validation.services import comparisons, dataset_imports, packages, runs, shards


@cpu_task(name=task_names.RUN_INFER)
def run_infer(*, run_id: int) -> None:
    runs.run_infer(run_id=run_id)


@gpu_task(name=task_names.RUN_SHARD, bind=True)
def run_shard(self, *, run_id: int, index: int) -> None:
    worker = self.request.hostname or f"eager@{socket.gethostname()}"
    shards.shard_execute(run_id=run_id, index=index, worker=worker)


@cpu_task(name=task_names.RUN_SCORE)
def run_score(*, run_id: int) -> None:
    runs.run_score(run_id=run_id)


@gpu_task(name=task_names.RUN_EXPLAIN)
def run_explain(*, run_id: int) -> None:
    runs.run_explain(run_id=run_id)


@report_task(name=task_names.RUN_REPORT)
def run_report(*, run_id: int) -> None:
    runs.run_report(run_id=run_id)


@cpu_task(name=task_names.COMPARISON_SCORE)
def comparison_score(*, comparison_id: int) -> None:
    comparisons.comparison_score(comparison_id=comparison_id)


@cpu_task(name=task_names.DATASET_IMPORT, bind=True)
def dataset_import(self, *, import_id: int) -> None:
    worker = self.request.hostname or f"eager@{socket.gethostname()}"
    dataset_imports.dataset_import_execute(import_id=import_id, worker=worker)


@gpu_task(name=task_names.PACKAGE_SMOKE_TEST)
def package_smoke_test(*, package_id: int) -> None:
    packages.package_smoke_execute(package_id=package_id)
