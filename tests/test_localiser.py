"""The localiser: θ-layer initialisation, trunks, and VGG-Face weight loading from both file formats."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from mmstn.errors import ModelFileError, ShapeError
from mmstn.localiser import Localiser, SmallTrunk, ThetaHead, VGGFaceTrunk, load_vgg_face_weights
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T


def test_theta_head_initialises_a_frontal_centred_face() -> None:
    torch.manual_seed(0)
    head = ThetaHead(256, n_alpha=10, centre=(112.0, 112.0), logs0=-20.0)
    theta = head(torch.randn(64, 256).abs())
    assert theta.shape == (64, 16)
    assert theta[:, THETA_R].abs().max() < 1e-2  # r ≈ 0: frontal
    torch.testing.assert_close(theta[:, THETA_T], torch.full((64, 2), 112.0), atol=1e-2, rtol=0)
    torch.testing.assert_close(theta[:, THETA_LOGS], torch.full((64, 1), -20.0), atol=1e-2, rtol=0)
    assert theta[:, THETA_ALPHA].abs().max() < 1e-2  # α ≈ 0: the mean face
    # The authors' weight scale: xavier std sqrt(2/fan_in) times 0.001.
    assert head.linear.weight.std().item() == pytest.approx(np.sqrt(2 / 256) * 1e-3, rel=0.05)


def test_parameter_groups_carry_the_authors_multipliers() -> None:
    model = Localiser(SmallTrunk(widths=(4, 4, 4, 4, 8)), ThetaHead(8, 10))
    groups = model.parameter_groups(lr=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.1, 0.4, 0.8])
    assert groups[2]["weight_decay"] == 0.0
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def test_small_trunk_shapes_and_errors() -> None:
    trunk = SmallTrunk(input_size=64, widths=(4, 4, 4, 4, 8))
    assert trunk(torch.rand(2, 3, 224, 224)).shape == (2, 8)
    with pytest.raises(ShapeError, match="image must have shape"):
        trunk(torch.rand(3, 224, 224))


def _tiny_vgg_state(trunk: VGGFaceTrunk, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in trunk.convs.state_dict().items()}


def test_vgg_weights_from_pth_with_linear_fc_layers(tmp_path) -> None:
    trunk = VGGFaceTrunk(width_divisor=32)
    state = _tiny_vgg_state(trunk)
    saved = dict(state)
    saved["fc6.weight"] = state["fc6.weight"].reshape(state["fc6.weight"].shape[0], -1)  # Linear layout
    saved["fc7.weight"] = state["fc7.weight"].reshape(state["fc7.weight"].shape[0], -1)
    saved["fc8.weight"] = torch.zeros(2622, 128)  # ignored
    path = tmp_path / "vgg_face_dag.pth"
    torch.save(saved, path)
    load_vgg_face_weights(trunk, path)
    for k, v in state.items():
        torch.testing.assert_close(trunk.convs.state_dict()[k], v)


def test_vgg_weights_from_matconvnet_dagnn_mat(tmp_path) -> None:
    trunk = VGGFaceTrunk(width_divisor=32)
    state = _tiny_vgg_state(trunk, seed=1)
    records = []
    for k, v in state.items():
        layer, kind = k.split(".")
        value = v.numpy()
        if kind == "weight":  # MatConvNet stores H × W × C_in × C_out
            value = value.transpose(2, 3, 1, 0)
        records.append((layer + ("f" if kind == "weight" else "b"), value))
    params = np.empty(len(records), dtype=[("name", object), ("value", object)])
    for i, (name, value) in enumerate(records):
        params[i] = (name, value)
    path = tmp_path / "vgg-face.mat"
    scipy.io.savemat(path, {"params": params})
    load_vgg_face_weights(trunk, path)
    for k, v in state.items():
        torch.testing.assert_close(trunk.convs.state_dict()[k], v)


def test_vgg_weight_errors_name_the_file_and_tensor(tmp_path) -> None:
    trunk = VGGFaceTrunk(width_divisor=32)
    with pytest.raises(ModelFileError, match="no such file"):
        load_vgg_face_weights(trunk, tmp_path / "missing.pth")
    state = _tiny_vgg_state(trunk)
    state["conv3_1.weight"] = torch.zeros(3, 3, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelFileError, match=r"bad\.pth.*conv3_1\.weight"):
        load_vgg_face_weights(trunk, bad)
    del state["conv3_1.weight"]
    torch.save(state, bad)
    with pytest.raises(ModelFileError, match=r"missing tensor 'conv3_1\.weight'"):
        load_vgg_face_weights(trunk, bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match=r"garbage\.pth"):
        load_vgg_face_weights(trunk, garbage)


def test_vgg_trunk_feature_size_and_input_check() -> None:
    trunk = VGGFaceTrunk(width_divisor=64)
    assert trunk(torch.rand(1, 3, 224, 224)).shape == (1, 64)
    with pytest.raises(ShapeError, match="224"):
        trunk(torch.rand(1, 3, 112, 112))
