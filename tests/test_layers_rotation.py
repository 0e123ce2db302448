"""Rodrigues' formula and the Gallego–Yezzi derivative: exactness at r = 0, small angles, near π."""

from __future__ import annotations

import math

import pytest
import torch
from _stn_toy_models import backend_grads, one_torch_thread  # noqa: F401
from scipy.spatial.transform import Rotation as SciRot

from mmstn.errors import ShapeError
from mmstn.layers.rotation import SMALL_ANGLE, rodrigues, rodrigues_jacobian, skew

BACKENDS = ("analytic", "autograd")


def _r(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


AXIS = torch.tensor([1.0, -2.0, 2.0], dtype=torch.float64) / 3
SPECIAL = {
    "zero": torch.zeros(1, 3, dtype=torch.float64),
    "tiny_1e-9": _r([1e-9, -2e-9, 0.5e-9]),
    "tiny_1e-6": _r([1e-6, 0.0, 0.0], [0.0, -1e-6, 1e-6]),
    "threshold": (AXIS * SMALL_ANGLE * torch.tensor([[0.999], [1.001]], dtype=torch.float64)),
    "near_pi": (AXIS * (math.pi - 1e-6))[None],
    "pi_z": _r([0.0, 0.0, math.pi - 1e-6]),
    "random": torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
}


@pytest.mark.parametrize("name", list(SPECIAL))
@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_matches_scipy_and_is_orthonormal(name, backend):
    r = SPECIAL[name]
    rot = rodrigues(r, backend)
    ref = torch.from_numpy(SciRot.from_rotvec(r.numpy()).as_matrix())
    torch.testing.assert_close(rot, ref, rtol=0, atol=1e-14)
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye, rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(r.shape[0], dtype=torch.float64), rtol=0, atol=1e-14)


def test_identity_is_exact_at_zero():
    for backend in BACKENDS:
        eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
        assert torch.equal(rodrigues(torch.zeros(2, 3, dtype=torch.float64), backend), eye)


@pytest.mark.parametrize("backend", BACKENDS)
def test_derivative_at_zero_is_the_generator_and_finite(backend):
    r = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda x: rodrigues(x, backend), r)  # (1, 3, 3, 1, 3)
    assert torch.isfinite(jac).all()
    for i in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = 1
        torch.testing.assert_close(jac[0, :, :, 0, i], skew(e), rtol=0, atol=0)
    torch.testing.assert_close(rodrigues_jacobian(r.detach())[0], skew(torch.eye(3, dtype=torch.float64)))


@pytest.mark.parametrize("name", list(SPECIAL))
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(name, backend):
    r = SPECIAL[name].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: rodrigues(x, backend), (r,))


@pytest.mark.parametrize("name", list(SPECIAL))
def test_gallego_yezzi_backward_equals_autograd(name):
    g = backend_grads(rodrigues, (SPECIAL[name].clone().requires_grad_(),))
    assert torch.isfinite(g["analytic"][0]).all()
    torch.testing.assert_close(g["analytic"][0], g["autograd"][0], rtol=0, atol=1e-10)


def test_jacobian_against_central_differences():
    r = torch.tensor([[0.3, -0.7, 1.1], [2.0, 1.0, -1.5]], dtype=torch.float64)
    jac = rodrigues_jacobian(r)
    h = 1e-6
    for i in range(3):
        dr = torch.zeros(3, dtype=torch.float64)
        dr[i] = h
        fd = (rodrigues(r + dr) - rodrigues(r - dr)) / (2 * h)
        torch.testing.assert_close(jac[:, i], fd, rtol=0, atol=1e-9)


def test_float32_jacobian_is_accurate_near_the_threshold():
    for theta in (SMALL_ANGLE * 1.01, 1e-3, 1e-2):
        r64 = (AXIS * theta)[None]
        j64 = rodrigues_jacobian(r64)
        j32 = rodrigues_jacobian(r64.float())
        assert (j32.double() - j64).abs().max() < 1e-6


def test_shape_error_names_r():
    with pytest.raises(ShapeError, match="r must have shape"):
        rodrigues(torch.zeros(2, 4))
