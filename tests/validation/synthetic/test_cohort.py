"""Synthetic cohorts: real, deterministic DICOM with plausible tags, ROIs on real lesions, and a
shift that really degrades the chosen scanner. No Django."""

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from validation.synthetic.cohort import (
    SITES,
    generate_cohort,
    site_by,
    synth_image,
    training_arrays,
)


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, cases=40, seed=11, prevalence=0.25)
    return out


def _rows(folder):
    with open(folder / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_manifest_columns_prevalence_and_sites(cohort_dir):
    rows = _rows(cohort_dir)
    assert list(rows[0]) == [
        "case_id",
        "file",
        "label",
        "roi_x0",
        "roi_y0",
        "roi_x1",
        "roi_y1",
        "race",
        "site",
    ]
    assert sum(int(r["label"]) for r in rows) == 10  # round(40 * 0.25), exactly
    assert {r["site"] for r in rows} <= {s.code for s in SITES}
    assert len({r["site"] for r in rows}) == 3
    for row in rows:
        has_roi = bool(row["roi_x0"])
        assert has_roi == (row["label"] == "1")


def test_files_are_plausible_dicom_that_read_back(cohort_dir):
    for row in _rows(cohort_dir)[:8]:
        ds = pydicom.dcmread(cohort_dir / row["file"])
        assert ds.Modality in {"DX", "CR"} and ds.BodyPartExamined == "CHEST"
        assert ds.PatientSex in {"M", "F"} and ds.PatientAge.endswith("Y")
        assert ds.Manufacturer in {s.manufacturer for s in SITES}
        assert ds.PhotometricInterpretation == site_by(ds.Manufacturer).photometric
        assert 12 <= ds.BitsStored <= 16 and ds.BitsAllocated == 16
        pixels = ds.pixel_array
        assert pixels.shape == (ds.Rows, ds.Columns) and pixels.dtype == np.uint16
        assert int(pixels.max()) < 2**ds.BitsStored
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert str(ds.PatientID).startswith("ANON-")


def test_same_seed_same_cohort(cohort_dir, tmp_path):
    generate_cohort(tmp_path, cases=40, seed=11, prevalence=0.25)
    assert (tmp_path / "manifest.csv").read_bytes() == (cohort_dir / "manifest.csv").read_bytes()
    for row in _rows(cohort_dir)[:5]:
        assert (tmp_path / row["file"]).read_bytes() == (cohort_dir / row["file"]).read_bytes()


def test_rois_hold_a_real_lesion():
    rng = np.random.default_rng(5)
    contrasts = []
    for _ in range(20):
        image, roi = synth_image(rng, label=1, site=SITES[0])
        assert roi is not None  # a positive case has a lesion box
        x0, y0, x1, y1 = roi
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        inside = image[y0:y1, x0:x1].mean()
        ring = image[max(y0 - 8, 0) : y1 + 8, max(x0 - 8, 0) : x1 + 8].mean()
        contrasts.append(inside - ring)
    assert np.mean(contrasts) > 0  # the box is brighter (denser) than its surroundings
    image, roi = synth_image(rng, label=0, site=SITES[0])
    assert roi is None


def _noise(image):
    """Pixel-to-pixel noise: the std of horizontal differences, insensitive to smooth anatomy."""
    return float(np.diff(image.astype(float), axis=1).std())


def test_shift_makes_the_chosen_scanner_noisier():
    site = site_by("Cobalt Systems")
    clean = _noise(synth_image(np.random.default_rng(1), label=0, site=site)[0])
    shifted = _noise(synth_image(np.random.default_rng(1), label=0, site=site, noise_scale=3.0)[0])
    assert shifted > 2 * clean


def test_shift_validation():
    with pytest.raises(ValueError, match="unknown keys"):
        generate_cohort(Path("/nonexistent"), cases=2, seed=1, shift={"colour": "red"})
    with pytest.raises(ValueError):
        generate_cohort(Path("/nonexistent"), cases=0, seed=1)


def test_training_arrays_are_balanced_and_normalised():
    x, y = training_arrays(40, seed=2, size=32)
    assert x.shape == (40, 1, 32, 32) and x.dtype == np.float32
    assert y.sum() == 20
    assert -3 < float(x.mean()) < 3 and np.isfinite(x).all()


def test_lesion_is_the_only_difference_and_sits_in_the_roi():
    # Every draw happens whatever the label, so one seed gives the same patient with and without.
    site = site_by("Acme Medical")
    with_lesion, roi = synth_image(np.random.default_rng(3), label=1, site=site)
    without, _ = synth_image(np.random.default_rng(3), label=0, site=site)
    diff = with_lesion.astype(float) - without.astype(float)
    assert roi is not None  # a positive case has a lesion box
    x0, y0, x1, y1 = roi
    peak_y, peak_x = np.unravel_index(np.argmax(diff), diff.shape)
    assert x0 <= peak_x < x1 and y0 <= peak_y < y1
    assert np.abs(diff[y0:y1, x0:x1]).sum() > 0.8 * np.abs(diff).sum()


def test_files_read_back_pixel_exact(tmp_path):
    from validation.dicom.pixels import read_dicom
    from validation.synthetic.cohort import _dicom_dataset, as_stored

    demographics = {"sex": "F", "age": 54, "study_date": "20240102", "study_time": "101500"}
    for site in SITES:
        image, _ = synth_image(np.random.default_rng(8), label=1, site=site)
        stored = as_stored(image, site)
        path = tmp_path / f"{site.code}.dcm"
        ds = _dicom_dataset(
            stored=stored, site=site, case_id="C1", seed=8, demographics=demographics
        )
        ds.save_as(path, enforce_file_format=True)
        np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, stored)
        read = read_dicom(path)
        np.testing.assert_array_equal(read.pixels, stored.astype(np.float32))
        assert read.attributes["age"] == 54 and read.attributes["manufacturer"] == site.manufacturer
