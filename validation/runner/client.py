"""`ModelRunner`: the calling side of the sandboxed model worker.

The web and Celery processes never load a vendor model: they start a worker process inside a
sandbox (see `sandbox`), send it float32 image batches over a pipe (see `protocol`) and read back
plain arrays. The worker stays warm across batches; one runner per (worker process, package).

Failures surface as `RunnerError`, whose `category` is safe to show a vendor and whose `detail`
(the worker's stderr tail or traceback, which can mention partner data) is for reviewers only.
A worker that misses a deadline is killed: after that, or after a crash, the runner is closed and
must be started again.
"""

from __future__ import annotations

import collections
import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from validation.runner import confinement, protocol
from validation.runner.sandbox import Sandbox, detect_sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
# What of the checkout the worker may see: its own package and the client's (the Grad-CAM layer
# rule lives in the package format), nothing else (not var/, config/ ...).
CLIENT_SOURCE = "clients/python/src"
WORKER_CODE = ("validation/__init__.py", "validation/runner", f"{CLIENT_SOURCE}/blindspot_client")
EXIT_NO_CONFINEMENT = 5  # worker.EXIT_NO_CONFINEMENT (the worker module imports torch late)
STDERR_TAIL_BYTES = 16 * 1024
DETAIL_CHARS = 4000
MAX_PIPELINE_DEPTH = 4  # also the number of shared-memory slots in each direction
DEVICES = ("auto", "cpu", "cuda")  # worker.DEVICES

PUBLIC_MESSAGES = {
    "load-failed": "The model could not be loaded.",
    "crash": "The model process failed while processing a batch.",
    "timeout": "The model did not answer within the time limit.",
    "oom": "The model ran out of memory.",
    "bad-input": "The model rejected the input.",
    "bad-output": "The model returned output of an unexpected form.",
    "no-isolation": "No sandbox is available to run the model.",
}


class RunnerError(Exception):
    """A runner failure. `category` is safe to show vendors; `detail` is for reviewers only."""

    def __init__(self, category: str, detail: str = "") -> None:
        super().__init__(category)
        self.category = category
        self.detail = detail

    @property
    def public_message(self) -> str:
        return PUBLIC_MESSAGES.get(self.category, "The model runner failed.")

    def __str__(self) -> str:
        return f"{self.category}: {self.public_message}"


