"""`manage.py make_cohort`: a deterministic synthetic cohort the import service accepts."""

import csv
import hashlib
import json
from io import StringIO
from pathlib import Path

import pydicom
import pytest
from django.core.management import CommandError, call_command

from validation.study_card import study_card_problems


def _make(out: Path, *extra: str) -> str:
    stdout = StringIO()
    call_command("make_cohort", "--out", str(out), *extra, stdout=stdout)
    return stdout.getvalue()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_make_cohort_writes_dicom_and_a_manifest_deterministically(tmp_path):
    printed = _make(tmp_path / "a", "--cases", "10", "--seed", "7", "--prevalence", "0.3")
    _make(tmp_path / "b", "--cases", "10", "--seed", "7", "--prevalence", "0.3")
    _make(tmp_path / "c", "--cases", "10", "--seed", "8", "--prevalence", "0.3")

    assert "10 cases (3 positive)" in printed
    with (tmp_path / "a" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and sum(r["label"] == "1" for r in rows) == 3
    first = pydicom.dcmread(tmp_path / "a" / rows[0]["file"])
    assert first.Modality in {"DX", "CR"} and first.BitsStored >= 12
    card = json.loads((tmp_path / "a" / "study_card.json").read_text())
    assert study_card_problems(card) == [] and "seed 7" in card["sampling"]["note"]
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


def test_make_cohort_shift_changes_only_the_shifted_scanner(tmp_path):
    _make(tmp_path / "plain", "--cases", "12", "--seed", "3")
    _make(
        tmp_path / "shifted",
        "--cases",
        "12",
        "--seed",
        "3",
        "--shift",
        "manufacturer=Cobalt Systems",
        "--shift",
        "noise_scale=3",
    )
    plain, shifted = _digests(tmp_path / "plain"), _digests(tmp_path / "shifted")
    changed = {name for name in plain if plain[name] != shifted[name]}
    makers = {
        name: pydicom.dcmread(tmp_path / "plain" / name).Manufacturer
        for name in plain
        if name.endswith(".dcm")
    }
    assert changed  # the seed gives Cobalt cases at 12 cases
    assert {makers[name] for name in changed - {"study_card.json"}} == {"Cobalt Systems"}
    assert "manifest.csv" not in changed  # same patients, labels and lesions
    assert "study_card.json" in changed  # its sampling note names the shift


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cases", "4", "--seed", "1", "--shift", "noise_scale"], "KEY=VALUE"),
        (["--cases", "4", "--seed", "1", "--shift", "noise_scale=loud"], "must be a number"),
        (["--cases", "4", "--seed", "1", "--shift", "colour=red"], "unknown keys"),
        (["--cases", "4", "--seed", "1", "--prevalence", "2"], "prevalence"),
        (["--cases", "0", "--seed", "1"], "cases"),
    ],
)
def test_make_cohort_refuses_bad_options(tmp_path, argv, message):
    with pytest.raises(CommandError, match=message):
        _make(tmp_path / "out", *argv)
    assert not list((tmp_path / "out").glob("dicom/*.dcm"))


def test_make_cohort_will_not_write_into_a_used_folder(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("partner notes")
    with pytest.raises(CommandError, match="not empty"):
        _make(tmp_path / "used", "--cases", "2", "--seed", "1")
    assert (tmp_path / "used" / "keep.txt").read_text() == "partner notes"
