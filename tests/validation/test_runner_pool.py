"""Warm runners: one model load per (process, package), reused, and reaped when idle."""

import threading
import time

import pytest

from tests.factories import approved_package
from validation import runner_pool

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]


@pytest.fixture
def package(world, package_file):
    return approved_package(world, package_file)


def test_one_cold_start_per_package_then_reaped_when_idle(package):
    first = runner_pool.runner_for(package)
    try:
        assert runner_pool.runner_for(package) is first
        assert runner_pool.runners_warm() == [package.sha256]
        assert runner_pool.runners_reap_idle(max_idle_s=3600) == []
        assert first.running
        assert runner_pool.runners_reap_idle(max_idle_s=0) == [package.sha256]
        assert not first.running and runner_pool.runners_warm() == []
        second = runner_pool.runner_for(package)
        assert second is not first and second.running
    finally:
        runner_pool.runner_discard(package)
    assert runner_pool.runners_warm() == []


def test_the_warm_list_does_not_wait_for_a_cold_start(package):
    """The heartbeat reads `runners_warm` while the task thread may be loading a model. Were the
    read to wait for the load, a worker would fall silent for the whole cold start, its peers
    would take it for dead and send its shard to another worker while it still ran it (seen on
    a slow CI host, where loading took longer than the test's staleness limit)."""
    starting = threading.Thread(target=runner_pool.runner_for, args=(package,))
    starting.start()
    try:
        time.sleep(0.05)  # the start is under way: a sandboxed model load takes ~1 s here
        began = time.monotonic()
        warm = runner_pool.runners_warm()
        took = time.monotonic() - began
        loading = starting.is_alive()
    finally:
        starting.join(timeout=120)
        runner_pool.runner_discard(package)
    assert loading, "the model loaded before the warm list could be read during its start"
    assert warm == [] and took < 0.05


def test_concurrent_first_uses_start_the_model_once(package):
    runners, release = [], threading.Event()

    def use() -> None:
        runners.append(runner_pool.runner_for(package))
        # A sandboxed model process dies with the thread that started it (bwrap's
        # --die-with-parent is a per-thread death signal): keep the threads until checked.
        release.wait(120)

    threads = [threading.Thread(target=use) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(runners) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(runners) == 3 and len({id(r) for r in runners}) == 1
        assert runners[0].running and runner_pool.runners_warm() == [package.sha256]
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=120)
        runner_pool.runner_discard(package)


def test_runners_take_their_limits_from_settings(settings, tmp_path):
    settings.RUNNER_MEMORY_LIMIT_BYTES = 3 * 1024**3
    settings.RUNNER_CPU_LIMIT_S = 600.0
    settings.RUNNER_ALLOW_UNSANDBOXED = False
    runner = runner_pool.runner_new(tmp_path / "model.pt2")
    assert runner.memory_limit_bytes == 3 * 1024**3
    assert runner.cpu_limit_s == 600.0
    assert runner.allow_unsandboxed is False
