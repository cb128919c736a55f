"""An exemplar image, pixel by pixel: the reference ROI outlined (box edges, or a mask's
contour) in the case viewer's ROI colour, the Grad-CAM map in its colour map, and the colour
bar beside the image running from the map's 1 (top) to 0 (bottom)."""

import base64
import io

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from reports.plots import (
    EXEMPLAR_BAR,
    EXEMPLAR_GAP,
    EXEMPLAR_PAD,
    EXEMPLAR_TICKS,
    exemplar_png,
)
from validation.dicom.display import CAM_COLOURMAP, ROI_COLOUR

SIZE = 64
GREEN = np.array(ROI_COLOUR[:3])


def _pixels(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    png = base64.b64decode(uri.split(",", 1)[1])
    assert b"tEXt" not in png and b"tIME" not in png and b"iTXt" not in png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _image_part(pixels: np.ndarray) -> np.ndarray:
    return pixels[EXEMPLAR_PAD : EXEMPLAR_PAD + SIZE, :SIZE]


def _is_green(pixels: np.ndarray) -> np.ndarray:
    return np.all(pixels == GREEN, axis=-1)


def _flat_image() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return np.sin(x / 6.0) + np.cos(y / 9.0)


def test_the_figure_is_the_image_then_the_colour_bar():
    pixels = _pixels(exemplar_png(_flat_image(), np.zeros((8, 8))))
    assert pixels.shape == (
        SIZE + 2 * EXEMPLAR_PAD,
        SIZE + EXEMPLAR_GAP + EXEMPLAR_BAR + EXEMPLAR_TICKS,
        3,
    )
    # No map and no ROI: the image part is pure gray
    image = _image_part(pixels)
    assert np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 1] == image[..., 2])
    assert not _is_green(pixels).any()


def test_the_roi_box_is_outlined_along_its_four_edges_in_the_roi_colour():
    # Box [x0, y0, x1, y1] in the pixels of a 128 x 128 source: 10..29 x 20..39 at 64 px.
    uri = exemplar_png(
        _flat_image(), np.zeros((8, 8)), roi_box=[20, 40, 60, 80], source_shape=(128, 128)
    )
    green = _is_green(_image_part(_pixels(uri)))
    top, bottom, left, right = 20, 39, 10, 29
    assert green[top, left : right + 1].all() and green[bottom, left : right + 1].all()
    assert green[top : bottom + 1, left].all() and green[top : bottom + 1, right].all()
    inside = green[top + 2 : bottom - 1, left + 2 : right - 1]
    assert not inside.any()  # an outline (2 px), not a filled box
    outside = green.copy()
    outside[top : bottom + 1, left : right + 1] = False
    assert not outside.any()


def test_a_mask_is_outlined_along_its_contour_not_its_box():
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    disc = (x - 32) ** 2 + (y - 32) ** 2 <= 15**2
    uri = exemplar_png(_flat_image(), np.zeros((8, 8)), roi_box=[0, 0, 64, 64], roi_mask=disc)
    green = _is_green(_image_part(_pixels(uri)))
    assert green[32, 17] and green[32, 47] and green[17, 32] and green[47, 32]  # on the circle
    assert not green[18, 18] and not green[0, 0]  # the box's corners: the mask wins
    assert not green[32, 32]  # the centre stays visible


def test_the_map_is_drawn_in_its_colour_map_where_it_is_hot():
    cam = np.zeros((8, 8))
    cam[1, 6] = 1.0  # hot near the top right
    image = _image_part(_pixels(exemplar_png(np.zeros((SIZE, SIZE)), cam)))
    hot, cold = image[12, 52], image[56, 8]
    assert hot[0] > 150 and hot[0] > hot[2] + 100  # red over the black image
    assert tuple(cold) == (0, 0, 0)  # cold regions leave the image as it is


def test_the_colour_bar_runs_from_one_at_the_top_to_zero_at_the_bottom():
    pixels = _pixels(exemplar_png(_flat_image(), np.zeros((8, 8))))
    column = pixels[EXEMPLAR_PAD : EXEMPLAR_PAD + SIZE, SIZE + EXEMPLAR_GAP + EXEMPLAR_BAR // 2]
    lut = np.round(colormaps[CAM_COLOURMAP](np.linspace(0, 1, 256))[:, :3] * 255)
    values = np.array(
        [np.argmin(((lut - px) ** 2).sum(axis=1)) / 255 for px in column[1:-1].astype(float)]
    )
    assert values[0] > 0.95 and values[-1] < 0.05
    assert np.all(np.diff(values) <= 1e-9)  # from 1 down to 0, never back up
    assert np.abs(column[1:-1] - lut[np.round(values * 255).astype(int)]).max() <= 2


def test_the_same_inputs_give_the_same_bytes():
    args = (_flat_image(), np.eye(8))
    first = exemplar_png(*args, roi_box=[3, 4, 20, 30])
    assert exemplar_png(*args, roi_box=[3, 4, 20, 30]) == first
    assert exemplar_png(*args, roi_box=[3, 4, 21, 30]) != first


@pytest.mark.parametrize(
    "image", [np.zeros(SIZE), np.full((SIZE, SIZE), np.nan)], ids=["1-D", "not finite"]
)
def test_an_image_that_is_not_a_finite_2d_array_is_refused(image):
    with pytest.raises(ValueError):
        exemplar_png(image, np.zeros((8, 8)))
