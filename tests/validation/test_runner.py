"""The sandboxed model runner, its wire protocol, and the package reader it depends on.

Real components throughout: a real package built with `build_package`, a real worker subprocess
inside whatever sandbox this host offers, real pytorch-grad-cam in-process as the reference. The
only stand-ins are tiny fake "interpreters" for failures a real model cannot be made to produce on
demand (hanging, dying during start-up).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from validation.packaging import (
    PackageError,
    build_package,
    default_manifest,
    manifest_errors,
    read_package,
)
from validation.runner import protocol
from validation.runner.client import REPO_ROOT, ModelRunner, RunnerError
from validation.runner.sandbox import NoSandbox, detect_sandbox
from validation.synthetic.reference_model import GRADCAM_TARGET_LAYER, TinyLesionNet

torch.set_num_threads(1)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eager_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = TinyLesionNet()
    # Non-trivial batch-norm statistics, so eval-mode normalisation is actually exercised.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            # present: BatchNorm2d tracks running statistics by default
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def manifest() -> dict:
    return default_manifest(
        name="Reference lesion detector",
        version="1.0.0",
        gradcam_target_layer=GRADCAM_TARGET_LAYER,
        training_data={
            "sites": ["A"],
            "scanners": ["X"],
            "date_range": ["2020-01-01", "2021-12-31"],
        },
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory, eager_model, manifest) -> Path:
    out = tmp_path_factory.mktemp("package") / "reference.tar.gz"
    return build_package(
        model=eager_model,
        example_input=torch.zeros(2, 1, 64, 64),
        manifest=manifest,
        out_path=out,
    )


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, package) -> Path:
    _, pt2 = read_package(package)
    path = tmp_path_factory.mktemp("model") / "model.pt2"
    path.write_bytes(pt2)
    return path


def _refuse(*args, **kwargs):
    raise AssertionError("a vendor model was loaded in the calling process")


@pytest.fixture(scope="module")
def runner(model_file):
    # Loading inside this process would trip these: the model must only load in the worker.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.export, "load", _refuse)
        patch.setattr(torch.export, "unflatten", _refuse)
        started = ModelRunner(model_file, threads=1, batch_timeout_s=60).start()
    yield started
    started.close()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1, (12, 1, 64, 64)).astype(np.float32)


def _fake_interpreter(tmp_path: Path, body: str) -> str:
    """An executable standing in for `python`: receives `-P -s -m validation.runner.worker ...`."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    return str(script)


_ANSWER_PING_THEN_HANG = """
import os, sys, time
from validation.runner import protocol
read = sys.stdin.buffer.readinto
header, _ = protocol.read_message(read)
reply = protocol.ok_reply(header["id"], {"pid": os.getpid()})
protocol.write_chunks(sys.stdout.buffer, protocol.encode_message(reply))
sys.stdin.buffer.read(8)  # the next request arrives: never answer it
time.sleep(120)
"""


# -- the runner ----------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_runner_is_a_separate_sandboxed_child(runner):
    assert runner.running
    assert runner.pid != os.getpid()
    stat = Path(f"/proc/{runner.pid}/stat").read_text()
    assert int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()  # its parent is this process
    assert runner.isolation and not runner.isolation.startswith("none")
    assert runner.load_seconds > 0
    assert runner.info["input_shape"] == [None, 1, 64, 64]
    assert runner.info["output_columns"] == 1
    assert runner.info["threads"] == 1


@pytest.mark.sandbox
def test_predict_matches_the_eager_model(runner, eager_model, images, monkeypatch):
    monkeypatch.setattr(torch.export, "load", _refuse)
    monkeypatch.setattr(torch.export, "unflatten", _refuse)
    with torch.no_grad():
        expected = eager_model(torch.from_numpy(images)).numpy()

    outputs = runner.predict(images)

    assert outputs.dtype == np.float32 and outputs.shape == (12, 1)
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


@pytest.mark.sandbox
def test_predict_splits_large_inputs_into_batches(runner, eager_model, images, monkeypatch):
    monkeypatch.setattr(runner, "max_batch", 5)
    with torch.no_grad():
        expected = eager_model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(runner.predict(images), expected, atol=1e-5, rtol=0)


