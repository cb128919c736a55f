"""The sandboxed model worker: `python -m validation.runner.worker --model PATH --threads N`.

This is the only process that ever loads a vendor model. It is started by `ModelRunner` inside the
sandbox, imports torch, picks its device (``--device auto|cpu|cuda``; CUDA is initialised here,
see `select_device`), confines itself (rlimits and a seccomp deny-list, see `confinement`; with
``--seccomp required`` it exits with `EXIT_NO_CONFINEMENT` when it cannot), loads the `.pt2` once
onto that device, and then answers requests framed by `protocol` on its original stdin/stdout
until `shutdown` or end of input. ``--amp`` runs the model under CUDA autocast (bfloat16 where
the GPU supports it, else float16); on the CPU it is ignored. Everything else it prints goes to
stderr: fd 1 is pointed at stderr before any vendor code runs, so a stray `print` in a model
cannot corrupt the reply stream.

Ops: ``ping`` (returns load facts, with ``confinement.measured``: the limits the worker
measured on itself at start, see `confinement.measure`, and ``memory``: its memory now and its
peak since start or since the last ping with ``reset_peak``, see `confinement.memory_used`),
``predict`` (float32 (N, C, H, W) ->
float32 (N, K) raw model outputs), ``gradcam`` (same input, ``target_layer``,
``target_index``, optional ``reshape`` (the manifest's ``gradcam_reshape``) -> outputs and CAMs
float32 (N, H, W) in 0..1), ``shutdown``. A request that
fails gets an error reply with a category (see `protocol.ERROR_CATEGORIES`) and the worker keeps
serving; if the model failed to load, the first request gets ``load-failed`` and the worker
exits.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np
from blindspot_client.package.gradcam_layer import reshape_problem

from validation.runner import confinement, protocol

if TYPE_CHECKING:
    from validation.runner.onnx_model import OnnxModel

log = logging.getLogger("validation.runner.worker")

MAX_DETAIL_CHARS = 8000
EXIT_LOAD_FAILED = 3
EXIT_PROTOCOL_ERROR = 4
EXIT_NO_CONFINEMENT = 5  # ModelRunner reads this status as "no-isolation"


class RequestError(Exception):
    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category = category
        self.detail = detail


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be used here; the worker answers ``load-failed``."""


DEVICES = ("auto", "cpu", "cuda")


def select_device(requested: str) -> str:
    """The device to load on for `requested`, "cpu" or "cuda" (then with CUDA initialised).

    Called after ``import torch`` and before `confine`, because bringing CUDA up is trusted work
    the limits are not sized for: creating the context opens /dev/nvidia* and can map large
    private regions (counted by RLIMIT_DATA) and starts driver threads (counted by RLIMIT_NPROC);
    cuBLAS and cuDNN load and allocate their workspaces on first use, and autograd starts a
    thread per GPU on its first backward pass. So a tiny convolution, matrix product and backward
    pass run here too, and the limits then bound only what the model does. The seccomp filter
    denies nothing this uses (open, ioctl, mmap); it is the rlimits that it must precede.
    """
    import torch

    if requested == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        if requested == "auto":
            return "cpu"
        raise DeviceUnavailable(
            "device 'cuda' was asked for, but no CUDA GPU is available to the worker (torch "
            f"{torch.__version__}, CUDA {torch.version.cuda or 'none: a CPU-only build'})"
        )
    try:
        torch.cuda.init()
        x = torch.ones((1, 1, 8, 8), device="cuda", requires_grad=True)
        y = torch.nn.functional.conv2d(x, torch.ones((1, 1, 3, 3), device="cuda")).flatten(1)
        (y @ y.T).sum().backward()
        torch.cuda.synchronize()
    except RuntimeError as exc:
        raise DeviceUnavailable(f"CUDA failed to initialise: {exc}") from None
    return "cuda"


