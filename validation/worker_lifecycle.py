"""What a Celery worker that consumes the `gpu` queue does besides its tasks: a heartbeat thread
that reports its warm packages and device (for cache-aware routing), rescues the shards of
dead workers and the dataset imports of dead workers (with the staging nobody owns), and a clean
goodbye on shutdown. Connected in `ValidationConfig.ready`; the signals fire only in worker
processes."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from validation.runner_pool import runners_warm, worker_device
from validation.services.dataset_imports import dataset_imports_recover
from validation.services.workers import shards_rescue, worker_heartbeat, worker_leave

log = logging.getLogger(__name__)

_stop = threading.Event()
_state: dict[str, str] = {}


def _consumes_gpu(consumer) -> bool:
    queues = getattr(consumer.app.amqp.queues, "consume_from", None) or {}
    return "gpu" in queues


def beat(hostname: str) -> None:
    """One heartbeat: presence, then the rescue of dead workers' shards."""
    close_old_connections()
    try:
        worker_heartbeat(hostname=hostname, warm_packages=runners_warm(), **worker_device())
        rescued = shards_rescue()
        if rescued:
            log.warning("sent shards of dead workers to the shared queue: %s", rescued)
        requeued = dataset_imports_recover()
        if requeued:
            log.warning("queued again the imports of dead workers: %s", requeued)
    except Exception:  # a heartbeat must never kill the worker; the next one tries again
        log.exception("worker heartbeat failed")
    finally:
        close_old_connections()


@worker_ready.connect
def _gpu_worker_ready(sender=None, **_kwargs) -> None:
    if sender is None or not _consumes_gpu(sender):
        return
    # The cores belong to the model process: this one's numpy (decoding and resizing the next
    # batch) runs on one BLAS thread instead of one per core competing with the model.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    hostname = sender.hostname
    _state["hostname"] = hostname

    def loop() -> None:
        while not _stop.is_set():
            beat(hostname)
            _stop.wait(settings.WORKER_HEARTBEAT_S)

    threading.Thread(target=loop, name="worker-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _leave(**_kwargs) -> None:
    hostname = _state.get("hostname")
    _stop.set()
    if hostname:
        close_old_connections()
        worker_leave(hostname=hostname)
