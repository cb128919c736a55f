"""Exit 0 when the PostgreSQL at argv[1] answers, starting the local cluster once if it does not."""

import glob
import shutil
import subprocess
import sys
import time

import psycopg


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def main() -> int:
    url = sys.argv[1]
    if reachable(url):
        return 0
    versions = glob.glob("/etc/postgresql/*")
    if shutil.which("pg_ctlcluster") and versions:
        version = versions[0].rsplit("/", 1)[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
        )
        for _ in range(20):
            if reachable(url):
                return 0
            time.sleep(0.5)
    return 1


if __name__ == "__main__":
    sys.exit(main())