@pytest.mark.sandbox
def test_gradcam_matches_pytorch_grad_cam_on_the_eager_model(runner, eager_model, images):
    cam = GradCAM(model=eager_model, target_layers=[eager_model.get_submodule("block3")])
    try:
        expected = cam(torch.from_numpy(images), [ClassifierOutputTarget(0)] * len(images))
    finally:
        cam.activations_and_grads.release()
    with torch.no_grad():
        expected_logits = eager_model(torch.from_numpy(images)).numpy()

    logits, cams = runner.gradcam(images, "block3", target_index=0)

    assert cams.dtype == np.float32 and cams.shape == (12, 64, 64)
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    np.testing.assert_allclose(cams, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5, rtol=0)


@pytest.mark.sandbox
def test_gradcam_on_a_layer_without_parameters(runner, eager_model, images):
    layer = eager_model.get_submodule("block3.2")  # the ReLU
    cam = GradCAM(model=eager_model, target_layers=[layer])
    try:
        expected = cam(torch.from_numpy(images), [ClassifierOutputTarget(0)] * len(images))
    finally:
        cam.activations_and_grads.release()

    _, cams = runner.gradcam(images, "block3.2")

    np.testing.assert_allclose(cams, expected, atol=1e-5, rtol=0)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("layer", "index"), [("block9", 0), ("block3", 1), ("", 0), ("block3", -1)]
)
def test_gradcam_bad_requests_are_bad_input(runner, images, layer, index):
    with pytest.raises(RunnerError) as caught:
        runner.gradcam(images[:2], layer, target_index=index)
    assert caught.value.category == "bad-input"
    assert runner.running


def _with_nan(x):
    x = x.copy()
    x[3, 0, 10, 10] = np.nan
    return x


def _with_inf(x):
    x = x.copy()
    x[0, 0, 0, 0] = np.inf
    return x


@pytest.mark.sandbox
@pytest.mark.parametrize(
    "corrupt",
    [
        _with_nan,
        _with_inf,
        lambda x: x[:, 0],  # (N, H, W): wrong ndim
        lambda x: x[0, 0],  # (H, W)
        lambda x: x.astype(np.float64),
        lambda x: x.astype(np.int32),
        lambda x: np.repeat(x, 3, axis=1),  # three channels
        lambda x: x[:, :, :32, :32],  # wrong size
        lambda x: x[:0],  # empty batch
    ],
    ids=["nan", "inf", "3d", "2d", "float64", "int32", "channels", "size", "empty"],
)
def test_bad_input_is_refused_without_killing_the_runner(runner, images, corrupt):
    pid = runner.pid
    with pytest.raises(RunnerError) as caught:
        runner.predict(corrupt(images))
    assert caught.value.category == "bad-input"
    assert runner.running and runner.pid == pid
    assert runner.predict(images[:2]).shape == (2, 1)


@pytest.mark.sandbox
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_refused_batch_mid_stream_leaves_the_runner_in_step(runner, images, monkeypatch, depth):
    # Batches 0-1 go fine, batch 2 holds a NaN, batches 3-5 were already sent behind it: their
    # replies must be read and dropped, or every later request would get the wrong reply.
    monkeypatch.setattr(runner, "max_batch", 2)
    monkeypatch.setattr(runner, "pipeline_depth", depth)
    pid = runner.pid
    corrupt = images.copy()
    corrupt[5, 0, 3, 3] = np.nan
    with pytest.raises(RunnerError) as caught:
        runner.predict(corrupt)
    assert caught.value.category == "bad-input"
    assert runner.running and runner.pid == pid
    monkeypatch.setattr(runner, "pipeline_depth", 1)
    expected = runner.predict(images)
    monkeypatch.setattr(runner, "pipeline_depth", depth)
    np.testing.assert_array_equal(runner.predict(images), expected)
    assert runner.ping()["pid"] == runner.info["pid"]


