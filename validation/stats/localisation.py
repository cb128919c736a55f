"""Does the model look where the lesion is? Grad-CAM agreement with a ground-truth ROI box."""

import numpy as np


def roi_to_map(roi, *, source_shape: tuple[int, int], map_shape: tuple[int, int]):
    """Scale an (x0, y0, x1, y1) pixel box on the source image onto the CAM grid, as slices."""
    (src_h, src_w), (h, w) = source_shape, map_shape
    x0, y0, x1, y1 = roi
    cols = slice(int(np.floor(x0 * w / src_w)), max(int(np.ceil(x1 * w / src_w)), 1))
    rows = slice(int(np.floor(y0 * h / src_h)), max(int(np.ceil(y1 * h / src_h)), 1))
    return rows, cols


def localisation_agreement(cam: np.ndarray, roi, *, source_shape) -> tuple[bool, float]:
    """Pointing game (is the CAM's peak inside the box?) and the share of CAM energy inside
    the box. `cam` is (H, W), non-negative."""
    rows, cols = roi_to_map(roi, source_shape=source_shape, map_shape=cam.shape)
    inside = np.zeros(cam.shape, dtype=bool)
    inside[rows, cols] = True
    peak = np.unravel_index(int(np.argmax(cam)), cam.shape)
    total = float(cam.sum())
    energy = float(cam[inside].sum() / total) if total > 0 else 0.0
    return bool(inside[peak]), energy


def roi_area_fraction(roi, *, source_shape, map_shape: tuple[int, int]) -> float:
    """The share of the CAM grid the ROI covers, as `localisation_agreement` draws it: the hit
    rate of a peak placed at random (the pointing game's chance level) and the share of energy
    a flat map puts inside the ROI."""
    rows, cols = roi_to_map(roi, source_shape=source_shape, map_shape=map_shape)
    inside = np.zeros(map_shape, dtype=bool)
    inside[rows, cols] = True
    return float(inside.mean())


def cam_to_uint8(cam: np.ndarray) -> np.ndarray:
    """Store maps compactly: [0, 1] floats to uint8 (a 64x64 map is 4 KiB)."""
    return np.clip(np.rint(np.asarray(cam, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
