"""Training under bad inputs and faults (issue 15, part 2): checkpoint integrity, one run per folder,
validation of every TrainConfig field, the CLI's recipe check, and interrupts that lose nothing.

Every run is a tiny CPU configuration (G = 32, a 32 px trunk, batches of 4), a second or two each.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_configs import tiny_config

from mmstn.train import (
    CheckpointError,
    RunFolderError,
    RunLock,
    TrainConfig,
    load_pretrained,
    load_training_checkpoint,
    load_weights,
    read_metrics,
    train,
)
from mmstn.train.__main__ import main as cli_main
from mmstn.train.checkpoint import content_digest, file_sha256, save_weights, write_sidecar

TERMS = ("loss", "landmark", "prior", "siamese", "symmetry")
SHIPPED = Path(__file__).resolve().parents[1] / "mmstn" / "checkpoints" / "photo_small.pt"


def tiny(**changes) -> TrainConfig:
    """A config that trains in a fraction of a second per step (4 steps, a checkpoint every 2)."""
    return tiny_config(**{"steps": 4, "checkpoint_interval": 2, **changes})


def _losses(run: Path) -> np.ndarray:
    return np.array([[r[k] for k in TERMS] for r in read_metrics(run / "metrics.csv")])


def _flip_tensor_bytes(path: Path, key: str) -> None:
    """Overwrite some stored bytes of tensor ``key`` inside a torch zip file (the file stays the same size)."""
    obj = torch.load(path, weights_only=True)
    raw = obj["model"][key].contiguous().numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0, "the tensor's bytes must appear once"
    for i in range(at, at + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------ integrity
def test_altered_weight_bytes_in_a_checkpoint_stop_the_resume(tmp_path) -> None:
    cfg = tiny()
    run = tmp_path / "run"
    train(cfg, run, stop_after=2)
    ckpt = run / "checkpoint.pt"
    _flip_tensor_bytes(ckpt, "head.linear.weight")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: .*altered or damaged.*Delete it and resume"):
        train(cfg, run)
    assert not (run / "weights.pt").exists()  # nothing of the damaged state was written on


def test_a_consistent_archive_with_altered_values_fails_its_sha256(tmp_path) -> None:
    """Values changed and re-saved (valid zip CRCs) but not re-digested: the embedded SHA-256 catches it."""
    cfg = tiny()
    train(cfg, tmp_path / "run", stop_after=2)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    obj = torch.load(ckpt, weights_only=True)
    assert obj["sha256"] == content_digest(obj)
    obj["model"]["head.linear.weight"][0, 0] += 1e-3
    torch.save(obj, ckpt)
    with pytest.raises(CheckpointError, match=r"content does not match its recorded SHA-256"):
        load_training_checkpoint(ckpt, cfg)
    obj["config"]["lr"] = 0.1  # a changed number outside the tensors is caught as well
    obj["model"]["head.linear.weight"][0, 0] -= 1e-3
    torch.save(obj, ckpt)
    with pytest.raises(CheckpointError, match=r"recorded SHA-256"):
        load_weights(ckpt)


def test_empty_truncated_and_folder_paths_give_clear_errors(tmp_path) -> None:
    cfg = tiny(steps=2)
    train(cfg, tmp_path / "run")
    good = (tmp_path / "run" / "weights.pt").read_bytes()
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt: is empty \(0 bytes\).*Delete it"):
        load_training_checkpoint(empty)
    for cut in (10, len(good) // 2, len(good) - 30):
        short = tmp_path / f"short{cut}.pt"
        short.write_bytes(good[:cut])
        with pytest.raises(CheckpointError, match=rf"short{cut}\.pt: .*(truncated|corrupt|damaged)") as info:
            load_weights(short)
        assert "IndexError" not in str(info.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_weights(tmp_path / "run")
    # a 0-byte checkpoint in a run folder stops the resume with the same message
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: is empty"):
        train(cfg, tmp_path / "run")


def test_shipped_weights_carry_a_matching_sidecar_and_a_wrong_one_is_refused(tmp_path) -> None:
    side = SHIPPED.with_name(SHIPPED.name + ".sha256")
    digest, name = side.read_text().split()
    assert name == SHIPPED.name and digest == file_sha256(SHIPPED)
    load_pretrained("photo_small")
    copy = tmp_path / "photo_small.pt"
    shutil.copyfile(SHIPPED, copy)
    shutil.copyfile(side, tmp_path / side.name)
    load_weights(copy)
    (tmp_path / side.name).write_text("0" * 64 + "  photo_small.pt\n")
    with pytest.raises(CheckpointError, match=r"photo_small\.pt: its bytes do not match their recorded SHA-256"):
        load_weights(copy)
    write_sidecar(copy)
    _flip_tensor_bytes(copy, "head.linear.weight")
    with pytest.raises(CheckpointError, match="altered or damaged"):
        load_weights(copy)


def test_writes_are_atomic_with_unique_temporary_files(tmp_path, monkeypatch) -> None:
    from mmstn.runtime import temporary_name
    from mmstn.train import checkpoint as ck

    cfg = tiny(steps=1)
    result = train(cfg, tmp_path / "run")
    target = tmp_path / "run" / "weights.pt"
    before = target.read_bytes()
    assert temporary_name(target) != temporary_name(target) and str(os.getpid()) in temporary_name(target).name

    def broken_save(obj, fh):
        fh.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_weights(target, result.localiser, cfg)
    assert target.read_bytes() == before  # the old file is intact
    assert not list((tmp_path / "run").glob("*.tmp"))  # and no temporary file is left behind


# ------------------------------------------------------------------------------------------ one run per folder
def test_a_live_lock_keeps_a_second_run_out_and_a_dead_one_is_taken_over(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):
        with pytest.raises(RunFolderError, match=rf"another run is training in this folder \(pid {os.getpid()}"):
            train(tiny(), run)
        with pytest.raises(RunFolderError, match="use another --out"):
            RunLock(run).acquire()
    assert not (run / "run.lock").exists()
    assert not (run / "config.json").exists()  # the refused run wrote nothing
    # a killed run's lock (same host, dead pid) does not block forever
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import json
    import socket

    (run / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    result = train(tiny(steps=1), run)
    assert result.step == 1 and not (run / "run.lock").exists()


def test_resuming_with_another_config_names_the_fields(tmp_path) -> None:
    cfg = tiny()
    run = tmp_path / "run"
    train(cfg, run, stop_after=2)
    with pytest.raises(CheckpointError, match=r"differing fields: lr: 0\.003 → 0\.01.*same config.*new --out"):
        train(cfg.replace(lr=0.01), run)
    # without a checkpoint the folder's config.json still identifies the run
    (run / "checkpoint.pt").unlink()
    with pytest.raises(RunFolderError, match=r"differing fields: weight_decay: 0\.0001 → 0\.0.*new --out"):
        train(cfg.replace(weight_decay=0.0), run)
    assert TrainConfig.from_json(run / "config.json") == cfg  # the refused run did not overwrite it
    # fields that do not change the computation may differ; --restart starts afresh with the new config
    train(cfg.replace(log_interval=2), run, resume=True)
    train(cfg.replace(lr=0.01), run, resume=False)
    assert TrainConfig.from_json(run / "config.json").lr == 0.01


# ------------------------------------------------------------------------------------------ config validation
@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"grad_clip": -1.0}, r"grad_clip=-1\.0: .*\(0, inf\)"),
        ({"grad_clip": 0.0}, r"grad_clip=0\.0: .*\(0, inf\)"),
        ({"grad_clip": float("nan")}, r"grad_clip=nan"),
        ({"final_lr_fraction": -1.0}, r"final_lr_fraction=-1\.0: .*\[0, 1\]"),
        ({"final_lr_fraction": 1.5}, r"final_lr_fraction=1\.5: .*\[0, 1\]"),
        ({"weight_decay": -1e-4}, r"weight_decay=-0\.0001: .*\[0, inf\)"),
        ({"weights": {"landmark": 1.0, "prior": -0.1}}, r"weights\.prior=-0\.1: .*>= 0"),
        ({"weights": {"landmark": float("inf")}}, r"weights\.landmark=inf"),
        ({"weights": {"landmarks": 1.0}}, r"weights=.*landmark, prior, siamese and symmetry"),
        ({"momentum": 1.0}, r"momentum=1\.0: .*\[0, 1\)"),
        ({"momentum": -0.5}, r"momentum=-0\.5"),
        ({"init_scale": 0.0}, r"init_scale=0\.0: .*\(0, inf\)"),
        ({"init_scale": -2.0}, r"init_scale=-2\.0"),
        ({"lr": 0.0}, r"lr=0\.0: .*\(0, inf\)"),
        ({"normaliser": float("inf")}, r"normaliser=inf"),
        ({"head_weight_mult": -4.0}, r"head_weight_mult=-4\.0"),
        ({"batch_size": 0}, r"batch_size=0: must be an integer >= 1"),
        ({"steps": 2.5}, r"steps=2\.5: must be an integer"),
        ({"steps": -1}, r"steps=-1: must be an integer >= 0"),
        ({"log_interval": 0}, r"log_interval=0"),
        ({"trunk_widths": (4, 8, 0, 16, 16)}, r"trunk_widths=.*five positive"),
        ({"recipe": "author"}, r"recipe='author': use one of \('authors', 'recommended'\)"),
        ({"optimizer": "adam"}, r"optimizer='adam': use one of \('sgd', 'adamw'\)"),
        ({"device": "gpu"}, r"device='gpu'"),
        ({"mirror": "yes"}, r"mirror='yes': must be True or False"),
    ],
)
def test_every_bad_field_is_refused_at_construction(changes, pattern) -> None:
    with pytest.raises(ValueError, match=r"TrainConfig\." + pattern):
        tiny(**changes)


def test_good_edge_values_and_the_shipped_config_are_accepted() -> None:
    cfg = tiny(grad_clip=1.0, final_lr_fraction=0.0, weight_decay=0.0, momentum=0.0, init_scale=0.5,
               weights={"landmark": 1.0, "prior": 0.0, "siamese": 0.0, "symmetry": 0.0})
    assert cfg.grad_clip == 1.0 and cfg.weights.prior == 0.0
    TrainConfig.from_json(SHIPPED.with_suffix(".json"))
    TrainConfig.authors()


# ------------------------------------------------------------------------------------------ CLI
def test_cli_rejects_a_misspelt_recipe_and_lists_the_valid_ones(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["--recipe", "author", "--out", str(tmp_path / "r"), "--print-config"])
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert "invalid choice: 'author'" in err and "'authors'" in err and "'recommended'" in err
    with pytest.raises(SystemExit):
        cli_main(["--schedule", "cosin", "--out", str(tmp_path / "r")])
    assert cli_main(["--grad-clip", "-1", "--out", str(tmp_path / "r"), "--print-config"]) == 2
    assert "grad_clip=-1.0" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "mmstn.train", "--recipe", "author", "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "'recommended'" in proc.stderr and not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------------------ interrupts
@pytest.mark.parametrize("how", ["raise", "sigint", "sigterm"])
def test_an_interrupt_between_steps_loses_no_step(tmp_path, how) -> None:
    cfg = tiny(steps=5, checkpoint_interval=100)  # no periodic checkpoint before the interrupt
    train(cfg, tmp_path / "a")
    # the handlers before the run (a background shell starts Python with SIGINT ignored, not default)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def stop(step, row):
        if step == 3:
            if how == "raise":
                raise KeyboardInterrupt("killed")
            os.kill(os.getpid(), signal.SIGINT if how == "sigint" else signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "b", callback=stop)
    assert load_training_checkpoint(tmp_path / "b" / "checkpoint.pt", cfg)["step"] == 3
    assert len(read_metrics(tmp_path / "b" / "metrics.csv")) == 3
    assert not (tmp_path / "b" / "run.lock").exists() and not list((tmp_path / "b").glob("*.tmp"))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    train(cfg, tmp_path / "b")
    np.testing.assert_allclose(_losses(tmp_path / "b"), _losses(tmp_path / "a"), rtol=1e-6, atol=1e-6)