@pytest.mark.sandbox
@pytest.mark.parametrize("slot_bytes", [0, 4096], ids=["pipe-only", "mixed"])
def test_shared_memory_and_pipe_transports_give_the_same_answers(
    runner, model_file, images, slot_bytes
):
    # 0: every array on the pipe; 4 KiB slots: logits in shared memory, images and maps too big
    # for a slot, so they go on the pipe in the same messages.
    with ModelRunner(model_file, threads=1, shared_slot_bytes=slot_bytes, max_batch=5) as other:
        np.testing.assert_array_equal(other.predict(images), runner.predict(images))
        logits, cams = other.gradcam(images, "block3")
    expected_logits, expected_cams = runner.gradcam(images, "block3")
    np.testing.assert_array_equal(logits, expected_logits)
    np.testing.assert_array_equal(cams, expected_cams)


@pytest.mark.sandbox
def test_replies_larger_than_the_pipe_do_not_deadlock_a_pipelined_stream(runner, monkeypatch):
    # 160 images in batches of 80: each request and each Grad-CAM reply is 1.25 MiB, more than
    # the pipes hold (1 MiB at most), two in flight: the worker blocks writing reply 1 until the
    # client reads it, while the client is still writing request 2, unless replies are drained
    # as they come.
    images = np.random.default_rng(1).normal(0, 1, (160, 1, 64, 64)).astype(np.float32)
    monkeypatch.setattr(runner, "max_batch", 80)
    monkeypatch.setattr(runner, "batch_timeout_s", 30)
    monkeypatch.setattr(runner, "pipeline_depth", 2)
    logits, cams = runner.gradcam(images, "block3")
    monkeypatch.setattr(runner, "pipeline_depth", 1)
    expected_logits, expected_cams = runner.gradcam(images, "block3")
    np.testing.assert_array_equal(logits, expected_logits)
    np.testing.assert_array_equal(cams, expected_cams)


@pytest.mark.sandbox
def test_a_batch_above_the_exported_maximum_is_bad_input(runner, monkeypatch):
    monkeypatch.setattr(runner, "max_batch", 2048)
    with pytest.raises(RunnerError) as caught:
        runner.predict(np.zeros((1025, 1, 64, 64), np.float32))
    assert caught.value.category == "bad-input"
    assert runner.running


@pytest.mark.sandbox
def test_killed_worker_is_a_crash(model_file, images):
    # A runner of its own (the shared one must survive), in the weaker sandbox when available,
    # so that both sandbox modes run a real model here.
    sandbox = detect_sandbox(modes=("unshare",))
    if not sandbox.isolated:
        sandbox = detect_sandbox()
    runner = ModelRunner(model_file, sandbox=sandbox, allow_unsandboxed=True).start()
    try:
        assert runner.predict(images[:2]).shape == (2, 1)
        assert runner.pid is not None  # started above
        os.kill(runner.pid, signal.SIGKILL)
        with pytest.raises(RunnerError) as caught:
            runner.predict(images)
        assert caught.value.category == "crash"
        assert "SIGKILL" in caught.value.detail
        assert "SIGKILL" not in str(caught.value)  # the detail is for reviewers only
        assert not runner.running
        with pytest.raises(RunnerError) as again:
            runner.predict(images)
        assert again.value.category == "crash"
    finally:
        runner.close()


@pytest.mark.sandbox
def test_worker_death_at_start_reports_its_stderr(model_file, tmp_path):
    python = _fake_interpreter(
        tmp_path, "import sys\nsys.stderr.write('vendor secret traceback\\n')\nsys.exit(7)\n"
    )
    runner = ModelRunner(model_file, python=python)
    with pytest.raises(RunnerError) as caught:
        runner.start()
    assert caught.value.category == "crash"
    assert "status 7" in caught.value.detail
    assert "vendor secret traceback" in caught.value.detail
    assert "vendor secret" not in str(caught.value)
    assert not runner.running


