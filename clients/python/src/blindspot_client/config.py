"""Where `blindspot login` keeps the token: `$BLINDSPOT_CONFIG_DIR` or ~/.config/blindspot/,
a JSON file readable by its owner only (mode 0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "credentials.json"


def config_dir() -> Path:
    configured = os.environ.get("BLINDSPOT_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "blindspot"


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def load_credentials() -> dict[str, Any]:
    """{"url": ..., "token": ...} as `login` stored them, or {} when there are none."""
    try:
        data = json.loads(credentials_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_credentials(*, url: str, token: str, name: str, expires_at: str | None) -> Path:
    """Write the file with mode 0600 from its creation on (never briefly readable by others)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(
        {"url": url, "token": token, "name": name, "expires_at": expires_at}, indent=2
    )
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(tmp, path)
    return path
