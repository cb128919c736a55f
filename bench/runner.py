"""Model runner benchmark: a warm sandboxed `ModelRunner` against the same model in-process.

Run from the repository root::

    .venv/bin/python bench/runner.py [--images 512] [--repeats 31] [--threads 1,2] [--json PATH]

One run measures, on the reference `TinyLesionNet` (1x64x64, untrained: throughput does not
depend on the weights) packaged with `build_package`:

- cold start of a sandboxed runner: spawn -> torch import -> model load -> ping answered
  (median of `--starts` starts);
- images/s through a warm sandboxed runner, inference alone and inference + Grad-CAM (target
  layer "block3"), `--batch` images per request;
- the in-process baseline: the same exported program loaded in this process the way the worker
  loads it (`torch.export.load` + `torch.export.unflatten`; Grad-CAM through the worker's own
  `GradCamExplainer`, which makes only the target block require grad), same batch size, same
  torch thread count, same pre-made float32 inputs;
- the ratio sandboxed / in-process throughput against the target (>= 0.90): the median over
  pairs of each pair's ratio (the quartiles are printed too).

Both sides are warmed up first. Timed passes come in pairs, one per side back to back, the side
going first alternating, so drift hits both alike. The machine may be shared: for every pass the
CPU time used by processes outside this benchmark's own process tree is read from /proc, and a
pair in which another process used more than `--max-foreign-load` cores is retried (within
`--budget-s`); the report says how many were dropped.

Where the sandboxed side's extra time per batch goes is measured, not guessed: the .npy framing
cost; a ping that carries one batch (the worker reads and decodes it but runs no model: the cost
of moving a batch in); CPU time (user, system) per batch of the worker, of the client and of the
in-process model, read from /proc (with one request in flight the client's CPU is serial with the
worker's); and minor page faults per batch on each side (a fresh buffer per request that glibc
hands back to the kernel and faults in again shows up there).
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from validation.packaging import build_package, default_manifest, read_package  # noqa: E402
from validation.runner import protocol  # noqa: E402
from validation.runner.client import ALLOCATOR_ENV, ModelRunner, RunnerError  # noqa: E402
from validation.runner.explain import GradCamExplainer  # noqa: E402
from validation.synthetic.reference_model import (  # noqa: E402
    GRADCAM_TARGET_LAYER,
    INPUT_SHAPE,
    TinyLesionNet,
)

TARGET_RATIO = 0.90
OPS = (("predict", "inference"), ("gradcam", "inference + Grad-CAM"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- models --------------------------------------------------------------------------------------


def build_model_file(model: nn.Module, workdir: Path, name: str) -> Path:
    """Package `model` with build_package, then extract model.pt2 as the runner pool does."""
    manifest = default_manifest(
        name=f"Runner benchmark {name}", version="1.0.0", gradcam_target_layer=GRADCAM_TARGET_LAYER
    )
    package = build_package(
        model=model.eval(),
        example_input=torch.zeros(2, *INPUT_SHAPE),
        manifest=manifest,
        out_path=workdir / f"{name}.tar.gz",
    )
    _, pt2 = read_package(package)
    model_file = workdir / name / "model.pt2"
    model_file.parent.mkdir()
    model_file.write_bytes(pt2)
    model_file.chmod(0o444)
    return model_file


class InProcessModel:
    """The exported program loaded here the way the worker loads it, minus sandbox and pipe."""

    def __init__(self, model_file: Path, threads: int, batch: int) -> None:
        torch.set_num_threads(threads)
        program = torch.export.load(str(model_file))
        self.module = torch.export.unflatten(program)
        self.explainer = GradCamExplainer(self.module)
        self.batch = batch

    def predict(self, images: np.ndarray) -> np.ndarray:
        outputs = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch):
                logits = self.module(torch.from_numpy(images[start : start + self.batch]))
                outputs.append(logits.detach().to(torch.float32).numpy())
        return np.concatenate(outputs)

    def gradcam(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs, cams = [], []
        for start in range(0, len(images), self.batch):
            logits, maps = self.explainer(
                torch.from_numpy(images[start : start + self.batch]), GRADCAM_TARGET_LAYER, 0
            )
            outputs.append(logits.detach().to(torch.float32).numpy())
            cams.append(np.clip(maps, 0.0, 1.0).astype(np.float32, copy=False))
        return np.concatenate(outputs), np.concatenate(cams)


# -- /proc accounting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Counters of one process from /proc/PID/stat."""

    ppid: int
    user_ticks: int
    sys_ticks: int
    faults: int  # minor page faults

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.ppid,
            self.user_ticks - other.user_ticks,
            self.sys_ticks - other.sys_ticks,
            self.faults - other.faults,
        )


