"""The Celery app, the project's task decorators, and how services queue tasks.

Every task is declared through `cpu_task`, `gpu_task` or `report_task` (a lint rule bans bare
`shared_task`) with a stable `name=`, so each one acks late, is rejected back to the queue when
its worker dies, lands on the queue its work belongs to, and keeps its name when its code moves.
Services queue tasks by name with `enqueue_on_commit`, never by importing them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from celery import Celery
from django.db import InterfaceError, OperationalError, connection, transaction
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("blindspot")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue its own routing key: without one, Celery binds every queue to the default exchange
# under the key "default", and a message for one queue lands in all three.
QUEUES = ("default", "gpu", "reports")
app.conf.task_queues = tuple(Queue(name, routing_key=name) for name in QUEUES)
app.autodiscover_tasks()


class TransientError(Exception):
    """The infrastructure failed under a task, not the task's work: the database connection
    dropped (a PostgreSQL restart or failover, a terminated backend). The task is retried with
    backoff on a fresh connection instead of failing what it was working on."""


def raise_if_transient(exc: BaseException) -> None:
    """Raise `TransientError` from `exc` if it is the database connection dropping: on
    PostgreSQL a connection exception (SQLSTATE class 08), an operator's intervention (57P: a
    shutdown, a terminated backend) or a client-side failure with no SQLSTATE (the connection
    closed or lost). Any other database error (a constraint, a bad query, anything on SQLite) is
    the work's own and is left to the caller. The dead connection is closed so that the retry
    opens a new one."""
    if not isinstance(exc, OperationalError | InterfaceError) or connection.vendor != "postgresql":
        return
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
    if sqlstate and not sqlstate.startswith(("08", "57P")):
        return
    connection.close()
    raise TransientError(f"database connection lost: {exc}") from exc


# Retried on `TransientError` only, 20 times with exponential backoff (full jitter below 1, 2, 4
# ... 60 s: several minutes in all) before the task gives up.
_COMMON = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "serializer": "json",
    "autoretry_for": (TransientError,),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 20,
}
# Filled by the decorators below: task name -> {"queue": ...} (Celery's task_routes).
TASK_ROUTES: dict[str, dict[str, str]] = {}
app.conf.task_routes = TASK_ROUTES


def _task_decorator(queue: str):
    def decorator(func=None, **options):
        if not options.get("name"):
            raise TypeError(
                "Declare the task's stable name (name=...): a name derived from the module "
                "changes when the code moves and strands the messages already queued."
            )

        def wrap(f):
            task = app.task(**{**_COMMON, **options})(f)
            TASK_ROUTES[task.name] = {"queue": queue}
            return task

        return wrap(func) if func is not None else wrap

    return decorator


cpu_task = _task_decorator("default")
gpu_task = _task_decorator("gpu")
report_task = _task_decorator("reports")


@dataclass(frozen=True)
class QueuedTask:
    """A task to send once the transaction that asked for it commits (a callable for
    `transaction.on_commit`; tests that capture on-commit callbacks can read what it sends)."""

    name: str
    kwargs: dict[str, Any]
    queue: Any = None  # a queue name, a kombu Queue (a worker's own queue), or None: its route

    def __call__(self) -> None:
        options = {"queue": self.queue} if self.queue is not None else {}
        task = app.tasks[self.name]
        if app.conf.task_always_eager:
            task.apply_async(kwargs=self.kwargs, **options)
            return
        # A connection of its own, retried by the publish retry policy while the broker is away:
        # a pooled one can hold a channel that a broker restart closed, on which kombu fails
        # (AttributeError) instead of reconnecting, and the next stage of a run would be lost.
        with app.connection_for_write() as broker:
            task.apply_async(kwargs=self.kwargs, connection=broker, **options)  # type: ignore[call-arg]  # celery-types omits it


def enqueue_on_commit(name: str, *, queue: Any = None, **kwargs: Any) -> QueuedTask:
    """Queue the task registered as `name` with keyword arguments `kwargs` (ids only) when the
    current transaction commits; nothing is sent if it rolls back. Eager in the embedded default
    (no broker), exactly as `delay` would be."""
    queued = QueuedTask(name=name, kwargs=kwargs, queue=queue)
    transaction.on_commit(queued)
    return queued
