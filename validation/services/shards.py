"""Inference in shards: a run's cases split into slices that GPU workers take from the queue.

`shards_plan` cuts the run (once; a re-delivered planner finds the shards already there) and
queues one `run_shard` task per unfinished shard on commit, routed by `routing.shard_queues`
(warm workers first). `shard_execute` claims a shard under row locks, feeds the warm sandboxed
runner batch by batch while a thread reads and decodes the next batch, writes predictions (and
the Grad-CAM maps of the protocol's explain cases, from the same pass) under unique (run, case)
constraints, and stops at the next batch when the run is no longer running. A worker lost
mid-shard costs nothing but time: the shard is delivered again (broker visibility timeout, or a
live worker's rescue of a dead worker's shards, see `services.workers`) and resumes from the
cases not yet predicted. The shard that finishes last moves the run on to scoring.
"""

from __future__ import annotations

import io
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from audit.models import AuditAction
from config.celery import enqueue_on_commit, raise_if_transient
from validation import task_names
from validation.dicom.pixels import InputSpec, batch_inputs
from validation.models import Case, Explanation, Prediction, RunShard, ValidationRun
from validation.routing import queue_for_dispatch, shard_queues
from validation.runner.client import RunnerError
from validation.runner.scores import positive_scores
from validation.runner_pool import (
    runner_discard,
    runner_for,
    runner_is_sandboxed,
    runner_kill,
    runners_warm,
)
from validation.selectors import cases_for_run, run_execution
from validation.services.run_stages import run_advance, run_fail, run_in_status
from validation.stats.localisation import cam_to_uint8, localisation_agreement
from validation.storage import SequesteredDataError, case_dicom_bytes

Status = ValidationRun.Status
ShardStatus = RunShard.Status


