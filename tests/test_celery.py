"""Every task acks late, goes back to the queue when its worker dies, speaks JSON only, lands on
the queue its work belongs to and is registered under a stable name; with no broker configured,
tasks run eagerly."""

import pytest

from config.celery import QueuedTask, app, cpu_task, enqueue_on_commit
from reports import tasks as report_tasks
from validation import task_names, tasks

# The registered name of every task, and its queue. A rename strands the messages already queued
# under the old name: changing this table is a reviewed decision, not a side effect of a move.
EXPECTED = {
    "validation.tasks.run_infer": (tasks.run_infer, "default"),
    "validation.tasks.run_shard": (tasks.run_shard, "gpu"),
    "validation.tasks.run_explain": (tasks.run_explain, "gpu"),
    "validation.tasks.run_score": (tasks.run_score, "default"),
    "validation.tasks.run_report": (tasks.run_report, "reports"),
    "validation.tasks.comparison_score": (tasks.comparison_score, "default"),
    "validation.tasks.dataset_import": (tasks.dataset_import, "default"),
    "reports.tasks.report_issue": (report_tasks.report_issue, "reports"),
    "reports.tasks.report_pages_make": (report_tasks.report_pages_make, "reports"),
    "validation.tasks.package_smoke_test": (tasks.package_smoke_test, "gpu"),
}


def test_task_options():
    for name, (task, queue) in EXPECTED.items():
        assert task.name == name
        assert task.acks_late is True, task.name
        assert task.reject_on_worker_lost is True, task.name
        assert task.serializer == "json", task.name
        assert app.amqp.router.route({}, task.name)["queue"].name == queue, task.name


def test_every_registered_task_is_listed_with_its_stable_name():
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == set(EXPECTED)
    names = {value for key, value in vars(task_names).items() if key.isupper()}
    assert names == set(EXPECTED)


def test_a_task_without_a_declared_name_is_refused():
    with pytest.raises(TypeError, match="stable name"):

        @cpu_task
        def unnamed(*, run_id: int) -> None:  # pragma: no cover - never registered
            pass


def test_services_queue_tasks_by_name_on_commit(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        enqueue_on_commit(task_names.RUN_SCORE, run_id=7)
    assert queued == [QueuedTask(name="validation.tasks.run_score", kwargs={"run_id": 7})]
    # The name resolves to the registered task (a typo would raise KeyError here, not later).
    assert app.tasks[queued[0].name] is tasks.run_score._get_current_object()


def test_worker_settings():
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"]
    assert {q.name for q in app.conf.task_queues} == {"default", "gpu", "reports"}
    # One routing key each: bound under one shared key, a message would land in every queue.
    assert sorted(q.routing_key for q in app.conf.task_queues) == ["default", "gpu", "reports"]
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > app.conf.task_time_limit > app.conf.task_soft_time_limit
    assert app.conf.worker_direct is True  # each worker's own queue, for cache-aware routing


def test_eager_without_a_broker(settings):
    assert settings.CELERY_BROKER_URL == "memory://localhost/"
    assert app.conf.task_always_eager is True
