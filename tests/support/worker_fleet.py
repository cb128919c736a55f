"""Real Celery worker processes on this machine, for the crash test and `bench/run.py`.

`WorkerFleet` starts `celery worker` processes the way the production layout does (GPU workers:
`--pool solo`, one process per device, consuming `gpu` and their own queue; see
`deploy/README.md`), each in its own process group so that `kill` can SIGKILL a worker with its
sandboxed model process, as a crashed machine would. `redis_url` finds a Redis or starts one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

REPO_ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def redis_url(preferred: str = "") -> tuple[str, subprocess.Popen | None]:
    """A Redis to use (`preferred`, else `BLINDSPOT_TEST_REDIS_URL`, else database 15 of the local
    Redis, if it answers; else a private redis-server started on a free port) and the process
    started, if any; raises RuntimeError when there is none. Two suites that run at once on one
    machine give each its own database through the variable."""
    preferred = preferred or os.environ.get("BLINDSPOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if redis_answers(preferred):
        return preferred, None
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"no Redis at {preferred} and no redis-server binary to start one")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if redis_answers(url):
            return url, proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not start")


class PrivateRedis:
    """A redis-server of this test's own on a fixed free port, which `restart` stops gracefully
    (SIGTERM: it writes its snapshot, as `systemctl restart redis` does) and starts again on the
    same port with the same data directory, so that clients see the connection drop and come
    back. Never the machine's shared Redis: others use it."""

    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("no redis-server binary")
        self.binary, self.data_dir = binary, Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "3600 1",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if redis_answers(self.url):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class WorkerFleet:
    """Celery workers sharing `env` (broker, database, storage roots); `start(name)` adds one."""

    def __init__(self, env: Mapping[str, str], *, log_dir: Path | None = None) -> None:
        self.env = {
            **os.environ,
            "BLINDSPOT_CELERY_LOG_LEVEL": "INFO",  # tasks received and done, in each log
            **env,
            "PYTHONPATH": str(REPO_ROOT),
        }
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="blindspot-fleet-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workers: dict[str, subprocess.Popen] = {}

    def start(
        self,
        name: str,
        *,
        queues: str = "gpu,default,reports",
        env: Mapping[str, str] = MappingProxyType({}),
    ) -> str:
        """Start worker `name@<host>` (solo pool: tasks run in its main process, next to the
        warm runners and the heartbeat that reports them); return its hostname."""
        hostname = f"{name}@{socket.gethostname()}"
        log = open(self.log_dir / f"{name}.log", "ab")  # closed below, once the worker has it
        self.workers[hostname] = subprocess.Popen(
            [
                CELERY,
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queues,
                "--hostname",
                hostname,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO_ROOT,
            env={**self.env, **dict(env)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return hostname

    def wait_ready(self, hostnames: list[str], timeout_s: float = 120.0) -> None:
        """Until each worker has reported itself (its first heartbeat), or raise with its log."""
        from validation.models import WorkerPresence

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            present = set(
                WorkerPresence.objects.filter(hostname__in=hostnames).values_list(
                    "hostname", flat=True
                )
            )
            if present == set(hostnames):
                return
            for hostname in hostnames:
                if self.workers[hostname].poll() is not None:
                    raise RuntimeError(f"worker {hostname} exited:\n{self.log(hostname)}")
            time.sleep(0.2)
        raise TimeoutError(f"workers not ready: {hostnames}\n{self.log(hostnames[0])}")

    def kill(self, hostname: str) -> None:
        """SIGKILL the worker and everything in its process group, as a machine crash would."""
        proc = self.workers[hostname]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def log(self, hostname: str) -> str:
        path = self.log_dir / f"{hostname.split('@')[0]}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL what is left."""
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for hostname, proc in self.workers.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(hostname)
        self.workers.clear()

    def __enter__(self) -> WorkerFleet:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