_ZERO = Usage(0, 0, 0, 0)


def _processes() -> dict[int, Usage]:
    """pid -> usage counters for every process readable in /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # Fields after "(comm)": state ppid ... minflt (10th overall) ... utime stime (14, 15).
        table[int(entry.name)] = Usage(
            int(fields[1]), int(fields[11]), int(fields[12]), int(fields[7])
        )
    return table


def _descendants(table: dict[int, Usage], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, usage in table.items():
        children.setdefault(usage.ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in table and pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


def _busy_ticks() -> int:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


def _total(before: dict[int, Usage], after: dict[int, Usage], pids: set[int]) -> Usage:
    deltas = [after[p] - before.get(p, _ZERO) for p in pids]
    return Usage(
        0,
        sum(d.user_ticks for d in deltas),
        sum(d.sys_ticks for d in deltas),
        sum(d.faults for d in deltas),
    )


@dataclass
class Sample:
    seconds: float
    foreign_cores: float  # CPU used by processes outside this benchmark during the pass
    here: Usage  # this process: the client, or the in-process model
    worker: Usage  # the worker's process tree (zero for an in-process pass)


def measure(fn: Callable[[], Any], worker_root: int | None) -> Sample:
    """Run `fn` once; wall time plus CPU time and page faults of each side, and of others."""
    me = os.getpid()
    before = _processes()
    busy_before = _busy_ticks()
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    busy = _busy_ticks() - busy_before
    after = _processes()
    ours = _total(before, after, _descendants(after, me))
    worker = _total(before, after, _descendants(after, worker_root)) if worker_root else _ZERO
    return Sample(
        seconds=seconds,
        foreign_cores=max(0, busy - ours.user_ticks - ours.sys_ticks) / CLOCK_TICKS / seconds,
        here=_total(before, after, {me}),
        worker=worker,
    )


# -- measurement ---------------------------------------------------------------------------------


@dataclass
class Comparison:
    sandboxed: list[Sample] = field(default_factory=list)
    in_process: list[Sample] = field(default_factory=list)
    dropped: int = 0

    def summary(self, images: int, batches: int) -> dict[str, Any]:
        sb = statistics.median(s.seconds for s in self.sandboxed)
        ip = statistics.median(s.seconds for s in self.in_process)
        pair_ratios = [
            b.seconds / a.seconds for a, b in zip(self.sandboxed, self.in_process, strict=True)
        ]
        quartiles = (
            statistics.quantiles(pair_ratios, n=4) if len(pair_ratios) > 1 else pair_ratios * 3
        )
        return {
            "sandboxed_img_s": images / sb,
            "in_process_img_s": images / ip,
            # Each pair's two passes ran back to back, so their ratio cancels the machine's
            # drift (on a shared VM the same pass varies by +-25 % from minute to minute); the
            # median over pairs is the figure held against the target.
            "ratio": statistics.median(pair_ratios),
            "pair_ratio_quartiles": [quartiles[0], quartiles[2]],
            "ratio_of_median_times": ip / sb,
            "extra_ms_per_batch": 1000 * (sb - ip) / batches,
            "pairs_kept": len(self.sandboxed),
            "pairs_dropped_for_foreign_load": self.dropped,
            "per_batch": {
                "sandboxed_worker": _per_batch((s.worker for s in self.sandboxed), batches),
                "sandboxed_client": _per_batch((s.here for s in self.sandboxed), batches),
                "in_process": _per_batch((s.here for s in self.in_process), batches),
            },
            "sandboxed_s": [s.seconds for s in self.sandboxed],
            "in_process_s": [s.seconds for s in self.in_process],
            "foreign_cores": [
                round(max(a.foreign_cores, b.foreign_cores), 3)
                for a, b in zip(self.sandboxed, self.in_process, strict=True)
            ],
        }


def _per_batch(usages: Any, batches: int) -> dict[str, float]:
    """Median CPU milliseconds (user, system) and minor page faults per batch."""
    usages = list(usages)
    ms_per_tick = 1000 / CLOCK_TICKS
    return {
        "cpu_user_ms": statistics.median(u.user_ticks for u in usages) * ms_per_tick / batches,
        "cpu_sys_ms": statistics.median(u.sys_ticks for u in usages) * ms_per_tick / batches,
        "faults": statistics.median(u.faults for u in usages) / batches,
    }


def compare(
    sandboxed: Callable[[], Any],
    in_process: Callable[[], Any],
    worker_root: int,
    *,
    repeats: int,
    max_foreign: float,
    deadline: float,
) -> Comparison:
    """`repeats` clean pairs of passes (retrying disturbed pairs while time allows)."""
    result = Comparison()
    noisy: list[tuple[Sample, Sample]] = []
    attempt = 0
    while len(result.sandboxed) < repeats:
        if attempt >= 2 * repeats or (attempt >= repeats and time.monotonic() > deadline):
            break
        if attempt % 2 == 0:
            sb = measure(sandboxed, worker_root)
            ip = measure(in_process, None)
        else:
            ip = measure(in_process, None)
            sb = measure(sandboxed, worker_root)
        attempt += 1
        if max(sb.foreign_cores, ip.foreign_cores) > max_foreign:
            noisy.append((sb, ip))
            continue
        result.sandboxed.append(sb)
        result.in_process.append(ip)
    result.dropped = len(noisy)
    if len(result.sandboxed) < max(1, repeats // 2):  # too few clean pairs: use them all
        for sb, ip in noisy:
            result.sandboxed.append(sb)
            result.in_process.append(ip)
        result.dropped = -len(noisy)  # negative: noisy pairs were kept
    return result


def worker_root(runner: ModelRunner) -> int:
    pid = runner.pid
    if pid is None:
        raise RuntimeError("runner not started")
    return pid


def bench_model(
    model_file: Path,
    images: np.ndarray,
    threads: int,
    args: argparse.Namespace,
    deadline: float,
) -> dict[str, Any]:
    """Sandboxed against in-process for one model and thread count, both ops."""
    batch = args.batch
    runner = ModelRunner(model_file, threads=threads, max_batch=batch).start()
    try:
        local = InProcessModel(model_file, threads, batch)
        warm = images[: min(len(images), 8 * batch)]
        tail = images[len(images) - len(images) % batch :]  # the odd last batch, if any
        for part in (warm, tail):
            for _ in range(2 if len(part) else 0):
                runner.predict(part)
                runner.gradcam(part, GRADCAM_TARGET_LAYER)
                local.predict(part)
                local.gradcam(part)

        # Same answers on both sides, or the comparison means nothing.
        check = images[: 2 * batch]
        sb_logits, sb_cams = runner.gradcam(check, GRADCAM_TARGET_LAYER)
        ip_logits, ip_cams = local.gradcam(check)
        diffs = {
            "logits": float(np.abs(runner.predict(check) - local.predict(check)).max()),
            "gradcam_logits": float(np.abs(sb_logits - ip_logits).max()),
            "cams": float(np.abs(sb_cams - ip_cams).max()),
        }

        root = worker_root(runner)
        options = {
            "repeats": args.repeats,
            "max_foreign": args.max_foreign_load,
            "deadline": deadline,
        }
        batches = -(-len(images) // batch)
        result: dict[str, Any] = {"threads": threads, "worker_threads": runner.info.get("threads")}
        result["predict"] = compare(
            lambda: runner.predict(images), lambda: local.predict(images), root, **options
        ).summary(len(images), batches)
        result["gradcam"] = compare(
            lambda: runner.gradcam(images, GRADCAM_TARGET_LAYER),
            lambda: local.gradcam(images),
            root,
            **options,
        ).summary(len(images), batches)
        result["ping_round_trip_ms"] = 1000 * median_time(runner.ping, 200)
        transport = request_transport(runner, images[:batch])
        result["request_transport_ms"] = None if transport is None else 1000 * transport
        result["max_abs_diff"] = diffs
        result["isolation"] = runner.isolation
        return result
    finally:
        runner.close()


def median_time(fn: Callable[[], Any], count: int = 50) -> float:
    for _ in range(max(1, count // 10)):
        fn()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def request_transport(runner: ModelRunner, batch_images: np.ndarray) -> float | None:
    """Round trip of a ping that carries one batch: the worker reads and decodes the images and
    answers without running the model, so this is the per-request cost of moving a batch in
    (framing, pipe, copies, wake-ups). Uses the runner's private `_request`; None if it changed.
    """
    try:
        return median_time(lambda: runner._request("ping", arrays=[batch_images]), 64)
    except (AttributeError, TypeError, RunnerError):
        return None


def framing_costs(batch_images: np.ndarray) -> dict[str, float]:
    """Per-batch .npy framing cost (encode, and decode as the worker does it), in seconds."""
    cams = np.zeros((len(batch_images), *batch_images.shape[2:]), dtype=np.float32)
    request = b"".join(protocol.encode_message({"id": 1, "op": "predict"}, [batch_images]))
    reply = b"".join(protocol.encode_message({"id": 1, "ok": True}, [cams[:, :1, 0], cams]))

    def decode(data: bytes) -> None:
        protocol.read_message(io.BytesIO(data).readinto)

    return {
        "encode_request_s": median_time(
            lambda: protocol.encode_message({"id": 1, "op": "predict"}, [batch_images])
        ),
        "decode_request_s": median_time(lambda: decode(request)),
        "decode_gradcam_reply_s": median_time(lambda: decode(reply)),
        "request_bytes": len(request),
        "gradcam_reply_bytes": len(reply),
    }


# -- report --------------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    cold = result["cold_start"]
    cfg = result["config"]
    sandbox = str(result["sandbox"])
    shown = sandbox[:100] + " ..." if len(sandbox) > 100 else sandbox
    print(f"\nsandbox: {shown} (in full: --json)")
    print(
        f"torch {result['torch']}, {result['cpus']} CPUs, batch {cfg['batch']}, "
        f"{cfg['images']} images per pass, {cfg['repeats']} pairs of passes; img/s from median "
        "pass times, ratio = median of the pairs' ratios"
    )
    print(
        f"cold start (spawn -> model loaded -> ping): {cold['median_s']:.2f} s median of "
        f"{len(cold['samples_s'])} [{', '.join(f'{s:.2f}' for s in cold['samples_s'])}]; "
        f"model load inside the worker {cold['worker_load_median_s']:.2f} s; close (shutdown "
        f"request -> process gone) {cold['close_median_s']:.3f} s median"
    )
    print()
    header = (
        f"{'threads':>7}  {'op':<20} {'sandboxed img/s':>15} {'in-process img/s':>16} "
        f"{'ratio':>6} {'(quartiles)':>13} {'extra ms/batch':>14}"
    )
    print(header + "\n" + "-" * len(header))
    for row in result["runs"]:
        for op, label in OPS:
            m = row[op]
            low, high = m["pair_ratio_quartiles"]
            quartiles = f"({low:.2f}-{high:.2f})"
            print(
                f"{row['threads']:>7}  {label:<20} {m['sandboxed_img_s']:>15,.0f} "
                f"{m['in_process_img_s']:>16,.0f} {m['ratio']:>6.3f} "
                f"{quartiles:>13} "
                f"{m['extra_ms_per_batch']:>14.2f}"
            )
    _print_per_batch(result["runs"])
    _print_framing_and_checks(result)


def _print_per_batch(runs: list[dict[str, Any]]) -> None:
    print(
        "\nper batch (medians): CPU ms user+system, minor page faults; "
        "pairs dropped for other processes' load"
    )
    header = (
        f"{'threads':>7}  {'op':<20} {'worker CPU':>11} {'client CPU':>11} "
        f"{'in-proc CPU':>11} {'worker faults':>13} {'in-proc faults':>14} {'dropped':>7}"
    )
    print(header + "\n" + "-" * len(header))
    for row in runs:
        for op, label in OPS:
            m = row[op]
            cells = []
            for side in ("sandboxed_worker", "sandboxed_client", "in_process"):
                usage = m["per_batch"][side]
                cells.append(f"{usage['cpu_user_ms']:.1f}+{usage['cpu_sys_ms']:.1f}")
            print(
                f"{row['threads']:>7}  {label:<20} {cells[0]:>11} {cells[1]:>11} {cells[2]:>11} "
                f"{m['per_batch']['sandboxed_worker']['faults']:>13.0f} "
                f"{m['per_batch']['in_process']['faults']:>14.0f} "
                f"{abs(m['pairs_dropped_for_foreign_load']):>7}"
            )


def _print_framing_and_checks(result: dict[str, Any]) -> None:
    cfg = result["config"]
    frame = result["framing"]
    print(
        f"\nwhere the extra goes, per batch of {cfg['batch']}: .npy framing encode "
        f"{1000 * frame['encode_request_s']:.2f} ms + decode {1000 * frame['decode_request_s']:.2f}"
        f" ms per {frame['request_bytes'] / 1024:.0f} KiB array; "
        "moving one batch in (ping carrying the batch, no model) "
        + ", ".join(
            f"{r['request_transport_ms']:.2f} ms ({r['threads']} thr)"
            if r.get("request_transport_ms") is not None
            else f"n/a ({r['threads']} thr)"
            for r in result["runs"]
        )
        + "; bare ping "
        + ", ".join(f"{r['ping_round_trip_ms']:.3f} ms" for r in result["runs"])
        + f". Grad-CAM also moves {frame['gradcam_reply_bytes'] / 1024:.0f} KiB back."
        " With two requests in flight and batches in shared memory the transport overlaps"
        " the model; what remains of 'extra' is CPU the client and the worker's own loop take"
        " from the model's threads: compare the CPU columns and page faults above."
    )
    for row in result["runs"]:
        if row["worker_threads"] != row["threads"]:
            threads, worker = row["threads"], row["worker_threads"]
            print(f"WARNING: the worker runs {worker} torch threads, not {threads}")
    diffs = [row["max_abs_diff"] for row in result["runs"]]
    print(
        "same answers on both sides: max |logit diff| "
        f"{max(max(d['logits'], d['gradcam_logits']) for d in diffs):.2g}, max |CAM diff| "
        f"{max(d['cams'] for d in diffs):.2g}"
    )
    noisy = [
        f"{row['threads']} thr {op}"
        for row in result["runs"]
        for op, _ in OPS
        if row[op]["pairs_dropped_for_foreign_load"] < 0
    ]
    if noisy:
        print("WARNING: other processes loaded the machine; noisy pairs kept: " + "; ".join(noisy))
    print()
    for row in result["runs"]:
        for op, label in OPS:
            ratio = row[op]["ratio"]
            verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
            print(
                f"target: sandboxed/in-process >= {TARGET_RATIO:.2f}, {label}, "
                f"{row['threads']} thread(s): {ratio:.3f} {verdict}"
            )
    print(f"\ntotal benchmark time {result['total_s']:.0f} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images per timed pass")
    parser.add_argument("--batch", type=int, default=32, help="images per request and forward")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=31, help="timed pairs of passes per op")
    parser.add_argument("--starts", type=int, default=3, help="cold starts to time")
    parser.add_argument(
        "--max-foreign-load",
        type=float,
        default=0.25,
        help="retry a pair when other processes used more CPU cores than this meanwhile",
    )
    parser.add_argument(
        "--budget-s", type=float, default=120.0, help="stop retrying disturbed pairs after this"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    if min(args.images, args.batch, args.repeats, *args.threads or [0]) < 1 or args.starts < 0:
        parser.error("--images, --batch, --repeats and --threads must be positive")
    return args


def match_worker_allocator() -> dict[str, int]:
    """Give this process the glibc allocator settings the worker gets through its environment
    (`ALLOCATOR_ENV`), with mallopt, so the in-process baseline is not slowed by page faults the
    sandboxed side is spared."""
    options = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_TRIM_THRESHOLD_": -1}  # M_MMAP_/M_TRIM_...
    libc = ctypes.CDLL(None)
    applied = {}
    for name, value in ALLOCATOR_ENV.items():
        if libc.mallopt(options[name], int(value)) != 1:
            raise RuntimeError(f"mallopt refused {name}={value}")
        applied[name] = int(value)
    return applied


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    match_worker_allocator()
    began = time.perf_counter()
    deadline = time.monotonic() + args.budget_s
    images = np.random.default_rng(0).normal(0, 1, (args.images, *INPUT_SHAPE)).astype(np.float32)

    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        torch.manual_seed(0)
        model_file = build_model_file(TinyLesionNet(), Path(tmp), "tiny")

        starts, worker_loads, closes = [], [], []
        for _ in range(args.starts):
            started = time.perf_counter()
            runner = ModelRunner(model_file, threads=1, max_batch=args.batch).start()
            starts.append(time.perf_counter() - started)
            worker_loads.append(float(runner.info.get("load_seconds", float("nan"))))
            closing = time.perf_counter()
            runner.close()
            closes.append(time.perf_counter() - closing)
            print(f"cold start {starts[-1]:.2f} s, close {closes[-1]:.3f} s", file=sys.stderr)

        runs = []
        for threads in args.threads:
            print(f"measuring with {threads} thread(s) ...", file=sys.stderr)
            runs.append(bench_model(model_file, images, threads, args, deadline))

    result = {
        "benchmark": "bench/runner.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, CPU only",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sandbox": runs[0]["isolation"] if runs else None,
        "model": "TinyLesionNet 1x64x64 (untrained), Grad-CAM target block3",
        "config": {
            "images": args.images,
            "batch": args.batch,
            "threads": args.threads,
            "repeats": args.repeats,
            "starts": args.starts,
            "max_foreign_load": args.max_foreign_load,
        },
        "target_ratio": TARGET_RATIO,
        "cold_start": {
            "samples_s": starts,
            "median_s": statistics.median(starts) if starts else float("nan"),
            "worker_load_median_s": (
                statistics.median(worker_loads) if worker_loads else float("nan")
            ),
            "close_median_s": statistics.median(closes) if closes else float("nan"),
        },
        "runs": runs,
        "framing": framing_costs(images[: args.batch]),
    }
    result["total_s"] = time.perf_counter() - began
    missed = [
        f"{row['threads']} thread(s) {op}"
        for row in runs
        for op, _ in OPS
        if row[op]["ratio"] < TARGET_RATIO
    ]
    result["targets_missed"] = missed

    print_report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
