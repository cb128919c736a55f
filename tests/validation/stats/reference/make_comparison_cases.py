"""Writes comparison_cases.csv: the seeded synthetic paired set that comparison_proc.R reads.

Run once from the repository root:
    python tests/validation/stats/reference/make_comparison_cases.py
The CSV is committed, so the R values recorded in test_comparison.py stay tied to it.
Two correlated binormal scores (the candidate a little better), rounded to two decimals so
that ties occur, a site per case, and a few cases failed by one model or both (empty cells).
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(20261208)
n = 160
y = (rng.random(n) < 0.4).astype(int)
shared = rng.normal(size=n)
baseline = 0.9 * y + 0.8 * shared + 0.6 * rng.normal(size=n)
candidate = 1.2 * y + 0.8 * shared + 0.6 * rng.normal(size=n)
baseline, candidate = np.round(baseline, 2), np.round(candidate, 2)
site = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.4, 0.1])
failed_baseline = rng.choice(n, size=5, replace=False)
failed_candidate = np.r_[failed_baseline[:2], rng.choice(n, size=4, replace=False)]
rows = ["case,label,site,baseline,candidate"]
for i in range(n):
    b = "" if i in failed_baseline else f"{baseline[i]:.2f}"
    c = "" if i in failed_candidate else f"{candidate[i]:.2f}"
    rows.append(f"c{i:03d},{y[i]},{site[i]},{b},{c}")
Path(__file__).with_name("comparison_cases.csv").write_text("\n".join(rows) + "\n")
