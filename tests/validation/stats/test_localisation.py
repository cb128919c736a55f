"""Grad-CAM localisation against a ROI box, and its chance level."""

import numpy as np
import pytest

from validation.stats.localisation import localisation_agreement, roi_area_fraction


def test_the_area_fraction_is_the_share_of_map_cells_the_box_covers():
    # A quarter of a 100x100 image on a 10x10 map; a box between cells rounds outward.
    assert roi_area_fraction((0, 0, 50, 50), source_shape=(100, 100), map_shape=(10, 10)) == 0.25
    assert roi_area_fraction((0, 0, 100, 100), source_shape=(100, 100), map_shape=(10, 10)) == 1
    assert roi_area_fraction((5, 5, 15, 15), source_shape=(100, 100), map_shape=(10, 10)) == (
        pytest.approx(4 / 100)
    )


def test_random_maps_hit_the_roi_at_the_chance_rate():
    """The pointing game's chance level: maps whose peak falls anywhere hit the box at the
    rate of its area fraction, and a flat map puts that share of its energy inside it."""
    roi, source, shape = (10, 20, 42, 70), (128, 96), (16, 16)
    chance = roi_area_fraction(roi, source_shape=source, map_shape=shape)
    rng = np.random.default_rng(7)
    hits = [
        localisation_agreement(rng.random(shape), roi, source_shape=source)[0] for _ in range(4000)
    ]
    assert np.mean(hits) == pytest.approx(chance, abs=0.02)
    _hit, energy = localisation_agreement(np.ones(shape), roi, source_shape=source)
    assert energy == pytest.approx(chance)
