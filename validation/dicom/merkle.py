"""The Merkle root that seals a dataset version over (case id, file hash, label)."""

import hashlib


def merkle_leaf(case_id: str, file_sha256: str, label: int) -> bytes:
    return hashlib.sha256(f"leaf\x1f{case_id}\x1f{file_sha256}\x1f{label}".encode()).digest()


def merkle_root(leaves: list[tuple[str, str, int]]) -> str:
    """Root over leaves sorted by case id; an odd node is carried up unchanged. The `leaf`/
    `node` prefixes keep a leaf from being passed off as an inner node."""
    if not leaves:
        raise ValueError("A dataset version needs at least one case to be sealed.")
    level = [merkle_leaf(*leaf) for leaf in sorted(leaves)]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(hashlib.sha256(b"node\x1f" + level[i] + level[i + 1]).digest())
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()
