"""The θ type and the rotation conversions: the Euler convention, round trips, scale bases, STN and localiser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _stn_toy_models import frontal_theta, toy_grid_model

import mmstn.stn as stn_module
from mmstn import theta as theta_module
from mmstn.errors import ShapeError
from mmstn.localiser import Localiser, SmallTrunk, ThetaHead
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import Theta, ThetaConvention
from mmstn.train.evaluate import truth_in_stn_frame, yaw_pitch_roll_deg
from mmstn.transforms import (
    axis_angle_to_matrix,
    euler_to_matrix,
    euler_to_matrix_np,
    matrix_to_axis_angle,
    matrix_to_axis_angle_np,
    matrix_to_euler,
)

G = 6


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(b: float) -> np.ndarray:
    c, s = math.cos(b), math.sin(b)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(c_: float) -> np.ndarray:
    c, s = math.cos(c_), math.sin(c_)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.mark.parametrize("yaw, pitch, roll", [(30.0, 0.0, 0.0), (0.0, 20.0, 0.0), (0.0, 0.0, 10.0),
                                              (35.0, -15.0, 8.0), (-70.0, 40.0, -25.0)])
def test_euler_convention_is_rz_roll_ry_yaw_rx_pitch_in_degrees(yaw, pitch, roll) -> None:
    want = _rz(math.radians(roll)) @ _ry(math.radians(yaw)) @ _rx(math.radians(pitch))
    th = Theta.from_euler(yaw, pitch, roll, t=(0.0, 0.0), dtype=torch.float64)
    np.testing.assert_allclose(th.rotation[0].numpy(), want, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix_np(*np.radians([yaw, pitch, roll])), want, atol=1e-12)
    got = [float(a[0]) for a in th.to_euler()]
    np.testing.assert_allclose(got, [yaw, pitch, roll], atol=1e-9)


def test_positive_yaw_turns_the_nose_towards_plus_x() -> None:
    nose = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    rot = Theta.from_euler(30.0, 0.0, 0.0, t=(0.0, 0.0), dtype=torch.float64).rotation[0]
    assert float((rot @ nose)[0]) == pytest.approx(math.sin(math.radians(30)))


def test_axis_angle_matrix_round_trip_including_zero_and_near_pi() -> None:
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    r = torch.cat([r, torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[0.0, math.pi - 1e-7, 0.0]],
                                                                             dtype=torch.float64)])
    mat = axis_angle_to_matrix(r)
    torch.testing.assert_close(axis_angle_to_matrix(matrix_to_axis_angle(mat)), mat, atol=1e-9, rtol=0)
    below_pi = r.norm(dim=-1) < math.pi  # axis-angle is unique there: the vector itself comes back
    torch.testing.assert_close(matrix_to_axis_angle(mat)[below_pi], r[below_pi], atol=1e-7, rtol=0)
    np.testing.assert_allclose(matrix_to_axis_angle_np(mat.numpy()), matrix_to_axis_angle(mat).numpy())


def test_axis_angle_matches_the_rodrigues_layer() -> None:
    from mmstn.layers.rotation import rodrigues

    r = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(axis_angle_to_matrix(r), rodrigues(r, "autograd"), atol=1e-12, rtol=0)


def test_matrix_to_euler_round_trip_on_random_rotations() -> None:
    gen = torch.Generator().manual_seed(2)
    ang = (torch.rand(3, 200, generator=gen, dtype=torch.float64) - 0.5) * torch.tensor([[3.0], [6.0], [6.0]])
    mat = euler_to_matrix(*ang)
    back = matrix_to_euler(mat)
    torch.testing.assert_close(euler_to_matrix(*back), mat, atol=1e-10, rtol=0)
    torch.testing.assert_close(back[0], ang[0], atol=1e-10, rtol=0)  # |yaw| < 90°: recovered exactly


def test_evaluate_yaw_pitch_roll_uses_the_same_convention() -> None:
    th = Theta.from_euler([20.0, -45.0], [10.0, 5.0], [-5.0, 15.0], t=(0.0, 0.0), dtype=torch.float64)
    ypr = yaw_pitch_roll_deg(th.r)
    torch.testing.assert_close(ypr, torch.stack(th.to_euler(), -1), atol=1e-9, rtol=0)
    torch.testing.assert_close(ypr[:, 0], torch.tensor([20.0, -45.0], dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.parametrize("base", ["exp", "0.99", 1.5])
def test_scale_is_base_to_the_logs_and_converting_bases_keeps_it(base) -> None:
    th = Theta.from_euler(10.0, 0.0, 0.0, t=(100.0, 90.0), scale=[0.5, 2.0], convention=base, n_components=2,
                          dtype=torch.float64)
    torch.testing.assert_close(th.scale[:, 0], torch.tensor([0.5, 2.0], dtype=torch.float64))
    kappa = math.log(float(base)) if isinstance(base, float) else (1.0 if base == "exp" else math.log(0.99))
    torch.testing.assert_close(th.scale, torch.exp(kappa * th.tensor()[:, 5:6]))
    for other in ("exp", "0.99"):
        moved = th.with_scale_base(other)
        torch.testing.assert_close(moved.scale, th.scale)
        assert moved.convention.scale_base == ThetaConvention(other).scale_base
    # the two shipped bases differ: the same logs number means a different scale
    assert not torch.allclose(Theta(th.r, th.t, th.logs, th.alpha, ThetaConvention("exp")).scale,
                              Theta(th.r, th.t, th.logs, th.alpha, ThetaConvention("0.99")).scale)


def test_tensor_round_trip_and_layout() -> None:
    x = torch.arange(2 * 9, dtype=torch.float64).reshape(2, 9)
    th = Theta.from_tensor(x, "exp")
    torch.testing.assert_close(th.tensor(), x)
    torch.testing.assert_close(th.as_tensor(), x)
    torch.testing.assert_close(th.t, x[:, 3:5])
    torch.testing.assert_close(th.logs, x[:, 5:6])
    torch.testing.assert_close(th.alpha, x[:, 6:])
    assert th.n_components == 3 and len(th) == 2
    with pytest.raises(ShapeError):
        Theta.from_tensor(torch.zeros(2, 4))


def test_batching_device_and_detach() -> None:
    a = Theta.from_euler([1.0, 2.0], 0.0, 0.0, t=(1.0, 2.0), scale=2.0, convention="exp", n_components=1)
    b = Theta.from_euler([3.0], 0.0, 0.0, t=(1.0, 2.0), scale=3.0, convention="0.99", n_components=1)
    both = Theta.cat([a, b])
    assert len(both) == 3 and both.scale_base == a.scale_base
    torch.testing.assert_close(both.scale[:, 0], torch.tensor([2.0, 2.0, 3.0]))  # b converted, not reinterpreted
    assert len(both[1:]) == 2 and len(both[0]) == 1
    torch.testing.assert_close(both[torch.tensor([2, 0])].scale[:, 0], torch.tensor([3.0, 2.0]))
    d = both.to(torch.float64)
    assert d.dtype == torch.float64 and d.convention == both.convention
    g = Theta(a.r.clone().requires_grad_(True), a.t, a.logs, a.alpha, a.convention)
    assert not g.detach().r.requires_grad


def test_layout_names_are_one_object_reexported_by_stn() -> None:
    for name in ("THETA_R", "THETA_T", "THETA_LOGS", "THETA_ALPHA", "split_theta", "make_theta", "theta_size"):
        assert getattr(stn_module, name) is getattr(theta_module, name)


@pytest.fixture(scope="module")
def model():
    return toy_grid_model(G, n_components=3)


def _theta(model) -> torch.Tensor:
    th = frontal_theta(model, 2, logs=0.0)
    th[:, 0:3] = torch.tensor([[0.1, 0.3, -0.05], [-0.2, -0.4, 0.1]], dtype=torch.float64)
    th[:, 5] = torch.tensor([-0.3, 0.2], dtype=torch.float64)  # exp base: s ≈ 0.74 and 1.22
    th[:, 6:] = 0.5
    return th


def test_stn_converts_a_theta_of_the_other_base(model) -> None:
    x = _theta(model)
    faithful = STN3DMM(model, STNConfig.faithful(grid_size=G))  # s = 0.99^logs
    paper = STN3DMM(model, STNConfig.paper(grid_size=G))  # s = exp(logs)
    th_exp = Theta.from_tensor(x, "exp")
    img = torch.rand(2, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    converted = faithful.generator(th_exp.with_scale_base("0.99").tensor())
    direct = faithful.generator(th_exp)
    torch.testing.assert_close(direct.grid, converted.grid)
    torch.testing.assert_close(direct.scale, th_exp.scale)
    # a plain tensor is read with the STN's own base: the same numbers give another scale
    assert not torch.allclose(faithful.generator(x).scale, th_exp.scale)
    # and the paper STN, whose base matches, sees the same scale as the faithful one given the Theta
    torch.testing.assert_close(paper.generator(th_exp).scale, direct.scale)
    converted_tensor = th_exp.as_tensor_for(faithful.config)
    torch.testing.assert_close(faithful(img, th_exp).flattened, faithful(img, converted_tensor).flattened)


def test_localiser_theta_makes_a_matching_stn(model) -> None:
    torch.manual_seed(0)
    head = ThetaHead(8, model.n_components, logs0=0.2)
    loc = Localiser(SmallTrunk(input_size=32, widths=(4, 4, 4, 4, 8)), head, convention=STNConfig.paper())
    loc.double().eval()
    img = torch.rand(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        th = loc.predict(img)
        raw = loc(img)
    assert th.convention == ThetaConvention("exp")
    stn = loc.make_stn(model, STNConfig.faithful(grid_size=G))
    assert stn.config.scale_rate == pytest.approx(1.0) and stn.config.grid_size == G
    torch.testing.assert_close(stn.generator(raw).grid, stn.generator(th).grid)  # plain tensor read alike
    other = STN3DMM(model, STNConfig.faithful(grid_size=G))
    torch.testing.assert_close(other.generator(th).grid, stn.generator(raw).grid)  # Theta converted
    with pytest.raises(ValueError, match="convention"):
        Localiser(loc.trunk, loc.head).predict(img)


def test_truth_in_stn_frame_keeps_the_scale(model) -> None:
    x = _theta(model)
    stn = STN3DMM(model, STNConfig.faithful(grid_size=G))
    moved = truth_in_stn_frame(x, stn, truth_scale_rate=1.0)
    torch.testing.assert_close(stn.generator(moved).scale, torch.exp(x[:, 5:6]))
