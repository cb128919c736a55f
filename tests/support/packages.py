"""A real package with an edited manifest: what a careless vendor might upload."""

import gzip
import io
import json
import tarfile
from pathlib import Path


def repacked(package_file: Path, out: Path, *, drop: tuple[str, ...] = (), **changes) -> Path:
    """`package_file`'s members written to `out` (gzipped when it ends in .gz) with manifest
    fields changed: `threshold=7` sets a top-level field, `output__positive_index=1` one inside
    a section; `drop` removes top-level fields."""
    with tarfile.open(package_file) as tar:
        members: dict[str, bytes] = {}
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            assert fh is not None, f"{member.name} is not a regular file"
            members[member.name] = fh.read()
    manifest = json.loads(members["manifest.json"])
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            manifest[section][field] = value
        else:
            manifest[key] = value
    for key in drop:
        del manifest[key]
    members["manifest.json"] = json.dumps(manifest).encode()
    raw = gzip.open(out, "wb") if str(out).endswith(".gz") else open(out, "wb")
    with raw, tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out
