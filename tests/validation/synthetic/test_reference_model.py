"""The reference vendor model: it learns a bright-blob task quickly and exports faithfully."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from validation.synthetic.reference_model import (
    GRADCAM_TARGET_LAYER,
    TinyLesionNet,
    export_program,
    train_reference_model,
)


def blob_images(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 64x64 images; positives carry a bright Gaussian blob somewhere inside."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.normal(0.0, 0.5, (n, 1, 64, 64)).astype(np.float32)
    rows, cols = np.mgrid[0:64, 0:64]
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(12, 52, 2)
        images[i, 0] += 2.0 * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * 4.0**2))
    return images, labels.astype(np.int64)


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    x, y = blob_images(800, seed=1)
    return train_reference_model(x, y, epochs=3, seed=0, threads=2)


def test_learns_the_blob_task(trained: torch.nn.Module) -> None:
    x, y = blob_images(300, seed=2)
    with torch.no_grad():
        scores = torch.sigmoid(trained(torch.from_numpy(x))).numpy()[:, 0]
    assert scores.shape == (300,)
    assert ((scores >= 0.5) == (y == 1)).mean() > 0.9


def test_output_is_one_logit_and_target_layer_exists() -> None:
    model = TinyLesionNet().eval()
    assert model(torch.zeros(3, 1, 64, 64)).shape == (3, 1)
    assert isinstance(model.get_submodule(GRADCAM_TARGET_LAYER), torch.nn.Module)


def test_training_is_deterministic() -> None:
    x, y = blob_images(128, seed=3)
    first = train_reference_model(x, y, epochs=1, seed=7, threads=1).state_dict()
    second = train_reference_model(x, y, epochs=1, seed=7, threads=1).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_training_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    x, y = blob_images(8, seed=4)
    train_reference_model(x, y, epochs=1, threads=1)
    assert torch.get_num_threads() == before


def test_rejects_wrong_input_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        train_reference_model(np.zeros((4, 1, 32, 32), np.float32), np.zeros(4, np.int64))


def test_export_round_trips_with_a_dynamic_batch(trained: torch.nn.Module, tmp_path) -> None:
    x, _ = blob_images(17, seed=5)
    images = torch.from_numpy(x)
    program = export_program(trained, images[:2])
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()

    with torch.no_grad():
        for batch in (1, 3, 17):
            expected = trained(images[:batch])
            assert torch.equal(program.module()(images[:batch]), expected)
            assert torch.equal(loaded(images[:batch]), expected)
    with pytest.raises((RuntimeError, AssertionError), match="1024"):
        loaded(torch.zeros(1025, 1, 64, 64))
