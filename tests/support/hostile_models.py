"""What a hostile vendor ships, for the tests that attack the sandbox and the intake: a real
torch.export archive whose first weight is a pickle that runs the vendor's code when loaded."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

WEIGHTS_CONFIG = "/data/weights/model_weights_config.json"  # after the archive's top folder


class Exec:
    """Pickles as a call to `exec(code)`: what a hostile vendor puts in a pickled weight."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code, {}))


def pt2_with_pickled_weight(reference: bytes, code: str) -> bytes:
    """`reference` (a .pt2 archive) with its first weight replaced by a pickle that runs `code`
    on load."""
    source = zipfile.ZipFile(io.BytesIO(reference))
    config_name = next(n for n in source.namelist() if n.endswith(WEIGHTS_CONFIG))
    config = json.loads(source.read(config_name))
    entry = next(iter(config["config"].values()))
    entry["use_pickle"] = True
    victim = config_name.replace("model_weights_config.json", entry["path_name"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == config_name:
                data = json.dumps(config).encode()
            elif info.filename == victim:
                data = pickle.dumps(Exec(code), protocol=2)
            target.writestr(info.filename, data)
    return out.getvalue()
