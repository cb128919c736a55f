"""The Celery app and the project's task decorators.

Every task is declared through `cpu_task`, `gpu_task` or `report_task` (a lint rule bans bare
`shared_task`), so each one acks late, is rejected back to the queue when its worker dies, and
lands on the queue its work belongs to.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("blindspot")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue its own routing key: without one, Celery binds every queue to the default exchange
# under the key "default", and a message for one queue lands in all three.
QUEUES = ("default", "gpu", "reports")
app.conf.task_queues = tuple(Queue(name, routing_key=name) for name in QUEUES)
app.autodiscover_tasks()

_COMMON = {"acks_late": True, "reject_on_worker_lost": True, "serializer": "json"}
# Filled by the decorators below: task name -> {"queue": ...} (Celery's task_routes).
TASK_ROUTES: dict[str, dict[str, str]] = {}
app.conf.task_routes = TASK_ROUTES


def _task_decorator(queue: str):
    def decorator(func=None, **options):
        def wrap(f):
            task = app.task(**{**_COMMON, **options})(f)
            TASK_ROUTES[task.name] = {"queue": queue}
            return task

        return wrap(func) if func is not None else wrap

    return decorator


cpu_task = _task_decorator("default")
gpu_task = _task_decorator("gpu")
report_task = _task_decorator("reports")
