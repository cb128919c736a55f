"""ONNX packages in the worker: inference through onnxruntime (CPU), no Grad-CAM.

Grad-CAM needs the model's module tree to hook a layer; an ONNX graph run by onnxruntime has none.
Converting ONNX back to torch (onnx2torch) worked in a spike but only for graphs from the legacy
exporter at opset 17, so Blindspot does not pretend: ONNX packages get predictions, and their
reports say plainly that explanations are unavailable. Imported only by the sandboxed worker.

ONNX always runs on the CPU: onnxruntime's CUDA provider is a separate build (onnxruntime-gpu)
tied to its own CUDA version. A runner asked for ``cuda`` still serves, and its info says so in
``note`` rather than failing a package that runs fine on the CPU.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


class UnsupportedOperation(Exception):
    pass


class OnnxModel:
    """Same surface as the worker's LoadedModel: info, predict, gradcam, input_shape."""

    def __init__(self, path: str, *, threads: int, requested_device: str = "cpu") -> None:
        import onnxruntime as ort

        started = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError("the model must take exactly one tensor input")
        self.input_name = inputs[0].name
        self.input_shape: list[int | None] | None = [
            d if isinstance(d, int) else None for d in inputs[0].shape
        ]
        self.output_columns: int | None = None
        static = [d for d in self.input_shape[1:] if d is not None]
        if len(static) == len(self.input_shape) - 1:
            probe = np.zeros((1, *static), dtype=np.float32)
            self.output_columns = self._run(probe).shape[1]
        self.load_seconds = time.perf_counter() - started
        self.confinement: dict[str, Any] = {}
        self.note = (
            "cuda was asked for; ONNX models run on the CPU (onnxruntime CPU provider)"
            if requested_device == "cuda"
            else None
        )

    def info(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "confinement": self.confinement,
            "pid": os.getpid(),
            "device": "cpu",
            "device_name": "cpu",
            "amp": False,
            **({"note": self.note} if self.note else {}),
            "backend": f"onnxruntime {ort.__version__}",
            "threads": self.session.get_session_options().intra_op_num_threads,
            "load_seconds": round(self.load_seconds, 4),
            "input_shape": self.input_shape,
            "output_columns": self.output_columns,
        }

    def _run(self, images: np.ndarray) -> np.ndarray:
        outputs = self.session.run(None, {self.input_name: images})
        if len(outputs) != 1:
            raise UnsupportedOperation(f"the model returned {len(outputs)} outputs, expected 1")
        output = np.asarray(outputs[0])
        if output.ndim == 1:
            output = output.reshape(-1, 1)
        return output

    def predict(self, images: np.ndarray) -> np.ndarray:
        output = self._run(images)
        if output.ndim != 2 or output.shape[0] != len(images):
            raise UnsupportedOperation(f"the model returned shape {output.shape}")
        return output.astype(np.float32, copy=False)

    def gradcam(self, images, target_layer, target_index, reshape=None):
        raise UnsupportedOperation("Grad-CAM is not available for ONNX packages")
