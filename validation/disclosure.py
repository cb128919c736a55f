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
