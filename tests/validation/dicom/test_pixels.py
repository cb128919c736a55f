"""The pixel pipeline from DICOM to the model's declared input. No Django."""

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_files

from validation.dicom.pixels import (
    DicomImage,
    DicomReadError,
    InputSpec,
    batch_inputs,
    declared_synthetic,
    dicom_attributes,
    parse_dicom,
    read_dicom,
    resize,
    scale_unit,
    to_model_input,
)
from validation.synthetic.cohort import generate_cohort

SPEC = {
    "channels": 1,
    "height": 16,
    "width": 16,
    "scaling": {"method": "percentile", "low": 0.0, "high": 100.0},
    "resize": "area",
    "mean": [0.5],
    "std": [0.25],
}


def test_input_spec_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown keys: colour"):
        InputSpec.from_dict({**SPEC, "colour": "red"})
    with pytest.raises(ValueError, match="missing: height"):
        InputSpec.from_dict({"channels": 1, "width": 4})
    with pytest.raises(ValueError):
        InputSpec.from_dict({**SPEC, "resize": "bicubic-magic"})
    with pytest.raises(ValueError):
        InputSpec.from_dict({**SPEC, "mean": [0.5, 0.5]})


def test_monochrome1_is_inverted_so_bright_means_dense():
    ramp = np.arange(16, dtype=np.float32).reshape(4, 4)
    spec = InputSpec.from_dict(SPEC).scaling
    mono2 = scale_unit(DicomImage(pixels=ramp, photometric="MONOCHROME2"), spec)
    mono1 = scale_unit(DicomImage(pixels=ramp, photometric="MONOCHROME1"), spec)
    np.testing.assert_allclose(mono1, 1.0 - mono2)
    assert mono2[0, 0] == 0.0 and mono2[-1, -1] == 1.0


def test_window_scaling_uses_the_file_window_and_clips():
    px = np.array([[0, 50, 100, 150, 200]], dtype=np.float32)
    image = DicomImage(pixels=px, window_center=100.0, window_width=101.0)
    unit = scale_unit(image, InputSpec.from_dict({**SPEC, "scaling": {"method": "window"}}).scaling)
    # PS3.3 C.11.2.1.2.1: y = (x - (c - 0.5)) / (w - 1) + 0.5, clipped to [0, 1].
    np.testing.assert_allclose(unit, [[0.0, 0.005, 0.505, 1.0, 1.0]])
    with pytest.raises(ValueError, match="no usable window"):
        scale_unit(
            DicomImage(pixels=px),
            InputSpec.from_dict({**SPEC, "scaling": {"method": "window"}}).scaling,
        )


@pytest.mark.parametrize("method", ["area", "bilinear", "nearest"])
def test_resize_shapes_and_preserves_constants(method):
    out = resize(np.full((30, 20), 0.7), 8, 5, method)
    assert out.shape == (8, 5)
    np.testing.assert_allclose(out, 0.7)


def test_area_resize_averages_blocks():
    img = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(resize(img, 2, 2, "area"), [[2.5, 4.5], [10.5, 12.5]])


def test_normalisation_and_channels():
    image = DicomImage(pixels=np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1)))
    x = to_model_input(
        image, InputSpec.from_dict({**SPEC, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3})
    )
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], x[2])
    assert x.min() == pytest.approx(-2.0, abs=0.1) and x.max() == pytest.approx(2.0, abs=0.1)


def test_read_dicom_attributes_and_errors(tmp_path):
    manifest = generate_cohort(tmp_path, cases=3, seed=4)
    first = sorted((tmp_path / "dicom").glob("*.dcm"))[0]
    image = read_dicom(first)
    assert {
        "sex",
        "age",
        "manufacturer",
        "model",
        "institution",
        "body_part",
        "pixel_spacing",
        "kvp",
        "photometric",
        "modality",
        "rows",
        "columns",
    } <= set(image.attributes)
    assert isinstance(image.attributes["age"], int)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 200)
    with pytest.raises(DicomReadError) as exc:
        read_dicom(garbage)
    assert exc.value.reason
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(first.read_bytes()[:1000])
    batch, errors = batch_inputs([first, garbage, truncated], InputSpec.from_dict(SPEC))
    assert errors[0] is None and errors[1] and errors[2]
    assert batch.shape == (3, 1, 16, 16) and not batch[1].any()
    assert manifest.exists()


def test_monochrome1_file_gives_the_same_model_input_as_monochrome2():
    from validation.synthetic.cohort import as_stored, site_by, synth_image

    site = site_by("Borealis Imaging")
    assert site.photometric == "MONOCHROME1"
    image, _ = synth_image(np.random.default_rng(2), label=1, site=site)
    spec = InputSpec.from_dict({**SPEC, "scaling": {"method": "percentile", "low": 1, "high": 99}})
    as_mono1 = DicomImage(
        pixels=as_stored(image, site).astype(np.float32), photometric="MONOCHROME1"
    )
    as_mono2 = DicomImage(pixels=image.astype(np.float32), photometric="MONOCHROME2")
    np.testing.assert_allclose(
        to_model_input(as_mono1, spec), to_model_input(as_mono2, spec), atol=1e-4
    )


@pytest.mark.parametrize(
    ("text", "years"), [("054Y", 54), ("018M", 1), ("010W", 0), ("5Y", None), ("", None)]
)
def test_parse_age(text, years):
    from validation.dicom.pixels import parse_age

    assert parse_age(text) == years


def _converted(data: bytes):
    """The dataset with every element decoded by pydicom (no raw element left)."""
    ds = parse_dicom(data)
    for _elem in ds:
        pass
    return ds


@pytest.mark.filterwarnings("ignore::UserWarning")  # the files carry deliberately odd values
def test_attributes_read_from_raw_bytes_equal_pydicoms_decoding(tmp_path):
    manifest = generate_cohort(tmp_path, cases=4, seed=9)
    files = [p for p in get_testdata_files() if Path(p).is_file() and p.endswith(".dcm")]
    files += sorted(str(p) for p in (manifest.parent / "dicom").glob("*.dcm"))
    compared = 0
    for path in files:
        data = Path(path).read_bytes()
        try:
            raw, converted = parse_dicom(data), _converted(data)
        except Exception:  # noqa: S112 - unparseable files are the intake tests' business
            continue
        assert dicom_attributes(raw) == dicom_attributes(converted), path
        compared += 1
    assert compared > 70
    # The cohort's files (ISO_IR 100) take the raw path and give real values.
    attributes = dicom_attributes(parse_dicom(Path(files[-1]).read_bytes()))
    assert attributes["manufacturer"] and attributes["sex"] in {"F", "M"}
    assert len(attributes["pixel_spacing"]) == 2 and attributes["kvp"] > 0


def test_a_file_is_synthetic_only_when_its_deidentification_method_says_so(tmp_path):
    manifest = generate_cohort(tmp_path, cases=2, seed=3)
    path = sorted((manifest.parent / "dicom").glob("*.dcm"))[0]
    ds = parse_dicom(path.read_bytes())
    assert dicom_attributes(ds)["synthetic"] is True  # "Synthetic data; PS3.15 basic profile"
    ds.DeidentificationMethod = ["PS3.15 basic profile", "Retain Device Identity"]
    assert dicom_attributes(ds)["synthetic"] is False
    del ds.DeidentificationMethod
    assert dicom_attributes(ds)["synthetic"] is False
    assert declared_synthetic(["Basic", "synthetic phantom"]) is True