@pytest.mark.sandbox
def test_start_timeout_kills_the_worker(model_file, tmp_path):
    python = _fake_interpreter(tmp_path, "import time\ntime.sleep(120)\n")
    runner = ModelRunner(model_file, python=python, start_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(RunnerError) as caught:
        runner.start()
    assert caught.value.category == "timeout"
    assert time.monotonic() - started < 10
    assert not runner.running


@pytest.mark.sandbox
def test_request_timeout_kills_the_worker(model_file, tmp_path, images):
    python = _fake_interpreter(tmp_path, _ANSWER_PING_THEN_HANG)
    runner = ModelRunner(
        model_file, python=python, batch_timeout_s=1.0, sandbox=NoSandbox(), allow_unsandboxed=True
    ).start()
    assert runner.isolation is not None  # set once started
    assert runner.isolation.startswith("none")
    pid = runner.pid
    with pytest.raises(RunnerError) as caught:
        runner.predict(images)
    assert caught.value.category == "timeout"
    assert not runner.running
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    with pytest.raises(RunnerError) as again:
        runner.predict(images)
    assert again.value.category == "timeout"


@pytest.mark.sandbox
def test_an_unloadable_model_is_load_failed(tmp_path):
    path = tmp_path / "model.pt2"
    path.write_bytes(b"PK\x03\x04 this is not a torch.export archive")
    runner = ModelRunner(path)
    with pytest.raises(RunnerError) as caught:
        runner.start()
    assert caught.value.category == "load-failed"
    assert caught.value.detail
    assert not runner.running


@pytest.mark.sandbox
def test_runner_refuses_to_start_without_isolation(model_file):
    runner = ModelRunner(model_file, sandbox=NoSandbox())
    with pytest.raises(RunnerError) as caught:
        runner.start()
    assert caught.value.category == "no-isolation"
    assert runner.pid is None


@pytest.mark.sandbox
def test_runner_is_a_context_manager(model_file, tmp_path):
    python = _fake_interpreter(tmp_path, _ANSWER_PING_THEN_HANG.replace("time.sleep(120)", ""))
    with ModelRunner(model_file, python=python, start_timeout_s=30) as runner:
        assert runner.running
    assert not runner.running


# -- sandboxes -----------------------------------------------------------------------------------


def _run_in(sandbox, code: str) -> str:
    import subprocess

    completed = subprocess.run(
        # The runner's own binds: a checkout (and its .venv) under /tmp is hidden by the
        # private /tmp unless bound back read-only.
        [
            *sandbox.command_prefix(ro_binds=[REPO_ROOT, Path(sys.executable).parent]),
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.defpath},
        check=True,
    )
    return completed.stdout.strip()


@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_sandbox_has_no_network(mode):
    sandbox = detect_sandbox(modes=(mode,))
    if not sandbox.isolated:
        pytest.skip(f"{mode} is not available here")
    assert sandbox.mode == mode
    names = _run_in(sandbox, "import socket; print([n for _, n in socket.if_nameindex()])")
    assert names == "['lo']"


def test_bwrap_root_is_read_only_and_tmp_private(tmp_path):
    (tmp_path / "host-secret").write_text("x")
    sandbox = detect_sandbox(modes=("bwrap",))
    if not sandbox.isolated:
        pytest.skip("bwrap is not available here")
    code = (
        "import os\n"
        f"print(os.path.exists({str(tmp_path / 'host-secret')!r}))\n"
        f"try:\n    open({str(REPO_ROOT / 'sandbox-escape')!r}, 'w')\n"
        "except OSError as e:\n    print(e.errno)\n"
    )
    assert _run_in(sandbox, code).splitlines() == ["False", "30"]  # EROFS


# -- protocol ------------------------------------------------------------------------------------


def _reader(data: bytes):
    return io.BytesIO(data).readinto


def test_protocol_round_trip():
    arrays: list[np.ndarray] = [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.zeros((0, 4), np.int64),
    ]
    data = b"".join(protocol.encode_message({"id": 1, "op": "x", "params": {"a": 1}}, arrays))
    header, decoded = protocol.read_message(_reader(data))
    assert header["op"] == "x" and header["params"] == {"a": 1}
    for got, want in zip(decoded, arrays, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_protocol_sends_array_data_without_copying_and_reads_short_reads():
    array = np.arange(4096, dtype=np.float32).reshape(4, 1, 32, 32)
    chunks = protocol.encode_message({"id": 7}, [array, np.asfortranarray(array[:, 0])])
    assert any(isinstance(c, memoryview) and np.shares_memory(c, array) for c in chunks)

    stream = io.BytesIO(b"".join(chunks))

    def trickle(view):  # a pipe hands over whatever it holds: here 1000 bytes at most
        return stream.readinto(view[:1000])

    header, (got, fortran) = protocol.read_message(trickle)
    assert header["id"] == 7
    np.testing.assert_array_equal(got, array)
    np.testing.assert_array_equal(fortran, array[:, 0])
    assert got.flags.c_contiguous and fortran.flags.c_contiguous
    with pytest.raises(protocol.StreamClosed, match="stream closed$"):
        protocol.read_message(trickle)


def test_protocol_stream_cut_inside_a_message_is_an_error():
    data = b"".join(protocol.encode_message({"id": 1}, [np.zeros(100, np.float32)]))
    for cut in (3, 20, len(data) - 1):
        with pytest.raises(protocol.StreamClosed, match="inside a message"):
            protocol.read_message(_reader(data[:cut]))


def test_protocol_refuses_to_send_objects():
    with pytest.raises(protocol.ProtocolError):
        protocol.encode_message({"id": 1}, [np.array([{"a": 1}], dtype=object)])


def test_protocol_shared_region_payloads_are_copied_out_and_bounds_checked():
    region = protocol.SharedRegion.create(slots=2, slot_bytes=64 * 1024)
    try:
        array = np.arange(1000, dtype=np.float32)
        data = b"".join(protocol.encode_message({"id": 3}, [array], shared=region.request_slot(3)))
        assert len(data) < 200  # only the header went on the pipe
        header, (got,) = protocol.read_message(_reader(data), shared=region.view)
        assert header["arrays"] == [[64 * 1024, 128 + 4000]]  # slot 3 % 2 = 1
        region.view[64 * 1024 : 2 * 64 * 1024] = bytes(64 * 1024)  # the other side scribbles
        np.testing.assert_array_equal(got, array)

        with pytest.raises(protocol.ProtocolError):  # a shared place without a region
            protocol.read_message(_reader(data))
        for place in ([4 * 64 * 1024 - 10, 4128], [-1, 4128], [0, 10**12], [0], "0"):
            with pytest.raises(protocol.ProtocolError):
                protocol.read_message(_reader(_frame({"id": 1}, [], place)), shared=region.view)
        # Sealed: the worker cannot shrink the region under the client (reads would fault).
        with pytest.raises(PermissionError):
            os.ftruncate(region.fd, 4096)
    finally:
        region.close()


def _frame(header: dict, payloads: list[bytes], *places) -> bytes:
    header = {**header, "v": 1, "arrays": [len(p) for p in payloads] + list(places)}
    raw = json.dumps(header).encode()
    return b"BSR1" + len(raw).to_bytes(4, "big") + raw + b"".join(payloads)


def _npy(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        _frame({"id": 1}, [_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)]),
        _frame({"id": 1}, [pickle.dumps(np.zeros(3))]),
        _frame({"id": 1}, [_npy(np.zeros(4, np.float32))[:-4]]),  # shorter than its header says
        _frame({"id": 1}, [_npy(np.zeros(4, np.float32)) + b"junk"]),
        _frame({"id": 1}, [_npy(np.array(["text"]))]),
        b"XXXX" + b"\x00\x00\x00\x02{}",
        b"BSR1" + (10**9).to_bytes(4, "big"),
        b"BSR1" + b"\x00\x00\x00\x03[1]",
    ],
    ids=["object", "pickle", "short", "trailing", "unicode", "magic", "huge-header", "not-dict"],
)
def test_protocol_refuses_malformed_or_pickled_messages(data):
    with pytest.raises(protocol.ProtocolError):
        protocol.read_message(_reader(data))


