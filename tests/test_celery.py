"""Every task acks late, goes back to the queue when its worker dies, speaks JSON only, and
lands on the queue its work belongs to; with no broker configured, tasks run eagerly."""

from config.celery import app
from validation import tasks

EXPECTED_QUEUES = {
    tasks.run_infer: "default",
    tasks.run_shard: "gpu",
    tasks.run_explain: "gpu",
    tasks.run_score: "default",
    tasks.run_report: "reports",
}


def test_task_options():
    for task, queue in EXPECTED_QUEUES.items():
        assert task.acks_late is True, task.name
        assert task.reject_on_worker_lost is True, task.name
        assert task.serializer == "json", task.name
        assert app.amqp.router.route({}, task.name)["queue"].name == queue, task.name


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
