"""GPU workers' presence: heartbeats (warm packages, device) and the rescue of shards whose
worker died.

A worker SIGKILLed mid-shard leaves its shard marked running and its task unacknowledged. The
broker gives the task back after its visibility timeout; this rescue is faster and also covers
shards sent to the dead worker's own queue, which nobody else reads: every live GPU worker, on
each heartbeat, sends the unfinished shards of workers silent for WORKER_STALE_S to the shared
queue. Delivering a shard twice is safe (predictions are unique per (run, case); a shard done
is skipped), so the rescue errs on the side of sending again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.celery import enqueue_on_commit
from validation import task_names
from validation.models import RunShard, ValidationRun, WorkerPresence
from validation.routing import SHARED_QUEUE, direct_queue


def worker_heartbeat(
    *, hostname: str, warm_packages: list[str], device: str = "", device_name: str = ""
) -> WorkerPresence:
    """Record that `hostname` is alive and what it holds warm."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "queue": direct_queue(hostname),
        "warm_packages": sorted(warm_packages),
        "heartbeat_at": now,
    }
    if device:
        fields.update(device=device[:32], device_name=device_name[:200])
    presence, _created = WorkerPresence.objects.update_or_create(
        hostname=hostname, defaults=fields, create_defaults={**fields, "started_at": now}
    )
    return presence


def worker_leave(*, hostname: str) -> list[tuple[int, int]]:
    """A worker shutting down cleanly (after its current task): no more shards are routed to it,
    and the shards already routed to its own queue go to the shared one now."""
    gone = timezone.now() - timedelta(days=1)
    WorkerPresence.objects.filter(hostname=hostname).update(heartbeat_at=gone)
    return shards_rescue()


def shards_rescue() -> list[tuple[int, int]]:
    """Send the unfinished shards of dead workers (and those routed to a dead worker's own queue)
    to the shared queue; return their (run id, shard index)."""
    stale = timezone.now() - timedelta(seconds=settings.WORKER_STALE_S)
    dead = list(WorkerPresence.objects.filter(heartbeat_at__lt=stale))
    if not dead:
        return []
    hosts = [w.hostname for w in dead]
    queues = [w.queue for w in dead]
    rescued = []
    with transaction.atomic():
        shards = (
            RunShard.objects.select_for_update(skip_locked=True)
            .filter(run__status=ValidationRun.Status.RUNNING)
            .filter(
                Q(status=RunShard.Status.RUNNING, worker__in=hosts)
                | Q(status=RunShard.Status.PENDING, queue__in=queues)
            )
        )
        for shard in shards:
            shard.queue, shard.worker = SHARED_QUEUE, ""
            shard.save(update_fields=["queue", "worker"])
            rescued.append((shard.run_id, shard.index))
            enqueue_on_commit(
                task_names.RUN_SHARD, queue=SHARED_QUEUE, run_id=shard.run_id, index=shard.index
            )
        WorkerPresence.objects.filter(pk__in=[w.pk for w in dead]).delete()
    return rescued
