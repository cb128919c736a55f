"""Hostile vendor: a model that forks and spawns threads past RLIMIT_NPROC (issue 14, item 2).

Run by root (as here and in CI), bwrap's uid 65534 maps back to host root, which the kernel
exempts from RLIMIT_NPROC: 64 children succeeded under a limit of 32 while the report printed
"NPROC 32". The runner now enters the sandbox as an unprivileged host uid, and the worker
measures its limits inside at start; the report prints those. The hostile model is a real
`torch.export` archive whose pickled weight runs the probe when the worker loads it, after the
worker has confined itself.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from tests.support.hostile_models import pt2_with_pickled_weight
from validation.runner import confinement
from validation.runner.client import ModelRunner, RunnerError
from validation.runner.sandbox import detect_sandbox
from validation.synthetic.reference_model import TinyLesionNet

pytestmark = pytest.mark.sandbox

REPORT_MARK = "PROBE-REPORT "

FORK_BOMB = r"""
import json, os, resource, threading
limit = resource.getrlimit(resource.RLIMIT_NPROC)[0]
report = {"limit": limit, "children": 0, "fork_errno": None, "threads": 0, "thread_error": None}
release_read, release_write = os.pipe()
for _ in range(2 * limit):
    try:
        pid = os.fork()
    except OSError as exc:
        report["fork_errno"] = exc.errno
        break
    if pid == 0:
        os.close(release_write)
        os.read(release_read, 1)  # until the parent lets go
        os._exit(0)
    report["children"] += 1
os.close(release_write)
for _ in range(report["children"]):
    os.wait()
stop, started = threading.Event(), []
for _ in range(2 * limit):
    thread = threading.Thread(target=stop.wait, daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:
        report["thread_error"] = str(exc)
        break
    started.append(thread)
report["threads"] = len(started)
stop.set()
for thread in started:
    thread.join()
raise LookupError("PROBE-REPORT " + json.dumps(report))  # torch swallows RuntimeError
"""


def _bwrap():
    sandbox = detect_sandbox(modes=("bwrap",))
    if not sandbox.isolated:
        pytest.skip("bwrap is not available here")
    return sandbox


@pytest.fixture(scope="module")
def reference_pt2(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("reference") / "model.pt2"
    shapes = ({0: torch.export.Dim.DYNAMIC},)
    program = torch.export.export(
        TinyLesionNet().eval(), (torch.zeros(2, 1, 64, 64),), dynamic_shapes=shapes
    )
    torch.export.save(program, str(path))
    return path


def test_a_model_cannot_fork_or_spawn_threads_past_the_process_limit(reference_pt2, tmp_path):
    model = tmp_path / "model.pt2"
    model.write_bytes(pt2_with_pickled_weight(reference_pt2.read_bytes(), FORK_BOMB))
    runner = ModelRunner(model, sandbox=_bwrap(), threads=1)
    try:
        with pytest.raises(RunnerError) as caught:
            runner.start()
    finally:
        runner.close()
    assert caught.value.category == "load-failed"
    assert REPORT_MARK in caught.value.detail, caught.value.detail
    report = json.loads(caught.value.detail.split(REPORT_MARK, 1)[1].splitlines()[0])
    assert report["limit"] == confinement.MIN_PROCESSES
    # The limit counts every task of the sandbox (bwrap's init, the worker and its threads), so
    # the model gets fewer children than the limit, and the next fork fails with EAGAIN.
    assert 0 < report["children"] < report["limit"], report
    assert report["fork_errno"] == errno.EAGAIN, report
    assert report["threads"] < report["limit"], report
    assert report["thread_error"], report


def test_the_runner_reports_the_limits_measured_inside_the_sandbox(reference_pt2):
    memory = 3 * confinement.GIB
    with ModelRunner(
        reference_pt2, sandbox=_bwrap(), memory_limit_bytes=memory, cpu_limit_s=600
    ) as runner:
        measured = runner.measured_limits
        isolation = runner.isolation
    rlimits = measured["rlimits"]
    assert rlimits["RLIMIT_NPROC"] == [confinement.MIN_PROCESSES] * 2
    assert rlimits["RLIMIT_DATA"] == [memory] * 2
    assert rlimits["RLIMIT_NOFILE"] == [confinement.DEFAULT_OPEN_FILES] * 2
    assert rlimits["RLIMIT_FSIZE"] == [confinement.DEFAULT_FILE_SIZE_BYTES] * 2
    assert rlimits["RLIMIT_CORE"] == [0, 0]
    assert rlimits["RLIMIT_AS"] == [None, None]  # not set: importing torch needs the space
    assert 600 <= rlimits["RLIMIT_CPU"][0] - measured["cpu_used_s"] <= 602
    assert measured["nproc_holds"] is True  # tried for real inside, not assumed
    assert measured["seccomp"] == 2 and measured["no_new_privs"] is True
    assert measured["uid"] == 65534
    assert isolation is not None
    for fragment in (
        "measured inside at start",
        f"NPROC {confinement.MIN_PROCESSES} (holds",
        "DATA 3 GiB",
        "AS unlimited",
        "CPU 600 s",
        "seccomp filter active",
    ):
        assert fragment in isolation, (fragment, isolation)
    assert "NOT ENFORCED" not in isolation


@pytest.mark.django_db
def test_the_measured_limits_reach_the_run_and_its_report(world, package_file, cohort):
    from reports.models import Report
    from reports.rendering import render_html
    from tests.factories import protocol_document
    from tests.run_helpers import infer, start_run
    from validation.models import ValidationRun
    from validation.services import runs

    _bwrap()
    run = start_run(world, package_path=package_file, manifest=cohort, protocol=protocol_document())
    infer(run.pk)
    run.refresh_from_db()
    limits = run.sandbox_limits
    assert limits["rlimits"]["RLIMIT_NPROC"] == [confinement.MIN_PROCESSES] * 2
    assert limits["nproc_holds"] is True and limits["seccomp"] == 2
    assert f"NPROC {confinement.MIN_PROCESSES} (holds" in run.isolation
    runs.run_score(run_id=run.pk)
    runs.run_explain(run_id=run.pk)
    runs.run_report(run_id=run.pk)
    assert ValidationRun.objects.get(pk=run.pk).status == ValidationRun.Status.AWAITING_SIGNATURE
    sandbox = Report.objects.get(run=run).document["identity"]["sandbox"]
    assert sandbox["limits"] == confinement.describe_measured(limits)
    html = render_html(Report.objects.get(run=run).document)
    assert "Limits measured inside at start" in html
    assert f"NPROC {confinement.MIN_PROCESSES} (holds: a thread past it failed)" in html
    assert "seccomp filter active" in html
