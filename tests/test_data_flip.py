"""The horizontal flip: an involution, the authors' formula, and mirror-consistent with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmstn.data.flip import (
    component_parity,
    flip_image,
    flip_landmarks,
    flip_sample,
    mirror_light_direction,
    mirror_theta,
)
from mmstn.data.synthetic import SceneDistribution, generate_sample
from mmstn.models import ict_face_model
from mmstn.models.landmarks import AFLW21_FLIP, IBUG68_FLIP
from mmstn.render import Lighting, pose_vertices, render_face
from mmstn.theta import make_theta


@pytest.fixture(scope="module")
def model():
    return ict_face_model()


def test_flip_formula_and_involution():
    g = torch.Generator().manual_seed(0)
    lm = torch.rand(4, 21, 2, generator=g) * 223 + 1
    vis = (torch.rand(4, 21, generator=g) > 0.3).float()
    lm[0, 3] = 0.0  # a missing landmark
    vis[0, 3] = 0.0
    out, v = flip_landmarks(lm, vis, 224)
    perm = torch.as_tensor(AFLW21_FLIP)
    expect = lm.clone()
    expect[..., 0] = 225 - lm[..., 0]
    expect[0, 3] = 0.0
    torch.testing.assert_close(out, expect[:, perm])
    torch.testing.assert_close(v, vis[:, perm])
    assert torch.equal(out[0, int(AFLW21_FLIP[3])], torch.zeros(2))  # missing stays at (0, 0)
    back, vb = flip_landmarks(out, v, 224)
    torch.testing.assert_close(back, lm)
    assert torch.equal(vb, vis)
    img = torch.rand(3, 5, 7, generator=g)
    assert torch.equal(flip_image(flip_image(img)), img)
    assert torch.equal(flip_image(img)[:, :, 0], img[:, :, -1])
    lm68 = torch.rand(68, 2, generator=g) * 100 + 1
    f68, _ = flip_landmarks(lm68, None, 100)
    torch.testing.assert_close(f68[torch.as_tensor(IBUG68_FLIP)][:, 0], 101 - lm68[:, 0])
    torch.testing.assert_close(flip_landmarks(f68, None, 100)[0], lm68)


def test_flip_permutations_match_the_model_mirror(model):
    for name, perm in (("aflw21", AFLW21_FLIP), ("ibug68", IBUG68_FLIP)):
        idx = model.landmarks[name]
        assert torch.equal(idx[torch.as_tensor(perm)], model.mirror[idx])


def _with_antisymmetric_mode(model):
    """The model plus one mirror-antisymmetric shape component (appended as the last expression component).

    The ICT face's components are all mirror-symmetric, so mirroring θ would never negate a coefficient; this
    smooth sideways bend (z moved in proportion to x, at most 6 mm) is one whose sign the mirror must flip.
    """
    x, y = model.mean[:, 0], model.mean[:, 1]
    bend = torch.zeros_like(model.mean)
    bend[:, 2] = 6.0 * (x / x.abs().max()) * torch.exp(-((y / 80.0) ** 2))
    return model.with_fields(basis=torch.cat([model.basis, bend[None]]))


def test_flip_equals_rendering_at_the_mirrored_theta(model):
    model = _with_antisymmetric_mode(model)
    parity = component_parity(model)
    assert set(parity.tolist()) <= {-1.0, 1.0} and (parity == -1).any()
    g = torch.Generator().manual_seed(1)
    light = Lighting(direction=(0.5, 0.3, 1.0))
    for r in ([0.2, 0.5, 0.1], [-0.1, -0.9, 0.3]):
        theta = make_theta(torch.tensor([r]), torch.tensor([[118.0, 110.0]]), torch.tensor([np.log(0.7)]),
                           torch.randn(1, model.n_components, generator=g))[0]
        a = render_face(model, theta.double(), lighting=light)
        mirrored = mirror_theta(theta.double(), model, 224)
        b = render_face(model, mirrored, lighting=Lighting(direction=mirror_light_direction(light.direction)))
        diff = (flip_image(a.image) - b.image).abs().amax(0)
        assert float((diff > 1e-3).float().mean()) < 0.002  # equal except (at most) a few silhouette pixels
        assert np.array_equal(np.flip(a.mask, 1), b.mask)
        idx = model.landmarks["aflw21"]
        fl, fv = flip_landmarks(a.points[idx].double(), torch.from_numpy(a.visible[idx.numpy()]).double(), 224)
        torch.testing.assert_close(fl, b.points[idx].double(), atol=1e-4, rtol=0)
        assert np.array_equal(fv.bool().numpy(), b.visible[idx.numpy()])


def test_flip_sample_of_a_synthetic_face(model):
    s = generate_sample(model, 2, 0, scene=SceneDistribution(occluder_probability=0.0))
    f = flip_sample(s, model)
    assert torch.equal(f["image"], torch.flip(s["image"], dims=[-1]))
    assert torch.equal(f["mask"], torch.flip(s["mask"], dims=[-1]))
    pts, _, _ = pose_vertices(model, f["theta"][None])
    torch.testing.assert_close(f["landmarks21"], pts[0, model.landmarks["aflw21"]], atol=1e-3, rtol=0)
    torch.testing.assert_close(f["landmarks68"], pts[0, model.landmarks["ibug68"]], atol=1e-3, rtol=0)
    twice = flip_sample(f, model)
    for k in s:
        torch.testing.assert_close(twice[k], s[k])
    assert "theta" not in flip_sample(s)  # no model: θ cannot be mirrored


def test_mirror_theta_needs_a_symmetric_model(model):
    basis = model.basis.clone()
    basis[0, :10] += 1.0
    skewed = model.with_fields(basis=basis)
    assert component_parity(skewed)[0] == 0
    with pytest.raises(ValueError, match="neither symmetric nor antisymmetric"):
        mirror_theta(torch.zeros(6 + model.n_components), skewed, 224)
