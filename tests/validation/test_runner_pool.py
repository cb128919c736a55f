"""Warm runners: one model load per (process, package), reused, and reaped when idle."""

import pytest

from validation import runner_pool
from validation.services.packages import package_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def package(world, package_file):
    with open(package_file, "rb") as fh:
        return package_submit(actor=world.vendor_user, upload=fh)


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


def test_runners_take_their_limits_from_settings(settings, tmp_path):
    settings.RUNNER_MEMORY_LIMIT_BYTES = 3 * 1024**3
    settings.RUNNER_CPU_LIMIT_S = 600.0
    settings.RUNNER_ALLOW_UNSANDBOXED = False
    runner = runner_pool.runner_new(tmp_path / "model.pt2")
    assert runner.memory_limit_bytes == 3 * 1024**3
    assert runner.cpu_limit_s == 600.0
    assert runner.allow_unsandboxed is False
