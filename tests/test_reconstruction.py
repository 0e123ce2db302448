"""Spherical harmonics, the model-based texture/lighting fit and its rendering (mmstn.reconstruction)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mmstn.errors import ShapeError
from mmstn.reconstruction import fit_texture, render_reconstruction, sampling_operator
from mmstn.render import (
    SH_CONSTANTS,
    SH_IRRADIANCE_FACTORS,
    Lighting,
    lambert_sh,
    render_face,
    render_grid_colours,
    render_sh,
    sh_basis,
    sh_shading,
)
from mmstn.scores import photometric_error
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_LOGS, THETA_R, Theta, make_theta
from mmstn.uv import default_grid_model

C = SH_CONSTANTS
LIGHT = Lighting(ambient=0.45, diffuse=0.6, direction=(0.4, 0.3, 1.0))
GAIN = (1.05, 1.0, 0.92)
#: texture components of the default face (the ICT face's four colour modes)
K_TEX = 4


def _fibonacci_sphere(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (1.0 + math.sqrt(5.0)) * i
    r = torch.sqrt(1.0 - z * z)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], 1)


# ----------------------------------------------------------------------------------- spherical harmonics
def test_sh_constant_term_and_values_on_the_axes():
    n = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, -2.0]], dtype=torch.float64)
    Y = sh_basis(n)
    assert Y.shape == (4, 9)
    assert torch.allclose(Y[:, 0], torch.full((4,), 0.5 / math.sqrt(math.pi), dtype=torch.float64))
    c0, c1, c20, c22 = C["c0"], C["c1"], C["c20"], C["c22"]
    expected = torch.tensor([
        [c0, 0, 0, c1, 0, 0, -c20, 0, c22],  # +x
        [c0, c1, 0, 0, 0, 0, -c20, 0, -c22],  # +y
        [c0, 0, c1, 0, 0, 0, 2 * c20, 0, 0],  # +z
        [c0, 0, -c1, 0, 0, 0, 2 * c20, 0, 0],  # −z (normalised first)
    ], dtype=torch.float64)
    assert torch.allclose(Y, expected, atol=1e-12)
    assert C["c1"] == pytest.approx(0.488603, abs=1e-6)
    assert C["c2"] == pytest.approx(1.092548, abs=1e-6)


def test_sh_basis_is_orthonormal_on_the_sphere():
    n = _fibonacci_sphere(40_000)
    Y = sh_basis(n)
    gram = Y.T @ Y * (4.0 * math.pi / len(n))
    assert torch.allclose(gram, torch.eye(9, dtype=torch.float64), atol=2e-3)


def test_sh_basis_keeps_dtype_and_batch_shape():
    n = torch.randn(2, 5, 3)
    assert sh_basis(n).shape == (2, 5, 9)
    assert sh_basis(n).dtype == torch.float32


@pytest.mark.parametrize(
    ("normals", "error", "text"),
    [
        (torch.zeros(4, 2), ShapeError, "normals"),
        (torch.zeros(4, 3, dtype=torch.int64), ShapeError, "normals"),
        (torch.tensor([[0.0, float("nan"), 1.0]]), ValueError, "normals"),
    ],
)
def test_sh_basis_errors_name_the_argument(normals, error, text):
    with pytest.raises(error, match=text):
        sh_basis(normals)


def test_sh_shading_checks_coefficients():
    with pytest.raises(ShapeError, match="sh"):
        sh_shading(torch.randn(4, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="sh"):
        sh_shading(torch.randn(4, 3), torch.full((3, 9), float("nan")))


def test_lambert_sh_approximates_the_clamped_cosine():
    n = _fibonacci_sphere(20_000)
    sh = lambert_sh(LIGHT, GAIN)
    approx = sh_shading(n, sh)
    d = torch.tensor(LIGHT.direction, dtype=torch.float64)
    d = d / d.norm()
    exact = (LIGHT.ambient + LIGHT.diffuse * (n @ d).clamp_min(0))[:, None] * torch.tensor(GAIN, dtype=torch.float64)
    # order-2 truncation: at most 0.09375 · diffuse (at n ⟂ d) away, and exact on average (l = 0 is exact)
    assert float((approx - exact).abs().max()) <= 0.0938 * LIGHT.diffuse * max(GAIN) + 1e-9
    assert torch.allclose(approx.mean(0), exact.mean(0), atol=1e-3)
    assert SH_IRRADIANCE_FACTORS[0] == pytest.approx(math.pi)


# ------------------------------------------------------------------------------------------ the fit
@pytest.fixture(scope="module")
def setup():
    g = default_grid_model(112)
    assert g.texture_basis.shape[0] == K_TEX
    stn = STN3DMM(g, STNConfig.paper(grid_size=112))
    r = torch.tensor([[math.radians(-5.0), math.radians(20.0), 0.0]])
    alpha = torch.tensor([[0.5, -0.8, 0.3, 0.0, 0.2, 0.4, 0.0, -0.3, 0.0, 0.1]])
    theta = make_theta(r, torch.full((1, 2), 112.5), torch.tensor([math.log(0.67)]), alpha)[0]
    beta = torch.tensor(np.random.default_rng(0).standard_normal(K_TEX), dtype=torch.float32)
    sh = lambert_sh(LIGHT, GAIN)
    face = render_sh(g, theta, sh, g.albedo(beta), background=torch.full((3, 224, 224), 0.3))
    return g, stn, theta, beta, sh, face


def test_render_sh_agrees_with_render_face(setup):
    g, _, theta, _, _, _ = setup
    model = g  # any morphable model; the grid model is one
    ref = render_face(model, theta, lighting=LIGHT)
    ours = render_sh(model, theta, lambert_sh(LIGHT))
    assert np.array_equal(ref.mask, ours.mask)
    diff = (ref.image - ours.image).abs()[:, torch.from_numpy(ref.mask)]
    assert float(diff.mean()) < 0.02  # only the order-2 truncation of the clamped cosine differs
    assert float(diff.max()) <= 0.0938 * LIGHT.diffuse + 1e-3


def test_fit_recovers_known_texture_and_lighting(setup):
    g, stn, theta, beta, sh, face = setup
    fit = fit_texture(stn, face.image, theta, model=g)
    rel_beta = float((fit.beta - beta).norm() / beta.norm())
    rel_sh = float((fit.sh - sh.float()).norm() / sh.norm())
    assert rel_beta < 0.05, rel_beta
    assert rel_sh < 0.05, rel_sh
    assert fit.rmse < 1e-3
    assert fit.beta.shape == (K_TEX,) and fit.sh.shape == (3, 9)
    for name in ("albedo_grid", "shading_grid", "reconstruction_grid", "target"):
        assert getattr(fit, name).shape == (3, 112, 112), name
    assert fit.mask.shape == (1, 112, 112) and fit.mask.sum() > 3000
    assert all(b <= a for a, b in itertools.pairwise(fit.history))


def test_a_theta_in_another_convention_gives_the_same_fit(setup):
    """fit_texture and render_grid_colours take a Theta and convert it to the STN's scale base."""
    g, stn, theta, _, _, face = setup
    code = Theta.from_tensor(theta, "exp").with_scale_base("0.99")
    assert abs(float(code.logs) - float(theta[THETA_LOGS])) > 1.0  # the raw logs column would be read wrongly
    a = fit_texture(stn, face.image, theta, model=g, max_iter=3)
    b = fit_texture(stn, face.image, code, model=g, max_iter=3)
    torch.testing.assert_close(a.beta, b.beta, atol=1e-5, rtol=0)
    ra = render_grid_colours(stn, theta, a.reconstruction_grid)
    rb = render_grid_colours(stn, code, a.reconstruction_grid)
    assert np.array_equal(ra.valid, rb.valid)
    torch.testing.assert_close(ra.image, rb.image, atol=1e-5, rtol=0)