def test_protocol_checks_the_declared_shape_before_allocating():
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**10,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    fake = buffer.getvalue() + bytes(16)
    with pytest.raises(protocol.ProtocolError):
        protocol.read_message(_reader(_frame({"id": 1}, [fake])))


# -- packages ------------------------------------------------------------------------------------


def test_package_round_trip(package, manifest):
    read_manifest, pt2 = read_package(package)
    assert read_manifest == manifest
    assert zipfile.ZipFile(io.BytesIO(pt2)).read("archive/archive_format") == b"pt2"
    with tarfile.open(package) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == ["manifest.json", "model.pt2"]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.isfile() for m in members)


def test_package_bytes_are_reproducible(eager_model, manifest, tmp_path):
    paths = [
        build_package(
            model=eager_model,
            example_input=torch.zeros(2, 1, 64, 64),
            manifest=manifest,
            out_path=tmp_path / f"{i}.tar.gz",
        )
        for i in range(2)
    ]
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_build_package_checks_what_the_vendor_can_check(eager_model, manifest, tmp_path):
    out = tmp_path / "p.tar.gz"
    example = torch.zeros(2, 1, 64, 64)
    with pytest.raises(ValueError, match="gradcam_target_layer"):
        build_package(
            model=eager_model,
            example_input=example,
            manifest={**manifest, "gradcam_target_layer": "layer4.1"},
            out_path=out,
        )
    with pytest.raises(ValueError, match="shape"):
        build_package(
            model=eager_model,
            example_input=torch.zeros(2, 1, 32, 32),
            manifest=manifest,
            out_path=out,
        )
    with pytest.raises(ValueError, match="invalid manifest"):
        build_package(
            model=eager_model,
            example_input=example,
            manifest={**manifest, "task": "segmentation"},
            out_path=out,
        )
    assert not out.exists()


