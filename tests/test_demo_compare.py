"""`manage.py demo --compare` as a user runs it (its own process, a fresh embedded database):
two versions of the demo model validated on the same sealed cases, and the comparison report
issued, read back from its PDF and verified (issue 18 item 13)."""

import re
from pathlib import Path

import pytest

from tests.support.manage_process import manage, pdf_text

pytestmark = pytest.mark.slow


def test_demo_compare_issues_a_verifiable_comparison_report(tmp_path):
    assert manage(tmp_path, "migrate", "--noinput", "-v", "0", check=False).returncode == 0
    scores = tmp_path / "scores.csv"
    done = manage(
        tmp_path,
        "demo", "--compare", "--cases", "80", "--training-cases", "400",
        "--export-scores", str(scores),
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    out = done.stdout
    assert "Vendor trains version 1.1.0 (supersedes 1.0.0)" in out
    assert re.search(r"^  auc +1\.0\.0 \d\.\d{3}  1\.1\.0 \d\.\d{3}  difference ", out, re.M), out
    assert "paired DeLong" in out and "McNemar" in out
    assert re.search(
        r"^  Version 1\.1\.0 is (not shown )?non-inferior to 1\.0\.0 in AUC", out, re.M
    )
    pdf_path = Path(re.findall(r"^PDF: (.+)$", out, re.M)[-1])
    assert re.search(r"C-\d{6}-v1-[0-9a-f]{12}\.pdf$", pdf_path.name)
    text = pdf_text(pdf_path)
    assert (
        "Comparison report" in text and "LesionFinder version 1.1.0 against version 1.0.0" in text
    )
    assert len(scores.read_text().splitlines()) == 81  # a header and one line per case
    verified = manage(tmp_path, "report_verify", str(pdf_path), check=False)
    assert verified.returncode == 0 and "issued" in verified.stdout.lower(), verified.stdout
