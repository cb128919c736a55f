"""What leaves the validation team: subgroup cells below the protocol's minimum size keep their
label and lose every number (brief, section 1). Used by the API and the report document alike."""


def subgroups_disclosed(rows: list[dict], *, audience: str) -> list[dict]:
    """`audience` 'team' sees every number; anyone else sees suppressed cells as labels only."""
    if audience == "team":
        return rows
    return [
        {"attribute": r["attribute"], "group": r["group"], "suppressed": True}
        if r["suppressed"]
        else r
        for r in rows
    ]


def counts_disclosed(counts: dict[str, int], *, min_cell: int) -> list[dict]:
    """A distribution for a vendor-facing card: cells with 1..min_cell-1 members keep their label
    and lose their count. When that hides exactly one cell, the next smallest is hidden too, or
    the total would give the hidden one away (complementary suppression)."""
    small = {g for g, n in counts.items() if 0 < n < min_cell}
    if len(small) == 1:
        others = sorted((n, g) for g, n in counts.items() if n > 0 and g not in small)
        if others:
            small.add(others[0][1])
    return [
        {"group": g, "suppressed": True} if g in small else {"group": g, "n": n}
        for g, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if n > 0
    ]