def test_manifest_errors_are_listed(manifest):
    assert manifest_errors(manifest) == []
    broken = json.loads(json.dumps(manifest))
    del broken["threshold"]
    broken["input"]["mean"] = [0.5, 0.5]
    broken["output"]["activation"] = "relu"
    errors = manifest_errors(broken)
    assert any("threshold" in e for e in errors)
    assert any("output/activation" in e for e in errors)
    assert manifest_errors([]) == ["(root): [] is not of type 'object'"]


MANIFEST_BYTES = json.dumps(
    default_manifest(name="x", version="1", gradcam_target_layer="b")
).encode()


def _file(name: str, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, b""


def _torchscript_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # the layout torch.jit.save writes
        for name in ("archive/data.pkl", "archive/constants.pkl", "archive/code/__torch__/m.py"):
            archive.writestr(name, b"x")
    return buffer.getvalue()


def _checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, buffer)
    return buffer.getvalue()


def _write_tar(path: Path, members, *, gzip: bool = True) -> Path:
    with tarfile.open(path, "w:gz" if gzip else "w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


# A member of a hostile archive: a ready (TarInfo, data) pair, ("PT2", None) for the real model,
# or a key of `_resolve`'s payloads.
_Entry = tuple[tarfile.TarInfo, bytes] | tuple[str, None] | str

HOSTILE: dict[str, tuple[list[_Entry], str]] = {
    "absolute-path": ([_file("/etc/cron.d/evil", b"x")], "absolute path"),
    "dot-dot": ([_file("../../model.pt2", b"x")], "outside the archive"),
    "nested-dot-dot": ([_file("a/../../manifest.json", b"x")], "outside the archive"),
    "symlink": ([_special("model.pt2", tarfile.SYMTYPE, linkname="/etc/passwd")], "link"),
    "hardlink": ([_special("model.pt2", tarfile.LNKTYPE, linkname="manifest.json")], "link"),
    "char-device": ([_special("model.pt2", tarfile.CHRTYPE, devmajor=1, devminor=3)], "device"),
    "fifo": ([_special("model.pt2", tarfile.FIFOTYPE)], "device or FIFO"),
    "directory": ([_special("models", tarfile.DIRTYPE)], "not a regular file"),
    "too-many": ([_file(f"f{i}", b"") for i in range(17)], "more than 16 members"),
    "missing-manifest": ([("PT2", None)], "no manifest.json"),
    "missing-model": ([_file("manifest.json", MANIFEST_BYTES)], "no model.pt2"),
    "unknown-member": ([_file("manifest.json", MANIFEST_BYTES), _file("run.sh")], "unexpected"),
    "onnx-junk": (
        [_file("manifest.json", MANIFEST_BYTES), _file("model.onnx", b"x" * 64)],
        "not an ONNX model",
    ),
    "onnx-pickle": (
        [_file("manifest.json", MANIFEST_BYTES), _file("model.onnx", b"\x80" * 64)],
        "pickle",
    ),
    "two-models": (
        [_file("manifest.json", MANIFEST_BYTES), ("PT2", None), _file("model.onnx", b"\x08" * 64)],
        "both model.pt2 and model.onnx",
    ),
    "duplicate": ([_file("manifest.json", MANIFEST_BYTES)] * 2, "twice"),
    "torchscript": ([_file("manifest.json", MANIFEST_BYTES), "TS"], "TorchScript"),
    "torch-save": ([_file("manifest.json", MANIFEST_BYTES), "CKPT"], "torch.save"),
    "plain-pickle": ([_file("manifest.json", MANIFEST_BYTES), "PICKLE"], "pickle"),
    "not-zip": ([_file("manifest.json", MANIFEST_BYTES), "JUNK"], "not a torch.export"),
    "bad-manifest": ([_file("manifest.json", b"{nope"), ("PT2", None)], "not valid UTF-8 JSON"),
    "manifest-list": ([_file("manifest.json", b"[]"), ("PT2", None)], "JSON object"),
}


def _resolve(entry, pt2: bytes):
    payloads = {
        "TS": _torchscript_bytes,
        "CKPT": _checkpoint_bytes,
        "PICKLE": lambda: pickle.dumps({"weights": [1, 2, 3]}),
        "JUNK": lambda: b"hello",
    }
    if entry == ("PT2", None):
        return _file("model.pt2", pt2)
    if isinstance(entry, str):
        return _file("model.pt2", payloads[entry]())
    return entry


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_read_package_rejects_hostile_archives(case, model_file, tmp_path):
    entries, reason = HOSTILE[case]
    pt2 = model_file.read_bytes()
    path = _write_tar(tmp_path / "p.tar.gz", [_resolve(e, pt2) for e in entries])
    with pytest.raises(PackageError) as caught:
        read_package(path)
    assert reason in caught.value.reason


def test_read_package_accepts_plain_tar(model_file, tmp_path):
    path = _write_tar(
        tmp_path / "p.tar",
        [_file("./manifest.json", MANIFEST_BYTES), _file("model.pt2", model_file.read_bytes())],
        gzip=False,
    )
    assert read_package(path)[0]["name"] == "x"


def test_read_package_size_limits(model_file, tmp_path):
    pt2 = model_file.read_bytes()
    path = _write_tar(
        tmp_path / "p.tar.gz", [_file("manifest.json", MANIFEST_BYTES), _file("model.pt2", pt2)]
    )
    with pytest.raises(PackageError, match="decompressed size"):
        read_package(path, max_total_bytes=len(pt2) // 2)
    with pytest.raises(PackageError, match="larger than"):
        read_package(path, max_archive_bytes=100)


def test_read_package_stops_a_gzip_bomb_early(tmp_path):
    bomb = tmp_path / "bomb.tar.gz"
    # 64 MiB of zeros compresses to ~64 KiB; the reader must give up after ~1 MiB.
    with tarfile.open(bomb, "w:gz") as archive:
        info = tarfile.TarInfo("model.pt2")
        info.size = 64 * 1024 * 1024
        archive.addfile(info, _Zeros(info.size))
    started = time.monotonic()
    with pytest.raises(PackageError, match="decompressed size"):
        read_package(bomb, max_total_bytes=1024 * 1024)
    assert time.monotonic() - started < 2


def test_read_package_stops_an_oversized_pax_header(tmp_path):
    # tarfile reads pax headers into memory whole; the limit must cut them off too.
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("manifest.json")
        info.pax_headers = {"comment": "x" * (4 * 1024 * 1024)}
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(PackageError, match="decompressed size"):
        read_package(path, max_total_bytes=1024 * 1024)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_torchscript_bytes, "zip file"),
        (lambda: pickle.dumps([1, 2]), "pickle"),
        (lambda: b"\x00" * 100, "not a readable tar"),
    ],
    ids=["zip", "pickle", "garbage"],
)
def test_read_package_rejects_non_tar_uploads(content, reason, tmp_path):
    path = tmp_path / "upload.tar.gz"
    path.write_bytes(content())
    with pytest.raises(PackageError) as caught:
        read_package(path)
    assert reason in caught.value.reason


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n
