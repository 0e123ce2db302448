"""The authors' demo data: label frame ↔ pixels, and sampling a landmark through the grid conventions.

Needs ../shared/data/3dmmasstn_official (skipped with a reason when absent).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _stn_toy_models import one_torch_thread  # noqa: F401
from scipy import ndimage

from mmstn.layers.grid import labels_to_grid, labels_to_pixels, pixels_to_labels
from mmstn.layers.sampler import bilinear_sample
from mmstn.runtime import shared_data_dir

OFFICIAL = shared_data_dir() / "3dmmasstn_official"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not (OFFICIAL / "demodata.mat").is_file(),
        reason=f"authors' demodata.mat not found under {OFFICIAL} (set MMSTN_SHARED_DATA)",
    ),
]


@pytest.fixture(scope="module")
def demo():
    import scipy.io as sio

    d = sio.loadmat(OFFICIAL / "demodata.mat")
    images = torch.from_numpy(np.ascontiguousarray(d["Images"].transpose(3, 2, 0, 1))).double()  # (6, 3, 224, 224)
    labels = torch.from_numpy(np.ascontiguousarray(d["Labels"][0].transpose(2, 1, 0))).double()  # (6, 21, 2)
    ref = json.loads((OFFICIAL / "demodata_landmarks21.json").read_text())
    pixels = torch.tensor([ref[f"demodata_{i}.png"]["landmarks_aflw21_xy_0based"] for i in range(6)]).double()
    return images, labels, pixels


def test_shapes(demo):
    images, labels, pixels = demo
    assert images.shape == (6, 3, 224, 224) and labels.shape == (6, 21, 2) and pixels.shape == (6, 21, 2)


def test_labels_convert_to_the_reference_pixels(demo):
    _, labels, pixels = demo
    got = labels_to_pixels(labels, 224)  # x0 = x − 1, y0 = 224 − y  (row = 225 − y, 1-based)
    torch.testing.assert_close(got, pixels, rtol=0, atol=1e-3)
    torch.testing.assert_close(pixels_to_labels(got, 224), labels, rtol=0, atol=1e-12)
    # landmark 1 (left brow, left corner) is on the image left, landmark 6 on the right (docs/conventions.md §3.5)
    assert (labels[:, 0, 0] < labels[:, 5, 0]).all()
    # y is up: the brows (1–6) have larger y than the chin (21)
    assert (labels[:, :6, 1].min(1).values > labels[:, 20, 1]).all()


def test_a_landmark_sampled_in_the_pixel_frame_reads_its_pixel(demo):
    images, labels, _ = demo
    # exactly at pixel centres: the integer part of every label
    centres = labels.floor()
    grid = labels_to_grid(centres, 224, "pixel")[:, None]  # (6, 1, 21, 2)
    v = bilinear_sample(images, grid)[:, :, 0]  # (6, 3, 21)
    pix = labels_to_pixels(centres, 224).long()
    want = torch.stack([images[i][:, pix[i, :, 1], pix[i, :, 0]] for i in range(6)])
    torch.testing.assert_close(v, want, rtol=0, atol=1e-9)  # (grid_sample rounds (g + 1)/2·223 at ~1e-13)
    # anywhere: bilinear interpolation at (row, col) = (224 − y, x − 1)
    grid = labels_to_grid(labels, 224, "pixel")[:, None]
    v = bilinear_sample(images, grid)[:, :, 0].numpy()
    pix = labels_to_pixels(labels, 224).numpy()
    for i in range(6):
        for c in range(3):
            ref = ndimage.map_coordinates(images[i, c].numpy(), [pix[i, :, 1], pix[i, :, 0]], order=1)
            np.testing.assert_allclose(v[i, c], ref, rtol=0, atol=1e-9)


def test_the_matconvnet_frame_reads_the_documented_neighbouring_position(demo):
    images, labels, _ = demo
    grid = labels_to_grid(labels, 224, "matconvnet")[:, None]
    v = bilinear_sample(images, grid)[:, :, 0].numpy()
    x, y = labels[..., 0].numpy(), labels[..., 1].numpy()
    for i in range(6):
        for c in range(3):
            ref = ndimage.map_coordinates(images[i, c].numpy(), [(224 - y[i]) * 223 / 224, x[i] * 223 / 224], order=1)
            np.testing.assert_allclose(v[i, c], ref, rtol=0, atol=1e-9)
