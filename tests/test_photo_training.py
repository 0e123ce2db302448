"""Training data that looks like photographs: photometric augmentation, the photo texture model, and the
one-command training from a folder of photos (renders the tests make stand in for the photos)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmstn.data.augment import photometric_augment
from mmstn.photos.landmarker import mediapipe_available
from mmstn.train.config import TrainConfig

needs_mediapipe = pytest.mark.skipif(
    not mediapipe_available(), reason="needs the photos extra: pip install 'mmstn[photos]'"
)


def _images(b: int = 6, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    base = torch.rand(b, 3, 1, 1, generator=g) * 0.6 + 0.2
    ramp = torch.linspace(0, 0.2, size)
    return (base + ramp[None, None, :, None] + 0.05 * torch.rand(b, 3, size, size, generator=g)).clamp(0, 1)


def test_augment_is_a_function_of_its_generator_and_keeps_range():
    x = _images()
    a = photometric_augment(x, torch.Generator().manual_seed(5))
    b = photometric_augment(x, torch.Generator().manual_seed(5))
    c = photometric_augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and 0 <= float(a.min()) and float(a.max()) <= 1
    assert (a - x).abs().mean() > 0.02  # it does change the pixels


def test_augment_strength_zero_is_the_identity_and_grey_images_occur():
    x = _images(64)
    torch.testing.assert_close(photometric_augment(x, torch.Generator().manual_seed(0), 0.0), x)
    y = photometric_augment(x, torch.Generator().manual_seed(0))
    spread = (y.max(1).values - y.min(1).values).amax((1, 2))  # 0 where the three channels are equal
    grey = int((spread < 0.08).sum())  # the noise is per channel, so nearly equal
    assert 5 <= grey <= 30  # probability 0.25 of 64


def test_augment_rejects_wrong_shapes_and_config_checks_strength():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        photometric_augment(torch.zeros(3, 8, 8), torch.Generator())
    with pytest.raises(ValueError, match="augment"):
        TrainConfig.recommended(augment=-1.0)


@pytest.fixture(scope="module")
def render_photos(tmp_path_factory):
    from mmstn.photos.demo import demo_photo

    root = tmp_path_factory.mktemp("photos")
    return [demo_photo(root / f"p{k}.png", yaw_deg=yaw, seed=k) for k, yaw in enumerate((-30.0, 0.0, 25.0, 10.0))]


@needs_mediapipe
def test_photo_texture_recovers_the_rendered_albedo(render_photos):
    from mmstn.models.ict import ict_face_model
    from mmstn.photos.texture import photo_texture_model

    model = ict_face_model()
    tex = photo_texture_model(render_photos, model, n_components=3, progress=False)
    assert (
        tex.n_photos == 4 and tex.colour.shape == (model.n_vertices, 3) and tex.basis.shape == (3, model.n_vertices, 3)
    )
    # the renders are lit and each has its own texture draw, so compare the colour pattern (red lips, dark
    # brows), not the level: the chromaticity r / (r + g + b), vertex by vertex, on the front of the face
    inner = np.abs(model.mean.numpy()[:, 0]) < 45
    true = model.colour.numpy()[inner]
    got = tex.colour[inner]
    chrom = lambda c: c[:, 0] / c.sum(1)  # noqa: E731
    r = np.corrcoef(chrom(true), chrom(got))[0, 1]
    shuffled = np.corrcoef(chrom(true), chrom(got[np.random.default_rng(0).permutation(len(got))]))[0, 1]
    assert r > 0.4 and abs(shuffled) < 0.1  # measured 0.55: registered to the right vertices


@needs_mediapipe
def test_photo_texture_file_round_trip_and_errors(render_photos, tmp_path):
    from mmstn.errors import ModelFileError
    from mmstn.models.builtin import builtin_model
    from mmstn.photos.texture import PhotoTexture, photo_texture_model, with_texture

    tex = photo_texture_model(render_photos[:2], n_components=5, progress=False)
    assert tex.basis.shape[0] == 1  # at most (faces − 1) components
    back = PhotoTexture.load(tex.save(tmp_path / "t.npz"))
    np.testing.assert_allclose(back.colour, tex.colour, atol=1e-6)
    with pytest.raises(ValueError, match="vertices"):
        with_texture(builtin_model(), back)  # the cartoon stands in for another face: 3,375 vertices, not 7,482
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match=r"bad\.npz"):
        PhotoTexture.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="need at least 2"):
        photo_texture_model([tmp_path / "bad.npz", render_photos[0]], progress=False)


@needs_mediapipe
def test_train_from_photos_runs_end_to_end_and_resumes(render_photos, tmp_path):
    from mmstn.train.from_photos import main

    out = tmp_path / "run"
    args = [str(p) for p in render_photos] + ["--out", str(out), "--images", "8", "--steps", "2", "--components", "2"]
    assert main(args) == 0
    assert (out / "texture.npz").is_file() and (out / "run" / "weights.pt").is_file()
    assert main(args) == 0  # a second call resumes: nothing to redo


@needs_mediapipe
def test_flattener_takes_theta_from_a_cnn_localiser(render_photos):
    from mmstn.data.images import open_rgb
    from mmstn.photos.flatten import Flattener

    fl = Flattener(theta_from="localiser")
    face = fl.flatten_image(np.asarray(open_rgb(render_photos[1])))[0]
    assert face.method == "localiser" and face.theta.shape == (16,)
    assert np.isfinite(face.landmarks["ibug68"]).all() and face.flat.shape == (112, 112, 3)
    with pytest.raises(ValueError, match="localiser's own face"):
        Flattener(theta_from="localiser", n_components=4)
    with pytest.raises(ValueError, match="neither a shipped localiser"):
        Flattener(localiser="no_such_localiser")
    with pytest.raises(ValueError, match="theta_from"):
        Flattener(theta_from="guess")


@needs_mediapipe
def test_combined_theta_takes_the_cnn_only_for_turned_faces(render_photos, tmp_path):
    from mmstn.data.images import open_rgb
    from mmstn.photos.demo import demo_photo
    from mmstn.photos.flatten import Flattener

    fl = Flattener()  # the default: combined
    assert fl.theta_from == "combined" and fl.model.n_components == 40
    frontal = fl.flatten_image(np.asarray(open_rgb(render_photos[1])))[0]  # yaw 0
    assert frontal.method == "face_mesh" and frontal.theta.shape == (46,)
    profile = fl.flatten_image(np.asarray(open_rgb(demo_photo(tmp_path / "p.png", yaw_deg=80.0))))[0]
    assert profile.method == "localiser" and profile.theta.shape == (46,)  # in the full model's layout
    assert Flattener(n_components=10).theta_from == "face_mesh"  # another model or size: the fit only
