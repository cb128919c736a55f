"""The case viewer's renderer (validation.dicom.display) against pydicom's own pipeline on
pydicom's own test images: the 8-bit display image equals `apply_modality_lut` then
`apply_voi_lut` scaled to 8 bits over the VOI output range, and MONOCHROME1 comes out
inverted."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from validation.dicom.display import (
    CAM_MAX_ALPHA,
    ROI_COLOUR,
    UnknownWindow,
    apply_window,
    cam_overlay,
    colour_stops,
    display_shape,
    load_mask,
    mask_outline,
    overlay_shape,
    png_bytes,
    render,
    roi_outline,
    voi_output_range,
    window_choices,
)
from validation.dicom.pixels import DicomReadError

#: pydicom's MONOCHROME1 test image: a computed radiograph with a window and a rescale.
MONOCHROME1 = "6154"
#: MONOCHROME2: an MR image with a window; a CT image with a rescale and no window.
MONOCHROME2_WINDOWED = "MR_small.dcm"
MONOCHROME2_NO_WINDOW = "CT_small.dcm"


def _dataset(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    return pydicom.dcmread(path)


def _pydicom_8bit(ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's modality LUT then VOI LUT, scaled to 8 bits over the range the VOI maps onto
    (no VOI in the file: over the values' own range)."""
    modality = apply_modality_lut(ds.pixel_array, ds)
    voi = apply_voi_lut(modality, ds, index=0).astype(np.float64)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        low, high = voi_output_range(ds)
    else:
        low, high = float(voi.min()), float(voi.max())
    return np.rint(np.clip((voi - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def test_pydicoms_monochrome1_image_is_what_we_think_it_is():
    ds = _dataset(MONOCHROME1)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert "WindowCenter" in ds and "RescaleSlope" in ds
    ds = _dataset(MONOCHROME2_WINDOWED)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and "WindowCenter" in ds


@pytest.mark.parametrize("name", [MONOCHROME2_WINDOWED, MONOCHROME2_NO_WINDOW])
def test_monochrome2_equals_pydicoms_modality_and_voi_lut(name):
    ds = _dataset(name)
    shown = render(ds)
    assert shown.pixels.dtype == np.uint8
    assert shown.pixels.shape == ds.pixel_array.shape  # square pixels: no resampling
    np.testing.assert_array_equal(shown.pixels, _pydicom_8bit(ds))
    assert len(np.unique(shown.pixels)) > 16  # a real image, not a flat field


def test_monochrome1_equals_pydicom_inverted():
    ds = _dataset(MONOCHROME1)
    shown = render(ds)
    expected = 255 - _pydicom_8bit(ds)
    # Imager Pixel Spacing 0.1 x 0.1: square, so no resampling.
    np.testing.assert_array_equal(shown.pixels, expected)
    # Inverted: the largest stored value (most attenuation on a CR plate, shown white in
    # MONOCHROME1 terms as black) is the darkest pixel, the smallest the brightest.
    raw = ds.pixel_array
    assert shown.pixels[np.unravel_index(raw.argmax(), raw.shape)] == shown.pixels.min()
    assert shown.pixels[np.unravel_index(raw.argmin(), raw.shape)] == shown.pixels.max()


def test_the_same_file_read_from_bytes_renders_the_same():
    path = get_testdata_file(MONOCHROME1)
    assert isinstance(path, str)
    with open(path, "rb") as fh:
        data = fh.read()
    np.testing.assert_array_equal(render(data).pixels, render(_dataset(MONOCHROME1)).pixels)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_every_voi_function_equals_pydicoms(function):
    ds = _dataset(MONOCHROME2_WINDOWED)
    ds.VOILUTFunction = function
    np.testing.assert_array_equal(render(ds).pixels, _pydicom_8bit(ds))


def test_a_voi_lut_sequence_equals_pydicoms():
    ds = _dataset(MONOCHROME2_WINDOWED)
    modality = apply_modality_lut(ds.pixel_array, ds)
    first, count = int(modality.min()), int(modality.max() - modality.min()) + 1
    item = pydicom.Dataset()
    item.LUTDescriptor = [count, first, 12]
    item.LUTData = [round(4095 * (i / (count - 1)) ** 0.5) for i in range(count)]
    item.LUTExplanation = "square root"
    ds.VOILUTSequence = [item]
    del ds.WindowCenter, ds.WindowWidth
    voi = apply_voi_lut(modality, ds, index=0).astype(np.float64)
    expected = np.rint(voi / 4095 * 255).astype(np.uint8)
    shown = render(ds)
    np.testing.assert_array_equal(shown.pixels, expected)
    assert shown.windows[0].label == "square root"


def test_windows_offered_and_ct_presets_only_for_ct():
    mr = [c.key for c in window_choices(_dataset(MONOCHROME2_WINDOWED))]
    assert mr == ["file-1", "full"]
    ct = [c.key for c in window_choices(_dataset(MONOCHROME2_NO_WINDOW))]
    assert ct[0] == "full" and {"lung", "bone", "soft-tissue"} <= set(ct)
    with pytest.raises(UnknownWindow):
        render(_dataset(MONOCHROME2_WINDOWED), "lung")


def test_a_ct_preset_windows_hounsfield_units():
    ds = _dataset(MONOCHROME2_NO_WINDOW)
    hu = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    shown = render(ds, "bone")
    expected = np.rint(apply_window(hu, 400.0, 1800.0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown.pixels, expected)
    assert shown.window == "bone"
    # The full range maps the smallest value to black and the largest to white.
    full = render(ds, "full").pixels
    assert full.min() == 0 and full.max() == 255


def test_non_square_pixels_are_shown_with_their_true_aspect():
    ds = _dataset(MONOCHROME2_WINDOWED)  # 64 x 64
    ds.PixelSpacing = [0.6, 0.3]  # rows 0.6 mm apart, columns 0.3 mm: twice as tall
    shown = render(ds)
    assert (shown.height, shown.width) == (128, 64)
    assert shown.source_shape == (64, 64)
    assert display_shape(100, 100, 0.5) == (100, 200)
    assert max(display_shape(8000, 4000, 1.0)) == 2048


def test_an_image_the_service_does_not_decode_is_refused():
    ds = _dataset(MONOCHROME2_WINDOWED)
    ds.PhotometricInterpretation = "RGB"
    with pytest.raises(DicomReadError):
        render(ds)
    with pytest.raises(DicomReadError):
        render(b"not a dicom file")


def test_cam_overlay_is_transparent_where_cold_and_coloured_where_hot():
    cam = np.zeros((8, 8))
    cam[2:4, 5:7] = 1.0
    rgba = cam_overlay(cam, (32, 32))
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0  # cold: fully transparent
    hot = rgba[12, 23]
    assert hot[3] == round(255 * CAM_MAX_ALPHA)
    assert hot[0] > 100 and hot[2] < 100  # jet's hot end is red
    with pytest.raises(ValueError):
        cam_overlay(np.full((2, 2), np.nan), (4, 4))
    assert colour_stops()[0] == "#000080" and colour_stops()[-1] == "#800000"


def test_roi_outline_is_a_box_at_display_scale():
    out = roi_outline([2, 4, 6, 8], source_shape=(16, 16), shape=(32, 32), thickness=1)
    assert tuple(out[8, 4]) == ROI_COLOUR and tuple(out[15, 11]) == ROI_COLOUR
    assert out[10, 6, 3] == 0  # inside: transparent
    assert out[0, 0, 3] == 0
    assert png_bytes(out).startswith(b"\x89PNG")


def _mask_npy(mask: np.ndarray) -> bytes:
    """A mask as import stores it (validation.services.datasets._stage_mask)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(mask, dtype=np.uint8), allow_pickle=False)
    return buffer.getvalue()


def test_mask_outline_follows_the_masks_contour_not_its_box():
    # An L-shaped region with a hole: its box's corner (bottom right) is outside the mask.
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[2:14, 2:6] = 1
    mask[10:14, 2:14] = 1
    mask[11:13, 3:5] = 0  # a hole
    stored = load_mask(_mask_npy(mask))
    assert stored.dtype == bool and stored.shape == (16, 16)
    out = mask_outline(stored, shape=(32, 32), thickness=1)
    assert out.shape == (32, 32, 4) and out.dtype == np.uint8
    drawn = out[..., 3] > 0
    assert (out[drawn] == ROI_COLOUR).all()
    # On the contour: the L's outer edges at display scale (x2).
    assert drawn[4, 4] and drawn[4, 11] and drawn[27, 27] and drawn[20, 27]
    # Not where a box would be: the box's top-right corner and right edge lie outside the L.
    assert not drawn[4, 27] and not drawn[12, 27]
    box = roi_outline([2, 2, 14, 14], source_shape=(16, 16), shape=(32, 32), thickness=1)
    assert box[4, 27, 3] > 0  # (the box outline does cover it)
    # Inside the region, away from every edge: transparent; outside it: transparent.
    assert not drawn[14, 8] and not drawn[0, 0] and not drawn[12, 20]
    # The hole gets its own contour, drawn on the region's side.
    assert drawn[21, 7] and drawn[23, 5] and not drawn[23, 7]
    # Drawn inside the region only: nothing outside the scaled mask.
    scaled = np.kron(mask, np.ones((2, 2), dtype=np.uint8)).astype(bool)
    assert not (drawn & ~scaled).any()
    assert png_bytes(out).startswith(b"\x89PNG")


def test_mask_outline_is_thick_as_asked_and_scales_any_size():
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[2:8, 4:16] = 1
    out = mask_outline(mask, shape=(50, 100), thickness=3)
    drawn = out[..., 3] > 0
    row = drawn[25]  # across the middle: the band is 3 pixels on each side of the region
    assert row[20:23].all() and not row[23:77].any() and row[77:80].all()
    assert not row[:20].any() and not row[80:].any()
    # A region touching the image's edge has its contour there too.
    edge = np.ones((4, 4), dtype=np.uint8)
    assert mask_outline(edge, shape=(8, 8), thickness=1)[0, 4, 3] > 0


def test_load_mask_refuses_what_is_not_a_2d_array():
    with pytest.raises(ValueError):
        load_mask(b"not an npy")
    with pytest.raises(ValueError):
        load_mask(_mask_npy(np.zeros((2, 2, 2))))
    with pytest.raises(ValueError):
        mask_outline(np.zeros((0, 4)), shape=(4, 4))


def test_overlays_are_a_whole_multiple_of_the_image():
    assert overlay_shape((64, 64)) == (768, 768)
    assert overlay_shape((64, 48)) == (768, 576)  # the aspect exactly kept
    assert overlay_shape((1000, 800)) == (1000, 800)
    assert overlay_shape((2048, 1500)) == (2048, 1500)
