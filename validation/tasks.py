"""Thin Celery entry points: ids in, a service call, nothing else."""

import socket

from config.celery import cpu_task, gpu_task, report_task
from validation.services import runs


@cpu_task
def run_infer(*, run_id: int) -> None:
    runs.run_infer(run_id=run_id)


@gpu_task(bind=True)
def run_shard(self, *, run_id: int, index: int) -> None:
    from validation.services import shards

    worker = self.request.hostname or f"eager@{socket.gethostname()}"
    shards.shard_execute(run_id=run_id, index=index, worker=worker)


@cpu_task
def run_score(*, run_id: int) -> None:
    runs.run_score(run_id=run_id)


@gpu_task
def run_explain(*, run_id: int) -> None:
    runs.run_explain(run_id=run_id)


@report_task
def run_report(*, run_id: int) -> None:
    runs.run_report(run_id=run_id)


@cpu_task
def dataset_import(*, import_id: int) -> None:
    from validation.services import dataset_imports

    dataset_imports.dataset_import_execute(import_id=import_id)