def test_point_sampling_is_biased_at_sharp_albedo_edges(setup):
    g, stn, theta, beta, _, face = setup
    bilinear = fit_texture(stn, face.image, theta, model=g)
    point = fit_texture(stn, face.image, theta, model=g, sampling="point", exact_visibility=True)
    assert point.rmse > 10 * bilinear.rmse
    assert float((point.beta - beta).norm()) > float((bilinear.beta - beta).norm())


def test_photometric_error_falls_as_components_are_added(setup):
    """On the grid (what the fit minimises: the STN's samples of the input over the fitted cells) the error falls
    strictly with K; in the image it falls overall (cells and pixels weigh the face differently, so a step
    that helps the grid can cost a little in the image: here K = 1 and 2 are 0.2 % above K = 0)."""
    g, stn, theta, _, _, face = setup
    grid_errors, image_errors = [], []
    for k in range(K_TEX + 1):
        fit = fit_texture(stn, face.image, theta, k, model=g)
        rec = render_reconstruction(stn, fit, background=face.image)
        with torch.no_grad():
            flat = stn(rec.image[None], theta[None]).sampled[0]
        grid_errors.append(float(photometric_error(flat, fit.target, fit.mask)))
        pixels = torch.from_numpy(rec.valid & face.mask)[None]
        image_errors.append(float(photometric_error(rec.image, face.image, pixels)))
    assert all(b < a for a, b in itertools.pairwise(grid_errors)), grid_errors
    assert image_errors[0] > image_errors[3] > image_errors[4], image_errors
    assert grid_errors[-1] < 1e-3 and image_errors[-1] < 1e-3