class ModelRunner:
    """A warm, sandboxed worker holding one model. Use as a context manager or start()/close().

    `threads` sets the worker's torch and OpenMP threads. `batch_timeout_s` bounds each request
    (write plus answer) and `start_timeout_s` the start-up (torch import plus model load).
    `predict` and `gradcam` split large inputs into requests of at most `max_batch` images (64
    was fastest for the reference model on 2 CPU threads: ~4,800 img/s against ~2,900 at 256)
    and keep up to `pipeline_depth` requests in flight, so the worker finds the next batch waiting
    when it finishes one (so that neither side can block the
    other on a full pipe, while writing a request the runner also reads the replies that come).
    Without a working sandbox, `start` raises `RunnerError("no-isolation")` unless
    `allow_unsandboxed=True`; `isolation` then says "none ..." for the report.

    The worker confines itself before loading the model: `memory_limit_bytes` (RLIMIT_DATA; a
    model that allocates past it gets "oom" and the worker keeps serving), `cpu_limit_s` (CPU
    seconds, all threads, from the model load on over the warm life; None for no limit; past
    it the worker is killed and the request fails with "timeout"), fixed NOFILE/FSIZE/NPROC/CORE
    limits and a seccomp deny-list for sockets and exec. Without seccomp (no pyseccomp or
    libseccomp) the worker refuses to start ("no-isolation") unless `allow_unsandboxed=True`.
    After `start`, `isolation` describes the sandbox and the limits the worker measured on itself
    inside it (`measured_limits`: getrlimit, seccomp mode, whether RLIMIT_NPROC holds), not the
    values it was asked for.

    `device`: "cpu", "cuda" (the worker fails to load, "load-failed", without a usable GPU) or
    "auto" (CUDA where the worker finds a GPU, else the CPU). Unless it is "cpu", the sandbox
    binds the host's GPU device nodes in. `amp` runs the model under CUDA autocast (bfloat16 or
    float16); it is ignored on the CPU. ONNX models always run on the CPU. After `start`,
    `info` says what the worker uses: "device", "device_name", "amp" (effective), "threads".
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 1,
        batch_timeout_s: float = 120.0,
        start_timeout_s: float = 120.0,
        python: str = sys.executable,
        allow_unsandboxed: bool = False,
        sandbox: Sandbox | None = None,
        max_batch: int = 64,
        pipeline_depth: int = 2,
        shared_slot_bytes: int = 8 * 1024 * 1024,
        max_reply_bytes: int = protocol.DEFAULT_MAX_PAYLOAD_BYTES,
        memory_limit_bytes: int = confinement.DEFAULT_MEMORY_LIMIT_BYTES,
        cpu_limit_s: float | None = confinement.DEFAULT_CPU_LIMIT_S,
        device: str = "auto",
        amp: bool = False,
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        self.device = device
        self.amp = bool(amp)
        self.model_path = Path(model_path).resolve()
        self.threads = max(1, int(threads))
        self.batch_timeout_s = batch_timeout_s
        self.start_timeout_s = start_timeout_s
        self.python = python
        self.allow_unsandboxed = allow_unsandboxed
        self.max_batch = max_batch
        self.pipeline_depth = max(1, min(MAX_PIPELINE_DEPTH, int(pipeline_depth)))
        self.shared_slot_bytes = max(0, int(shared_slot_bytes))
        self._shared: protocol.SharedRegion | None = None
        self.max_reply_bytes = max_reply_bytes
        self.memory_limit_bytes = int(memory_limit_bytes)
        self.cpu_limit_s = cpu_limit_s
        self._sandbox = sandbox
        self.isolation: str | None = None
        self.load_seconds: float | None = None
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_thread: threading.Thread | None = None
        self._replies: protocol.MessageReader | None = None
        self._next_id = 0
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self._stopped: RunnerError | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ModelRunner:
        """Spawn the sandboxed worker and wait until it has loaded the model and answered ping."""
        if self.running:
            raise RuntimeError("runner already started")
        self._proc = None
        self._stopped = None
        self._stderr_tail.clear()
        if not self.model_path.is_file():
            raise RunnerError("load-failed", f"no model file at {self.model_path}")
        sandbox = self._sandbox or detect_sandbox()
        if not sandbox.isolated and not self.allow_unsandboxed:
            raise RunnerError("no-isolation", "no working sandbox (bwrap, unshare) on this host")
        self.isolation = sandbox.describe(gpu=self._may_use_gpu)

        environment = self._environment()
        self._shared = (
            protocol.SharedRegion.create(MAX_PIPELINE_DEPTH, self.shared_slot_bytes)
            if self.shared_slot_bytes
            else None
        )
        shared_args = (
            [
                "--shared-fd",
                str(self._shared.fd),
                "--shared-slots",
                str(self._shared.slots),
                "--shared-slot-bytes",
                str(self._shared.slot_bytes),
            ]
            if self._shared is not None
            else []
        )
        command = [
            *sandbox.launch_prefix(
                ro_binds=self._ro_binds(), env=environment, gpu=self._may_use_gpu
            ),
            self.python,
            "-P",  # do not put the working directory on sys.path
            "-s",  # no user site-packages
            "-m",
            "validation.runner.worker",
            "--model",
            str(self.model_path),
            "--threads",
            str(self.threads),
            "--memory-limit",
            str(self.memory_limit_bytes),
            *(
                ["--no-cpu-limit"]
                if self.cpu_limit_s is None
                else ["--cpu-limit", str(float(self.cpu_limit_s))]
            ),
            "--device",
            self.device,
            *(["--amp"] if self.amp else []),
            "--seccomp",
            "optional" if self.allow_unsandboxed else "required",
            *([] if sandbox.isolated else ["--no-nproc-limit"]),
            *shared_args,
        ]
        started = time.monotonic()
        try:
            proc = self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment,
                cwd=REPO_ROOT,
                start_new_session=True,  # its own process group, killed as one
                bufsize=0,
                pass_fds=() if self._shared is None else (self._shared.fd,),
            )
        except OSError as exc:
            self._close_shared()
            raise RunnerError("crash", f"could not start the worker: {exc}") from None
        # bwrap's --die-with-parent follows the spawning *thread*: start runners from a thread
        # that outlives them (a Celery worker's main thread), not from a short-lived one.
        stdin, stdout = _pipe(proc.stdin), _pipe(proc.stdout)
        os.set_blocking(stdin.fileno(), False)
        for pipe in (stdin, stdout):
            _grow_pipe(pipe.fileno())
        self._finalizer = weakref.finalize(self, _kill_group, proc)
        self._stderr_thread = threading.Thread(
            target=_drain, args=(proc.stderr, self._stderr_tail), daemon=True
        )
        self._stderr_thread.start()
        os.set_blocking(stdout.fileno(), False)
        self._replies = protocol.MessageReader(
            stdout.fileno(),
            max_payload_bytes=self.max_reply_bytes,
            shared=None if self._shared is None else self._shared.view,
        )

        self.info = self._request("ping", timeout_s=self.start_timeout_s)[0]
        self.load_seconds = time.monotonic() - started
        self.isolation = (
            f"{sandbox.describe(gpu=self._may_use_gpu)}; "
            f"{confinement.describe(self.info.get('confinement'))}"
        )
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to shut down; kill it if it does not exit within `timeout_s`."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._request("shutdown", timeout_s=timeout_s)
                proc.wait(timeout=timeout_s)
            except (RunnerError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def kill(self) -> None:
        """Kill the worker now, from any thread (a cancel, a spent time budget): the thread
        waiting on it gets "crash" at once; `close` still cleans up."""
        proc = self._proc
        if proc is not None:
            _kill_group(proc)

    @property
    def measured_limits(self) -> dict[str, Any]:
        """The limits the worker measured on itself inside the sandbox at start, after confining
        itself and before loading the model (`confinement.measure`); empty before `start`."""
        confined = self.info.get("confinement")
        measured = confined.get("measured") if isinstance(confined, dict) else None
        return measured if isinstance(measured, dict) else {}

    @property
    def pid(self) -> int | None:
        """The host pid of the spawned process (the sandbox launcher where there is one)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> ModelRunner:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- operations ----------------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        return self._request("ping")[0]

    def memory(self, *, reset_peak: bool = False) -> dict[str, int | None]:
        """The worker's memory in bytes as its kernel counts it (`confinement.memory_used`):
        ``peak_rss`` since start or the previous reset, ``rss``, ``data`` (RLIMIT_DATA's)."""
        return self._request("ping", {"reset_peak": reset_peak})[0]["memory"]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Raw model outputs, float32 (N, K), for float32 images (N, C, H, W)."""
        batches = self._batches(images)
        replies = self._stream("predict", {}, batches, expect_arrays=1)
        return np.concatenate(
            [
                self._checked_outputs(logits, len(batch))
                for (logits,), batch in zip(replies, batches, strict=True)
            ]
        )

    def gradcam(
        self,
        images: np.ndarray,
        target_layer: str,
        target_index: int = 0,
        *,
        reshape: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(outputs float32 (N, K), CAMs float32 (N, H, W) in 0..1) for output `target_index`;
        `reshape` is the manifest's ``gradcam_reshape`` for a token layer."""
        params: dict[str, Any] = {"target_layer": target_layer, "target_index": target_index}
        if reshape is not None:
            params["reshape"] = reshape
        batches = self._batches(images)
        outputs, cams = [], []
        for (logits, maps), batch in zip(
            self._stream("gradcam", params, batches, expect_arrays=2), batches, strict=True
        ):
            outputs.append(self._checked_outputs(logits, len(batch)))
            if maps.dtype != np.float32 or maps.shape != (len(batch), *batch.shape[2:]):
                raise self._stop("bad-output", f"Grad-CAM maps {maps.dtype} {maps.shape}")
            cams.append(maps)
        return np.concatenate(outputs), np.concatenate(cams)

    # -- internals -----------------------------------------------------------------------------

    def _batches(self, images: np.ndarray) -> list[np.ndarray]:
        images = np.asarray(images)
        if images.ndim == 0 or len(images) <= self.max_batch:
            return [np.ascontiguousarray(images)]
        return [
            np.ascontiguousarray(images[start : start + self.max_batch])
            for start in range(0, len(images), self.max_batch)
        ]

    def _request(
        self,
        op: str,
        params: dict[str, Any] | None = None,
        *,
        arrays: list[np.ndarray] | None = None,
        expect_arrays: int = 0,
        timeout_s: float | None = None,
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """One request, one reply: (result, arrays)."""
        with self._lock:
            self._check_usable()
            request_id = self._send(op, params, arrays or [], timeout_s)
            return self._receive(op, request_id, expect_arrays, timeout_s)

    def _stream(
        self,
        op: str,
        params: dict[str, Any],
        batches: list[np.ndarray],
        *,
        expect_arrays: int,
    ) -> list[list[np.ndarray]]:
        """One request per batch with up to `pipeline_depth` in flight; the reply arrays in order.

        Every deadline is `batch_timeout_s` from when the worker can start on that request (the
        previous reply arrived), so a queued request does not count the one ahead of it. A
        request the worker refuses ("bad-input", "oom", ...) stops the stream: the replies still
        in flight are read and dropped, then the error is raised.
        """
        with self._lock:
            self._check_usable()
            pending: collections.deque[int] = collections.deque()
            replies: list[list[np.ndarray]] = []
            failure: RunnerError | None = None
            upcoming = iter(batches)
            depth = max(1, min(self.pipeline_depth, MAX_PIPELINE_DEPTH))
            while True:
                while failure is None and len(pending) < depth:
                    batch = next(upcoming, None)
                    if batch is None:
                        break
                    pending.append(self._send(op, params, [batch]))
                if not pending:
                    break
                try:
                    replies.append(self._receive(op, pending.popleft(), expect_arrays)[1])
                except RunnerError as exc:
                    if self._stopped is not None:  # the worker is gone: nothing left to drain
                        raise
                    failure = failure or exc
            if failure is not None:
                raise failure
            return replies

    def _started(self) -> tuple[subprocess.Popen[bytes], protocol.MessageReader]:
        if self._proc is None or self._replies is None:
            raise RuntimeError("runner not started")
        return self._proc, self._replies

    def _check_usable(self) -> None:
        if self._proc is None:
            raise RuntimeError("runner not started")
        if self._stopped is not None:
            raise RunnerError(self._stopped.category, "the runner stopped after this failure")
        if self._proc.poll() is not None:
            raise self._crash_error()

    def _send(
        self,
        op: str,
        params: dict[str, Any] | None,
        arrays: list[np.ndarray],
        timeout_s: float | None = None,
    ) -> int:
        self._next_id += 1
        request_id = self._next_id
        chunks = protocol.encode_message(
            {"id": request_id, "op": op, "params": params or {}},
            arrays,
            shared=None if self._shared is None else self._shared.request_slot(request_id),
        )
        limit = timeout_s or self.batch_timeout_s
        self._pump(op, limit, chunks)
        return request_id

    def _receive(
        self, op: str, request_id: int, expect_arrays: int, timeout_s: float | None = None
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        self._pump(op, timeout_s or self.batch_timeout_s)
        header, arrays = self._started()[1].messages.popleft()
        if header.get("id") != request_id:
            raise self._stop("bad-output", "reply does not match the request")
        if not header.get("ok"):
            error = header.get("error")
            error = error if isinstance(error, dict) else {}
            category = error.get("category")
            if category not in protocol.ERROR_CATEGORIES:
                category = "crash"
            detail = str(error.get("detail", ""))[-DETAIL_CHARS:]
            if category == "load-failed":
                raise self._stop(category, detail)
            raise RunnerError(category, detail)
        if len(arrays) != expect_arrays:
            raise self._stop("bad-output", f"expected {expect_arrays} arrays, got {len(arrays)}")
        result = header.get("result")
        return (result if isinstance(result, dict) else {}), arrays

    def _pump(self, op: str, limit: float, chunks: list[protocol.Buffer] | None = None) -> None:
        """Write `chunks` completely (when given), else wait for a reply, within `limit` seconds;
        read whatever replies arrive meanwhile either way, so the worker never blocks on a full
        pipe while this side is blocked on the other one."""
        deadline = time.monotonic() + limit
        views = collections.deque(memoryview(c) for c in chunks or ())
        proc, replies = self._started()
        stdin, stdout = _pipe(proc.stdin).fileno(), _pipe(proc.stdout).fileno()
        poller = select.poll()
        poller.register(stdout, select.POLLIN)
        if views:
            poller.register(stdin, select.POLLOUT)
        try:
            while views or not replies.messages:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timed_out(op, limit)
                for fd, _ in poller.poll(_millis(remaining)):
                    if fd == stdout:
                        replies.feed()
                    elif views and _write_some(stdin, views) and not views:
                        poller.unregister(stdin)
        except (BrokenPipeError, protocol.StreamClosed):
            raise self._crash_error() from None
        except protocol.ProtocolError as exc:
            raise self._stop("bad-output", f"malformed reply: {exc}") from None

    def _timed_out(self, op: str, limit: float) -> RunnerError:
        self._kill()
        return self._stop(
            "timeout", f"no answer to {op} within {limit:.0f} s\n{self._stderr_text()}"
        )

    def _stop(self, category: str, detail: str) -> RunnerError:
        """Kill the worker after a failure that leaves it unusable; later requests re-raise."""
        self._kill()
        self._stopped = RunnerError(category, detail)
        return self._stopped

    def _checked_outputs(self, outputs: np.ndarray, batch: int) -> np.ndarray:
        if outputs.dtype != np.float32 or outputs.ndim != 2 or outputs.shape[0] != batch:
            raise self._stop("bad-output", f"outputs {outputs.dtype} {outputs.shape}")
        return outputs

    def _crash_error(self) -> RunnerError:
        proc = self._started()[0]
        try:
            code = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        self._kill()
        if code is None:
            how = "the worker closed its pipes"
        elif code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            # bwrap reports a child killed by a signal as 128 + the signal number.
            self._stopped = RunnerError(
                "timeout",
                f"the worker used up its CPU time limit ({self.cpu_limit_s} s, RLIMIT_CPU)\n"
                f"{self._stderr_text()}",
            )
            return self._stopped
        elif code == EXIT_NO_CONFINEMENT:
            self._stopped = RunnerError(
                "no-isolation",
                "the worker could not install its seccomp filter and refused to load the model "
                f"(set allow_unsandboxed to run without it)\n{self._stderr_text()}",
            )
            return self._stopped
        elif code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            how = (
                "the worker was killed by SIGKILL (from outside, possibly out of memory, or at "
                "its hard CPU limit)"
            )
        elif code < 0:
            how = f"the worker was killed by signal {-code}"
        else:
            how = f"the worker exited with status {code}"
        self._stopped = RunnerError("crash", f"{how}\n{self._stderr_text()}")
        return self._stopped

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        _kill_group(proc)
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if self._finalizer is not None:
            self._finalizer.detach()
        self._close_shared()

    def _close_shared(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def _stderr_text(self) -> str:
        if self._stderr_thread is not None and self._proc and self._proc.poll() is not None:
            self._stderr_thread.join(timeout=1.0)
        text = b"".join(self._stderr_tail).decode("utf-8", errors="replace")
        return text[-DETAIL_CHARS:]

    @property
    def _may_use_gpu(self) -> bool:
        """Whether the worker may open the GPU (ONNX never does: see `onnx_model`)."""
        return self.device != "cpu" and self.model_path.suffix != ".onnx"

    def _ro_binds(self) -> list[Path]:
        """What the worker may read besides the system and Python: its code and the model file
        (not its directory: other files may sit beside it). The sandbox adds the rest."""
        binds = [self.model_path, *(REPO_ROOT / part for part in WORKER_CODE)]
        if os.path.isabs(self.python):
            binds.append(Path(self.python).parent)
        return binds

    def _environment(self) -> dict[str, str]:
        threads = str(self.threads)
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            # The checkout's client source first: an editable install's path (a .pth in the
            # bound venv) may point elsewhere, and the sandbox binds only this copy.
            "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / CLIENT_SOURCE}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            # SciPy's OpenBLAS (imported with pytorch-grad-cam, never computing here) reserves
            # a buffer per thread: ~200 MiB of RLIMIT_DATA at 15 threads, for nothing.
            "OPENBLAS_NUM_THREADS": "1",
            **ALLOCATOR_ENV,
        }
        if self._may_use_gpu and "CUDA_VISIBLE_DEVICES" in os.environ:
            # The operator's choice of GPUs for this process holds for its workers too.
            environment["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        return environment


# Each request brings fresh input arrays; with glibc's default thresholds every one is mmapped and
# unmapped again (hundreds of page faults a batch). The worker keeps them on the heap instead
# (measured by bench/runner.py, which runs its in-process baseline under the same settings).
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024),
}


_IOV_MAX = 64


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """One of the worker's pipes (always opened: Popen was given PIPE for each)."""
    if stream is None:
        raise RuntimeError("the worker was started without its pipes")
    return stream


def _write_some(fd: int, views: collections.deque[memoryview]) -> bool:
    """Write what the pipe takes now from the front of `views`, dropping what was written;
    False when the pipe was full."""
    try:
        written = os.writev(fd, list(views)[:_IOV_MAX])
    except BlockingIOError:
        return False
    while written and written >= len(views[0]):
        written -= len(views.popleft())
    if written:
        views[0] = views[0][written:]
    return True


PIPE_BYTES = 1024 * 1024  # a batch of 64 1x64x64 float32 images is 1 MiB


def _grow_pipe(fd: int) -> None:
    """Ask for PIPE_BYTES of pipe buffer (Linux caps it at /proc/sys/fs/pipe-max-size, 1 MiB by
    default): a whole batch then goes in with one write, and the worker reads it in one go."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):
        pass  # a smaller pipe only costs more wake-ups


def _drain(stream: Any, tail: collections.deque[bytes]) -> None:
    """Keep the last STDERR_TAIL_BYTES of the worker's stderr; never let the pipe fill up."""
    size = 0
    try:
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            tail.append(chunk)
            size += len(chunk)
            while size > STDERR_TAIL_BYTES and len(tail) > 1:
                size -= len(tail.popleft())
    except (OSError, ValueError):
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