class LoadedModel:
    """An exported program, unflattened, with what the worker learnt about it while loading."""

    def __init__(self, path: str, *, threads: int, device: str = "cpu", amp: bool = False) -> None:
        import torch
        from torch.export.passes import move_to_device_pass

        started = time.perf_counter()
        torch.set_num_threads(threads)
        self.device = torch.device(device)
        # Autocast only where it pays (tensor cores); bfloat16 keeps float32's range, so no
        # overflow to inf in logits, where the GPU has it.
        self.amp_dtype: torch.dtype | None = None
        if amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        program = torch.export.load(path)
        if len(program.graph_signature.user_inputs) != 1:
            raise ValueError("the model must take exactly one tensor input")
        self.input_shape = _static_input_shape(program)
        if self.device.type != "cpu":
            # Moves constants too (`module.to` would not) and rewrites devices named in the graph.
            program = move_to_device_pass(program, self.device)
        self.module = torch.export.unflatten(program)
        self.output_columns: int | None = None
        static = [d for d in (self.input_shape or [])[1:] if d is not None]
        if self.input_shape is not None and len(static) == len(self.input_shape) - 1:
            probe = torch.zeros((1, *static), dtype=torch.float32)
            with torch.no_grad(), self.autocast():
                self.output_columns = _as_outputs(self.module(probe.to(self.device)), 1).shape[1]
        self.load_seconds = time.perf_counter() - started
        self._explainer: Any = None
        self.confinement: dict[str, Any] = {}

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def info(self) -> dict[str, Any]:
        import torch

        cuda = self.device.type == "cuda"
        return {
            "confinement": self.confinement,
            "pid": os.getpid(),
            "device": self.device.type,
            "device_name": torch.cuda.get_device_name(self.device) if cuda else "cpu",
            "amp": self.amp_dtype is not None,
            "amp_dtype": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else None,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_seconds": round(self.load_seconds, 4),
            "input_shape": self.input_shape,
            "output_columns": self.output_columns,
        }

    def predict(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad(), self.autocast():
            outputs = self.module(torch.from_numpy(images).to(self.device))
            return _as_outputs(outputs, len(images))

    def gradcam(
        self,
        images: np.ndarray,
        target_layer: str,
        target_index: int,
        reshape: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from validation.runner.explain import GradCamExplainer, LayerShapeError, UnknownLayerError

        if self.output_columns is not None and target_index >= self.output_columns:
            raise RequestError(
                "bad-input", f"target_index {target_index} >= {self.output_columns} outputs"
            )
        if self._explainer is None:
            self._explainer = GradCamExplainer(
                self.module, device=self.device, autocast=self.autocast
            )
        try:
            outputs, cams = self._explainer(
                torch.from_numpy(images), target_layer, target_index, reshape=reshape
            )
        except (UnknownLayerError, LayerShapeError) as exc:
            raise RequestError("bad-input", str(exc)) from None
        logits = _as_outputs(outputs, len(images))
        if cams.shape != (len(images), *images.shape[2:]):
            raise RequestError("bad-output", f"Grad-CAM maps have shape {cams.shape}")
        return logits, np.clip(cams, 0.0, 1.0).astype(np.float32, copy=False)


def _static_input_shape(program: Any) -> list[int | None] | None:
    """The declared input shape with None for dynamic dimensions, if the program records it."""
    name = program.graph_signature.user_inputs[0]
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == name:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is None:
                return None
            return [d if isinstance(d, int) else None for d in shape]
    return None


def _as_outputs(output: Any, batch: int) -> np.ndarray:
    import torch

    if isinstance(output, tuple | list) and len(output) == 1:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise RequestError("bad-output", f"the model returned {type(output).__name__}")
    if output.ndim == 1:
        output = output.reshape(-1, 1)
    if output.ndim != 2 or output.shape[0] != batch or not output.is_floating_point():
        raise RequestError(
            "bad-output",
            f"the model returned {output.dtype} {tuple(output.shape)}, expected float ({batch}, K)",
        )
    return output.detach().to(torch.float32).cpu().numpy()


def _check_images(arrays: list[np.ndarray], input_shape: list[int | None] | None) -> np.ndarray:
    if len(arrays) != 1:
        raise RequestError("bad-input", f"expected one image array, got {len(arrays)}")
    images = arrays[0]
    if images.dtype != np.float32:
        raise RequestError("bad-input", f"images must be float32, got {images.dtype}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise RequestError("bad-input", f"images must be (N, C, H, W), got {images.shape}")
    if input_shape is not None and len(input_shape) == 4:
        for got, want in zip(images.shape[1:], input_shape[1:], strict=True):
            if want is not None and got != want:
                raise RequestError(
                    "bad-input", f"images have shape {images.shape}, the model takes {input_shape}"
                )
    if not np.isfinite(images).all():
        raise RequestError("bad-input", "images contain NaN or infinite values")
    return images


def _handle(
    model: LoadedModel | OnnxModel, op: Any, params: dict[str, Any], arrays: list[np.ndarray]
) -> tuple[dict[str, Any], list[np.ndarray]]:
    if op == "ping" or op == "shutdown":
        memory = confinement.memory_used(reset_peak=params.get("reset_peak") is True)
        return {**model.info(), "memory": memory}, []
    if op == "predict":
        return {}, [model.predict(_check_images(arrays, model.input_shape))]
    if op == "gradcam":
        images = _check_images(arrays, model.input_shape)
        layer = params.get("target_layer")
        index = params.get("target_index", 0)
        if not isinstance(layer, str) or not layer:
            raise RequestError("bad-input", "target_layer must be a dotted module path")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise RequestError("bad-input", "target_index must be a non-negative integer")
        reshape = params.get("reshape")
        if reshape is not None and (problem := reshape_problem(reshape)) is not None:
            raise RequestError("bad-input", problem)
        return {}, list(model.gradcam(images, layer, index, reshape))
    raise RequestError("bad-input", f"unknown op {op!r}")


_OOM_SIGNS = ("can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc")


def _classify(exc: BaseException) -> tuple[str, str]:
    detail = "".join(traceback.format_exception(exc))[-MAX_DETAIL_CHARS:]
    if isinstance(exc, RequestError):
        return exc.category, exc.detail[-MAX_DETAIL_CHARS:]
    if type(exc).__name__ == "UnsupportedOperation":  # from onnx_model, imported lazily
        return "unsupported", str(exc)[:MAX_DETAIL_CHARS]
    if isinstance(exc, MemoryError):
        return "oom", detail
    message = str(exc)
    lowered = message.lower()
    if any(sign in lowered for sign in _OOM_SIGNS) or getattr(exc, "errno", None) == errno.ENOMEM:
        # RLIMIT_DATA reached: "DefaultCPUAllocator: can't allocate memory", ENOMEM, ...
        return "oom", detail
    if message.startswith(("Expected input at", "Guard failed")):
        # torch.export's own input guard, e.g. a batch above the exported maximum.
        return "bad-input", message[:MAX_DETAIL_CHARS]
    return "crash", detail


def _claim_stdio() -> tuple[Any, Any]:
    """Keep the real stdin/stdout for the protocol; point fd 0 at /dev/null and fd 1 at stderr."""
    requests_fd = os.dup(0)
    replies_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return os.fdopen(requests_fd, "rb"), os.fdopen(replies_fd, "wb")


def confine(limits: confinement.Limits, *, require_seccomp: bool) -> dict[str, Any]:
    """Apply rlimits and the seccomp filter to this process; exits if seccomp is required but
    unavailable. Call after the worker's own imports and before any vendor bytes are read."""
    applied: dict[str, Any] = {"rlimits": confinement.apply_rlimits(limits), "seccomp": None}
    nproc_holds = confinement.nproc_holds() if limits.processes else None
    try:
        applied["seccomp"] = confinement.install_seccomp()
    except confinement.ConfinementUnavailable as exc:
        if require_seccomp:
            log.error("refusing to load the model: %s", exc)
            sys.exit(EXIT_NO_CONFINEMENT)
        log.warning("running WITHOUT seccomp (allowed by the operator): %s", exc)
        applied["seccomp_error"] = str(exc)
    # What the report prints: the limits as the kernel holds this process to them, not the asks.
    applied["measured"] = confinement.measure(nproc_holds=nproc_holds)
    return applied


def serve(
    model_path: str,
    *,
    threads: int,
    limits: confinement.Limits | None = None,
    require_seccomp: bool = True,
    shared: protocol.SharedRegion | None = None,
    device: str = "cpu",
    amp: bool = False,
) -> int:
    requests, replies = _claim_stdio()
    shared_view = shared.view if shared is not None else None
    model, load_error = _load(
        model_path,
        threads=threads,
        limits=limits,
        require_seccomp=require_seccomp,
        device=device,
        amp=amp,
    )
    while True:
        try:
            header, arrays = protocol.read_message(requests.readinto, shared=shared_view)
        except protocol.StreamClosed:
            return 0
        except protocol.ProtocolError as exc:
            log.error("protocol error: %s", exc)
            return EXIT_PROTOCOL_ERROR
        request_id = header.get("id")
        if model is None:
            assert load_error is not None
            reply = protocol.error_reply(request_id, *load_error)
            protocol.write_chunks(replies, protocol.encode_message(reply))
            return EXIT_LOAD_FAILED
        reply, out = _answer(model, header, arrays)
        slot = (
            shared.reply_slot(request_id)
            if shared is not None and isinstance(request_id, int) and request_id >= 0
            else None
        )
        protocol.write_chunks(replies, protocol.encode_message(reply, out, shared=slot))
        if header.get("op") == "shutdown":
            return 0


def _load(
    model_path: str,
    *,
    threads: int,
    limits: confinement.Limits | None,
    require_seccomp: bool,
    device: str,
    amp: bool,
) -> tuple[LoadedModel | OnnxModel | None, tuple[str, str] | None]:
    """Import torch (trusted), pick the device, confine this process, then load the vendor's
    model: (model, None), or (None, (category, detail)) when it cannot be loaded."""
    import torch  # noqa: F401 - trusted import, before the limits and the filter

    onnx = model_path.endswith(".onnx")
    if onnx:
        import onnxruntime  # noqa: F401 - trusted import, before the limits and the filter

        from validation.runner.onnx_model import OnnxModel
    else:
        # Trusted import, before the limits: pytorch-grad-cam pulls in scikit-learn and SciPy
        # (~230 MiB of RLIMIT_DATA); imported at the first Grad-CAM request instead, their
        # shared objects failed to map under the limit and the request died as a "crash".
        import validation.runner.explain  # noqa: F401
    load_error: tuple[str, str] | None = None
    selected = "cpu"
    if not onnx:  # onnxruntime stays on the CPU whatever was asked (see onnx_model)
        try:
            selected = select_device(device)
        except DeviceUnavailable as exc:
            load_error = ("load-failed", str(exc))
            log.error("load failed: %s", exc)
    applied = confine(limits or confinement.Limits(), require_seccomp=require_seccomp)
    if load_error is not None:
        return None, load_error
    try:
        model = (
            OnnxModel(model_path, threads=threads, requested_device=device)
            if onnx
            else LoadedModel(model_path, threads=threads, device=selected, amp=amp)
        )
    except Exception as exc:  # anything the vendor's file makes torch raise
        category, detail = _classify(exc)
        log.error("load failed: %s", detail)
        return None, ("oom" if category == "oom" else "load-failed", detail)
    model.confinement = applied
    log.info("loaded %s on %s in %.2f s", model_path, selected, model.load_seconds)
    return model, None


def _answer(
    model: LoadedModel | OnnxModel, header: dict, arrays: list[np.ndarray]
) -> tuple[dict, list[np.ndarray]]:
    """The reply to one request and the arrays it carries; a failure becomes an error reply
    with its category (the model's own exception text stays in `detail`)."""
    op = header.get("op")
    params = header.get("params") or {}
    try:
        if not isinstance(params, dict):
            raise RequestError("bad-input", "params must be a JSON object")
        result, out = _handle(model, op, params, arrays)
        return protocol.ok_reply(header.get("id"), result), out
    except Exception as exc:
        category, detail = _classify(exc)
        if category != "bad-input":
            log.error("%s failed: %s", op, detail)
        return protocol.error_reply(header.get("id"), category, detail), []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-limit", type=int, default=None, help="RLIMIT_DATA, bytes")
    parser.add_argument("--cpu-limit", type=float, default=confinement.DEFAULT_CPU_LIMIT_S)
    parser.add_argument("--no-cpu-limit", action="store_true")
    parser.add_argument("--seccomp", choices=("required", "optional"), default="required")
    # Without a user namespace (no sandbox, run by a normal user) RLIMIT_NPROC would count
    # every process of that user on the host.
    parser.add_argument("--no-nproc-limit", action="store_true")
    parser.add_argument("--shared-fd", type=int, help="a SharedRegion's memfd, from the client")
    parser.add_argument("--shared-slots", type=int, default=0)
    parser.add_argument("--shared-slot-bytes", type=int, default=0)
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--amp", action="store_true", help="CUDA autocast; ignored on the CPU")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="runner[%(process)d] %(message)s"
    )
    threads = max(1, args.threads)
    limits = confinement.Limits.for_threads(
        threads,
        memory_bytes=args.memory_limit,
        cpu_seconds=None if args.no_cpu_limit else args.cpu_limit,
        limit_processes=not args.no_nproc_limit,
    )
    shared = None
    if args.shared_fd is not None:
        shared = protocol.SharedRegion(args.shared_fd, args.shared_slots, args.shared_slot_bytes)
    return serve(
        args.model,
        threads=threads,
        limits=limits,
        require_seccomp=args.seccomp == "required",
        shared=shared,
        device=args.device,
        amp=args.amp,
    )


if __name__ == "__main__":
    code = main()
    # Nothing of this process outlives it: once the logs are out, skip the interpreter's
    # teardown, which with torch loaded took ~1.1 s of every runner's close (bench/runner.py).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