def test_lighting_false_fits_a_colour_gain_only(setup):
    g, stn, theta, _, _, face = setup
    lit = fit_texture(stn, face.image, theta, model=g)
    flat = fit_texture(stn, face.image, theta, lighting=False, model=g)
    assert torch.all(flat.sh[:, 1:] == 0) and torch.all(flat.sh[:, 0] > 0)
    assert flat.rmse > 5 * lit.rmse
    assert not flat.lighting and lit.lighting


def test_render_grid_colours_is_what_the_sampling_operator_predicts(setup):
    g, stn, theta, _, _, _ = setup
    colours = g.albedo(torch.linspace(-1, 1, K_TEX))  # (N, 3)
    rendered = render_grid_colours(stn, theta, colours)
    with torch.no_grad():
        sampled = stn(rendered.image[None], theta[None]).sampled[0].reshape(3, -1).T.double()
    op = sampling_operator(stn, theta, 224)
    predicted = torch.from_numpy(op.matrix @ colours.double().numpy())
    clean = torch.from_numpy(op.clean)
    assert clean.sum() > 5000
    assert torch.allclose(sampled[clean], predicted[clean], atol=1e-5)  # float32 image


def test_fit_texture_errors_name_the_argument(setup):
    g, stn, theta, _, _, face = setup
    with pytest.raises(ShapeError, match="image"):
        fit_texture(stn, face.image[0], theta, model=g)
    with pytest.raises(ShapeError, match="theta"):
        fit_texture(stn, face.image, theta[THETA_R], model=g)  # r alone: too short
    with pytest.raises(ValueError, match="image"):
        fit_texture(stn, torch.full_like(face.image, float("nan")), theta, model=g)
    with pytest.raises(ValueError, match="theta"):
        fit_texture(stn, face.image, torch.full_like(theta, float("nan")), model=g)
    with pytest.raises(ValueError, match="n_components"):
        fit_texture(stn, face.image, theta, K_TEX + 1, model=g)
    with pytest.raises(ShapeError, match="mask"):
        fit_texture(stn, face.image, theta, model=g, mask=torch.ones(50, 50))
    with pytest.raises(ValueError, match="colour"):
        fit_texture(stn, face.image, theta, model=g.with_fields(colour=None, texture_basis=None))
    with pytest.raises(ValueError, match="model="):
        fit_texture(stn, face.image, theta, model=None)
    with pytest.raises(ValueError, match="sampling"):
        fit_texture(stn, face.image, theta, model=g, sampling="nearest")
    with pytest.raises(ValueError, match=r"visible|usable"):
        fit_texture(stn, face.image, theta, model=g, mask=torch.zeros(112, 112))
    with pytest.raises(ShapeError, match="colours"):
        render_grid_colours(stn, theta, torch.zeros(3, 50, 50))


# ------------------------------------------------------------------------------------------ figures, widget
def test_reconstruction_explorer_redraws_on_the_first_slider(setup):
    import ipywidgets as widgets
    import matplotlib

    matplotlib.use("Agg")
    from mmstn.viz.recon_widgets import reconstruction_explorer

    g, stn, theta, _, _, face = setup
    ex = reconstruction_explorer(stn, g, face.image, theta, n_components=2)
    first = ex.widget.children[0].children[0]
    assert isinstance(first, widgets.IntSlider) and first is ex.components
    assert (first.min, first.max, first.value) == (0, K_TEX, 2)
    before, renders = ex.image_widget.value, ex.renders
    first.value = 3  # what ArrowRight does in the browser
    assert ex.renders == renders + 1 and ex.image_widget.value != before
    assert ex.last.fit.n_components == 3 and "K = 3" in ex.status.value
    ex.lighting.value = False
    assert not ex.last.fit.lighting and "colour gain" in ex.status.value
    ex.lighting.value = True
    first.value = K_TEX
    assert ex.last.image_rmse < 0.01  # the full basis explains this in-span face


def test_recon_figures_draw(setup):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmstn.comparison import compare_methods
    from mmstn.scores import radial_power_spectrum
    from mmstn.viz import recon_figures as rf

    g, stn, theta, beta, sh, face = setup
    comp = compare_methods(stn, g, face.image[None], theta[None])
    figs = [
        rf.fig_sh_basis(size=32),
        rf.fig_fit_recovery(beta, {"fit": comp.fits[0].beta}, sh.float(), {"fit": comp.fits[0].sh}),
        rf.fig_resampling_vs_reconstruction(comp, [0], truth=comp.stn_output),
        rf.fig_detail_layers({"a": comp.stn_output[0], "b": comp.reconstruction[0]}, comp.mask[0],
                             zoom=rf.DEFAULT_ZOOM),
        rf.fig_retained_detail([0, 5], {"energy": [0.1, 0.2]}, {"energy": 0.8},
                               {"x": radial_power_spectrum(comp.stn_output, comp.mask)}, cutoff=0.125),
    ]
    assert len(figs[2].axes) == 7
    for f in figs:
        plt.close(f)
