"""Cache-aware routing of shards: a package's shards go first to the workers that hold it warm.

Every GPU worker consumes the shared `gpu` queue and its own queue (Celery's worker-direct
queue, `<hostname>.dq2`), and reports the packages it holds warm in its heartbeat
(`WorkerPresence`). A run sends up to RUN_AFFINITY_SHARDS_PER_WORKER shards, round-robin, to the
own queue of each live worker holding its package warm, and the rest to the shared queue, which
every worker (warm or cold) takes from. A small run then starts nobody cold; a large one still
spreads over every worker. A shard routed to a worker that dies is sent to the shared queue
again by the survivors' rescue (`services.workers.shards_rescue`), so a direct queue never
strands work.
"""

from __future__ import annotations

from celery.utils.nodenames import worker_direct
from django.conf import settings

from validation.selectors import live_workers

SHARED_QUEUE = "gpu"


def direct_queue(hostname: str) -> str:
    """The name of a worker's own queue (Celery's worker-direct queue)."""
    return worker_direct(hostname).name


def queue_for_dispatch(name: str):
    """What `apply_async(queue=...)` needs: a worker's own queue must be sent with its exchange
    and routing key (the `C.dq2` exchange, keyed by hostname); a name alone would go nowhere."""
    suffix = ".dq2"
    return worker_direct(name[: -len(suffix)]) if name.endswith(suffix) else name


def shard_queues(package_sha256: str, count: int) -> list[str]:
    """The queue for each of `count` shards of a run of this package."""
    warm = [w for w in live_workers() if package_sha256 in (w.warm_packages or [])]
    direct = len(warm) * max(0, settings.RUN_AFFINITY_SHARDS_PER_WORKER)
    return [
        direct_queue(warm[i % len(warm)].hostname) if i < direct else SHARED_QUEUE
        for i in range(count)
    ]