def shards_plan(run: ValidationRun, *, shard_size: int | None = None) -> list[RunShard]:
    """Cut the run's cases into shards of `shard_size` (default: the setting), in case order.
    Idempotent: the shards of a run are cut once."""
    size = max(1, shard_size or settings.RUN_SHARD_SIZE)
    if not run.shards.exists():
        ids = list(cases_for_run(run).values_list("pk", flat=True))
        RunShard.objects.bulk_create(
            [
                RunShard(run=run, index=i // size, case_ids=ids[i : i + size])
                for i in range(0, len(ids), size)
            ],
            ignore_conflicts=True,
        )
    return list(run.shards.order_by("index"))


def shards_dispatch(run: ValidationRun, shards: list[RunShard]) -> None:
    """Queue the unfinished shards on commit, each on the queue `routing` picks for it."""
    pending = [s for s in shards if s.status in (ShardStatus.PENDING, ShardStatus.RUNNING)]
    for shard, queue in zip(pending, shard_queues(run.package.sha256, len(pending)), strict=True):
        RunShard.objects.filter(pk=shard.pk).update(queue=queue)
        enqueue_on_commit(
            task_names.RUN_SHARD,
            queue=queue_for_dispatch(queue),
            run_id=run.pk,
            index=shard.index,
        )


@dataclass
class _Prepared:
    """One batch read from the sequestered store and decoded, ready for the model."""

    cases: list[Case]
    rows: list[Prediction]  # the cases that never reach the model (unreadable)
    model_cases: list[Case]
    x: np.ndarray
    seconds: float


def shard_execute(*, run_id: int, index: int, worker: str) -> None:
    """Run one shard on this worker's warm runner (see the module docstring). A lost database
    connection raises `TransientError` (the task retries and the shard resumes); any other error
    nobody expected fails the run (traceback for reviewers) and is re-raised for the task's log."""
    try:
        _execute(run_id, index, worker)
    except Exception as exc:
        raise_if_transient(exc)  # a database restart: retried, resumes where it stopped
        RunShard.objects.filter(run_id=run_id, index=index).exclude(status=ShardStatus.DONE).update(
            status=ShardStatus.STOPPED
        )
        run_fail(run_id=run_id, category="internal-error", detail=traceback.format_exc())
        raise


def _execute(run_id: int, index: int, worker: str) -> None:
    shard = _claim_shard(run_id, index, worker)
    if shard is None:
        return
    run = shard.run
    package = run.package
    began = time.perf_counter()
    elapsed = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0.0
    deadline = time.monotonic() + settings.RUN_TIME_BUDGET_S - elapsed
    if time.monotonic() >= deadline:
        _stop_shard(shard)
        run_fail(run_id=run_id, category="timeout", detail=_budget_spent())
        return
    cold = package.sha256 not in runners_warm()
    try:
        runner = runner_for(package)
    except RunnerError as exc:
        _stop_shard(shard)
        category = exc.category if exc.category == "no-isolation" else "load-failed"
        run_fail(run_id=run_id, category=category, detail=exc.detail)
        return
    load_seconds = round(time.perf_counter() - began, 3) if cold else 0.0
    ValidationRun.objects.filter(pk=run_id).update(
        isolation=runner.isolation or "",
        sandboxed=runner_is_sandboxed(runner),
        sandbox_limits=runner.measured_limits,
        device=runner.info.get("device", "cpu"),
    )
    work = _ShardWork(run, shard, _RunWatch(run_id, package, deadline))
    done = set(run.predictions.filter(case_id__in=shard.case_ids).values_list("case_id", flat=True))
    cases = [c for c in _shard_cases(shard) if c.pk not in done]
    with work.watch:
        try:
            for prepared in _prepared_batches(cases, work.spec, settings.RUNNER_BATCH_SIZE):
                work.watch.check()
                if not run_in_status(run_id, Status.RUNNING):
                    raise _RunStopped  # cancelled or failed: stop at the batch boundary
                work.batch(prepared)
        except _RunStopped:
            _stop_shard(shard)
            return
        except _RunTimedOut as exc:
            _stop_shard(shard)
            runner_discard(package)
            run_fail(run_id=run_id, category="timeout", detail=str(exc))
            return
    seconds = {
        **work.seconds,
        "load": load_seconds,
        "wall": round(time.perf_counter() - began, 3),
    }
    _finish_shard(shard, runner, seconds=seconds, cold=cold)


def _budget_spent() -> str:
    return f"The run's time budget ({settings.RUN_TIME_BUDGET_S:g} s, RUN_TIME_BUDGET_S) was spent."


class _RunStopped(Exception):
    """The run was cancelled or failed while this shard worked on it."""


class _RunTimedOut(Exception):
    """The model timed out too often in a row, or the run's time budget was spent."""


class _RunWatch:
    """Watches the run while a batch is with the model: a thread reads the run's state every
    RUN_WATCH_INTERVAL_S and kills the model process at once when the run is cancelled or
    failed (by a reviewer, or another shard), or when the run's time budget is spent; the shard
    thread, whose request then fails, asks `check` what happened. Used as a context manager."""

    def __init__(self, run_id: int, package, deadline: float) -> None:
        self.run_id, self.package, self.deadline = run_id, package, deadline
        self.stopped = threading.Event()  # the run is no longer running
        self.expired = threading.Event()  # the time budget is spent
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-watch", daemon=True)

    def __enter__(self) -> _RunWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join(timeout=10.0)

    def check(self) -> None:
        """Raise what the watcher saw: `_RunStopped` or `_RunTimedOut` (budget spent)."""
        if self.stopped.is_set():
            raise _RunStopped
        if self.expired.is_set() or time.monotonic() >= self.deadline:
            raise _RunTimedOut(_budget_spent())

    def _loop(self) -> None:
        try:
            while not self._done.wait(settings.RUN_WATCH_INTERVAL_S):
                if time.monotonic() >= self.deadline:
                    self.expired.set()
                elif self._read_status() in ValidationRun.TERMINAL:
                    self.stopped.set()
                else:
                    continue
                runner_kill(self.package)
                return
        finally:
            connection.close()  # this thread's own database connection

    def _read_status(self) -> str | None:
        try:
            return (
                ValidationRun.objects.filter(pk=self.run_id)
                .values_list("status", flat=True)
                .first()
            )
        except Exception:  # a database hiccup: ask again at the next tick
            return None


class _ShardWork:
    """The model side of a shard: scores for every case, Grad-CAM maps from the same pass for
    the cases the protocol explains (readable positives), each batch written as it lands."""

    def __init__(self, run: ValidationRun, shard: RunShard, watch: _RunWatch) -> None:
        manifest = run.package.manifest
        self.run, self.shard, self.package, self.watch = run, shard, run.package, watch
        self.timeouts = 0  # consecutive model timeouts (a batch, then its cases one by one)
        self.spec = InputSpec.from_dict(manifest["input"])
        self.output = manifest["output"]
        wanted = run.protocol.document.get("explain", {}).get("cases", "positives")
        self.layer = manifest.get("gradcam_target_layer") if wanted == "positives" else None
        self.reshape = manifest.get("gradcam_reshape")
        self.seconds = {"read_decode": 0.0, "model": 0.0, "write": 0.0}

    def batch(self, prepared: _Prepared) -> None:
        self.seconds["read_decode"] += prepared.seconds
        started = time.perf_counter()
        rows, maps = list(prepared.rows), []
        cases = prepared.model_cases
        layer = self.layer
        explain = [i for i, c in enumerate(cases) if layer and c.label == 1]
        plain = sorted(set(range(len(cases))) - set(explain))
        if layer and explain:
            explained, maps = self._explain([cases[i] for i in explain], prepared.x[explain], layer)
            rows += explained
        if plain:
            rows += self._predict([cases[i] for i in plain], prepared.x[plain])
        written = time.perf_counter()
        self.seconds["model"] += written - started
        for row in rows:
            row.run_id = self.run.pk
        with transaction.atomic():
            Prediction.objects.bulk_create(rows, ignore_conflicts=True)
            Explanation.objects.bulk_create(maps, ignore_conflicts=True)
        done = self.run.predictions.count()
        ValidationRun.objects.filter(pk=self.run.pk).update(
            cases_done=Greatest(F("cases_done"), done)
        )
        self.seconds["write"] += time.perf_counter() - written

    def _explain(self, cases: list[Case], x: np.ndarray, layer: str):
        """Scores and maps in one forward-and-backward pass; on a failure the cases fall back
        to plain prediction (with its per-case retry) and `run_explain` retries their maps."""
        try:
            logits, cams = runner_for(self.package).gradcam(
                x, layer, self.output["positive_index"], reshape=self.reshape
            )
            scores = _scores(logits, self.output, len(cases))
        except (RunnerError, ValueError) as exc:
            self._failed(exc)
            return self._predict(cases, x), []
        rows = [Prediction(case=c, score=float(s)) for c, s in zip(cases, scores, strict=True)]
        return rows, [explanation_row(self.run, c, cam) for c, cam in zip(cases, cams, strict=True)]

    def _predict(self, cases: list[Case], x: np.ndarray) -> list[Prediction]:
        """Scores for a batch; when the model fails on it, each case is retried once on its
        own, so one bad case costs one case: a case that fails alone is recorded with its
        category. Timeouts in a row end the run (`RUN_MAX_CONSECUTIVE_TIMEOUTS`): a model that
        stalls on every image would otherwise cost a batch timeout per case."""
        self.watch.check()
        try:
            scores = _scores(runner_for(self.package).predict(x), self.output, len(cases))
        except (RunnerError, ValueError) as exc:
            category = self._failed(exc)
            if len(cases) == 1:
                return [Prediction(case=cases[0], error_category=category)]
            return [
                row for c, xi in zip(cases, x, strict=True) for row in self._predict([c], xi[None])
            ]
        self.timeouts = 0
        return [Prediction(case=c, score=float(s)) for c, s in zip(cases, scores, strict=True)]

    def _failed(self, exc: Exception) -> str:
        """After a failed request: stop if the run was stopped meanwhile (the watcher killed
        the model), count a timeout, discard a runner that cannot serve again."""
        category = getattr(exc, "category", "bad-output")
        if category in {"crash", "timeout", "oom"}:
            runner_discard(self.package)  # the next call starts a fresh runner
        self.watch.check()
        if category == "timeout":
            self.timeouts += 1
            if self.timeouts >= settings.RUN_MAX_CONSECUTIVE_TIMEOUTS:
                raise _RunTimedOut(
                    f"The model timed out {self.timeouts} times in a row (batch timeout "
                    f"{settings.RUNNER_BATCH_TIMEOUT_S:g} s, RUN_MAX_CONSECUTIVE_TIMEOUTS "
                    f"{settings.RUN_MAX_CONSECUTIVE_TIMEOUTS}).\n{getattr(exc, 'detail', '')}"
                )
        return category


def explanation_row(run: ValidationRun, case: Case, cam: np.ndarray) -> Explanation:
    """A Grad-CAM map stored as uint8 .npy, with its agreement with the case's ROI if any."""
    hit, energy = (None, None)
    if case.roi:
        source = (case.attributes.get("rows"), case.attributes.get("columns"))
        hit, energy = localisation_agreement(cam, case.roi, source_shape=source)
    buf = io.BytesIO()
    np.save(buf, cam_to_uint8(cam), allow_pickle=False)
    return Explanation(
        run=run, case=case, cam_npy=buf.getvalue(), pointing_hit=hit, energy_in_roi=energy
    )


def _scores(logits: np.ndarray, output: dict, n: int) -> np.ndarray:
    scores = positive_scores(
        logits, activation=output["activation"], positive_index=output["positive_index"]
    )
    if len(scores) != n or not np.isfinite(scores).all():
        raise RunnerError(category="bad-output", detail="non-finite or misshapen scores")
    return scores


def _prepare(cases: list[Case], spec: InputSpec) -> _Prepared:
    started = time.perf_counter()
    rows = [Prediction(case=c, error_category="unreadable") for c in cases if c.read_error]
    readable, blobs = [], []
    for case in cases:
        if case.read_error:
            continue
        try:
            blobs.append(case_dicom_bytes(case))
            readable.append(case)
        except SequesteredDataError:
            rows.append(Prediction(case=case, error_category="unreadable"))
    x, errors = batch_inputs(blobs, spec)
    ok = [i for i, e in enumerate(errors) if e is None]
    rows += [
        Prediction(case=readable[i], error_category="unreadable")
        for i, e in enumerate(errors)
        if e is not None
    ]
    return _Prepared(
        cases=cases,
        rows=rows,
        model_cases=[readable[i] for i in ok],
        x=x[ok],
        seconds=time.perf_counter() - started,
    )


def _prepared_batches(cases: list[Case], spec: InputSpec, size: int) -> Iterator[_Prepared]:
    """The shard's batches, each read and decoded on a thread while the model works on the one
    before (the runner waits on its pipes with the GIL released)."""
    batches = [cases[i : i + size] for i in range(0, len(cases), size)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-decode") as pool:
        upcoming = pool.submit(_prepare, batches[0], spec)
        for following in [*batches[1:], None]:
            prepared = upcoming.result()
            if following is not None:
                upcoming = pool.submit(_prepare, following, spec)
            yield prepared


def _shard_cases(shard: RunShard) -> list[Case]:
    by_pk = Case.objects.in_bulk(shard.case_ids)
    return [by_pk[pk] for pk in shard.case_ids if pk in by_pk]


def _claim_shard(run_id: int, index: int, worker: str) -> RunShard | None:
    """Lock run and shard; claim the shard for this worker if the run is running and the shard
    is not finished (a shard still marked running was lost with its worker: take it over)."""
    with transaction.atomic():
        run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
        shard = RunShard.objects.select_for_update().filter(run_id=run_id, index=index).first()
        if run is None or shard is None or shard.status in (ShardStatus.DONE, ShardStatus.STOPPED):
            return None
        if run.status != Status.RUNNING:
            shard.status = ShardStatus.STOPPED
            shard.save(update_fields=["status"])
            return None
        shard.status = ShardStatus.RUNNING
        shard.attempts += 1
        shard.worker = worker
        shard.started_at = timezone.now()
        shard.save(update_fields=["status", "attempts", "worker", "started_at"])
        shard.run = run
        return shard


def _stop_shard(shard: RunShard) -> None:
    RunShard.objects.filter(pk=shard.pk).exclude(status=ShardStatus.DONE).update(
        status=ShardStatus.STOPPED
    )


def _finish_shard(shard: RunShard, runner, *, seconds: dict, cold: bool) -> None:
    """Mark the shard done; the shard that finds every shard of its run done moves the run on.
    One transaction under the run's lock (taken before the shard's, as the claim does): a
    database lost between the two writes cannot leave every shard done and the run running, and
    two shards finishing at once see each other's commit, so exactly one advances the run."""
    with transaction.atomic():
        ValidationRun.objects.select_for_update().filter(pk=shard.run_id).first()
        locked = RunShard.objects.select_for_update().get(pk=shard.pk)
        if locked.status != ShardStatus.RUNNING:
            return
        locked.status = ShardStatus.DONE
        locked.finished_at = timezone.now()
        locked.device = str(runner.info.get("device", "cpu"))[:32]
        locked.cold_start = cold
        locked.seconds = {key: round(value, 3) for key, value in seconds.items()}
        locked.save()
        run = shard.run
        if run.shards.exclude(status=ShardStatus.DONE).exists():
            return
        counts = Counter(
            p.error_category or "scored" for p in run.predictions.only("error_category").iterator()
        )
        summary = run_execution(run)
        assert run.started_at is not None  # set when the run was claimed for inference
        run_advance(
            run,
            from_status=Status.RUNNING,
            to_status=Status.SCORING,
            action=AuditAction.RUN_INFERENCE_DONE,
            stage="inference",
            seconds=(timezone.now() - run.started_at).total_seconds(),
            payload={**dict(counts), "execution": summary},
            next_task=task_names.RUN_SCORE,
        )
