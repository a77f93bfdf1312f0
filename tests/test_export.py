"""``lfp_ref.load_run`` (a trained model without its dataset) and ``lfp-ref export RUN
--format npz|safetensors|torch``: each file loads back to the same parameters and the same
logits; the printed line is the one that loads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lfp_ref
from lfp_ref import checkpoint as ckpt
from lfp_ref.data import Dataset
from lfp_ref.train import ConfigError, TrainConfig, Trainer, fit

REPO_ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("lfp-ref")
LFP_REF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "lfp_ref.cli"]
TIMEOUT = 120


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


def lfp_ref_cli(*args, **kwargs):
    return subprocess.run(
        [*LFP_REF, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=kwargs.pop("cwd", REPO_ROOT),
        **kwargs,
    )


def images(n_train=24, n_test=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, classes, n_train + n_test)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes, "images", "fixture")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished toy run on the swirls (a named dataset: the CLI can rebuild it)."""
    out = tmp_path_factory.mktemp("runs") / "toy"
    config = TrainConfig(model="toy", data="swirls", epochs=2, batch_size=32, lr=0.02,
                         keep_checkpoints=True)  # fmt: skip
    trainer = fit(config, out=out, **quiet())
    return out, trainer


def test_load_run_returns_the_trained_model_without_the_dataset(toy_run, monkeypatch):
    out, trainer = toy_run
    from lfp_ref.train import trainer as trainer_module

    def no_data(*args, **kwargs):
        raise AssertionError("load_run must not load the dataset")

    monkeypatch.setattr(trainer_module, "load_data", no_data)
    run = lfp_ref.load_run(out)
    assert run.config == trainer.config and (run.epoch, run.batch, run.step) == (2, 0, 76)
    assert run.checkpoint == out / "last.npz" and not run.model.training
    for name, value in trainer.model.state_dict().items():
        assert run.model.state_dict()[name].tobytes() == value.tobytes(), name
    x = trainer.x_test[:16]
    trainer.model.eval()
    np.testing.assert_array_equal(run.model(x), trainer.model(x))
    model, config, *_ = lfp_ref.load_run(out, checkpoint="epoch-001.npz")  # relative to the run
    assert config == trainer.config
    first = ckpt.load(out / "epoch-001.npz")
    assert model.state_dict()["0.weight"].tobytes() == first["model/0.weight"].tobytes()


def test_load_run_rebuilds_a_dropout_model_in_eval_mode(tmp_path):
    config = TrainConfig(model="lenet", data="images", epochs=1, batch_size=8)
    trainer = fit(config, data=images(), out=tmp_path, **quiet())
    run = lfp_ref.load_run(tmp_path)
    trainer.model.eval()
    x = trainer.x_test
    np.testing.assert_array_equal(run.model(x), run.model(x))  # no dropout
    np.testing.assert_array_equal(run.model(x), trainer.model(x))


def test_load_run_names_what_is_missing(tmp_path, toy_run):
    with pytest.raises(ConfigError, match="is not a run folder"):
        lfp_ref.load_run(tmp_path)
    out, _ = toy_run
    old = tmp_path / "old"
    old.mkdir()
    saved = json.loads((out / "config.json").read_text())
    del saved["info"]["input_shape"]
    (old / "config.json").write_text(json.dumps(saved))
    (old / "last.npz").write_bytes((out / "last.npz").read_bytes())
    with pytest.raises(ConfigError, match="does not record the data's num_classes and input_shape"):
        lfp_ref.load_run(old)
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint at"):
        lfp_ref.load_run(out, checkpoint="epoch-009.npz")


def _state(trainer):
    return trainer.model.state_dict()


def test_export_npz(toy_run, tmp_path):
    out, trainer = toy_run
    target = tmp_path / "toy.npz"
    result = lfp_ref_cli("export", out, "--format", "npz", "--out", target)
    assert result.returncode == 0, result.stderr
    assert f"wrote {target}" in result.stdout and "np.savez" in result.stdout
    assert f"state = dict(np.load({str(target)!r}))" in result.stdout
    state = dict(np.load(target))
    assert sorted(state) == sorted(_state(trainer))
    model = lfp_ref.load_run(out).model
    model.load_state_dict(state)
    for name, value in _state(trainer).items():
        assert state[name].tobytes() == value.tobytes() and state[name].dtype == value.dtype
    again = lfp_ref_cli("export", out, "--format", "npz", "--out", target)
    assert again.returncode == 2 and "exists; add --overwrite" in again.stderr
    assert lfp_ref_cli("export", out, "--out", target, "--overwrite").returncode == 0


def test_export_safetensors(toy_run):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="needs safetensors")
    out, trainer = toy_run
    result = lfp_ref_cli("export", out, "--format", "safetensors")
    assert result.returncode == 0, result.stderr
    target = out / "model.safetensors"
    assert f"state = load_file({str(target)!r})" in result.stdout
    state = safetensors_numpy.load_file(str(target))
    for name, value in _state(trainer).items():
        assert state[name].tobytes() == value.tobytes(), name
    from safetensors import safe_open

    with safe_open(str(target), framework="np") as file:
        metadata = file.metadata()
    assert TrainConfig.from_dict(json.loads(metadata["lfp_ref_config"])) == trainer.config


def test_export_torch_module(toy_run):
    torch = pytest.importorskip("torch", reason="needs torch (the crosscheck extra)")
    out, trainer = toy_run
    result = lfp_ref_cli("export", out, "--format", "torch")
    assert result.returncode == 0, result.stderr
    target = out / "model.pt"
    line = f"model = torch.load({str(target)!r}, weights_only=False)"
    assert line in result.stdout and "torch.save" in result.stdout
    module = torch.load(str(target), weights_only=False)  # the printed line
    assert not module.training
    x = trainer.x_test[:10]
    trainer.model.eval()
    with torch.no_grad():
        logits = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, trainer.model(x), rtol=1e-5, atol=1e-6)
    for name, tensor in module.state_dict().items():
        assert tensor.numpy().tobytes() == _state(trainer)[name].tobytes(), name


def test_export_of_a_user_factory_model(tmp_path):
    (tmp_path / "exportmodels.py").write_text(
        "import lfp_ref as lfp\n"
        "def build(num_classes, input_shape, seed, dtype, hidden=5):\n"
        "    first = lfp.Dense(input_shape[0], hidden, rng=seed, dtype=dtype)\n"
        "    last = lfp.Dense(hidden, num_classes, rng=seed, dtype=dtype)\n"
        "    return lfp.Sequential(first, lfp.ReLU(), last)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        config = TrainConfig(model="exportmodels:build", data="blobs", epochs=1,
                             model_options={"hidden": 7})  # fmt: skip
        trainer = Trainer(config, out=tmp_path / "run", **quiet())
        trainer.run()
        run = lfp_ref.load_run(tmp_path / "run")
        assert run.model[0].weight.shape == (7, 2)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("exportmodels", None)
    result = lfp_ref_cli("export", tmp_path / "run", cwd=tmp_path)  # imported from the cwd
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "run" / "model.npz")["0.weight"].shape == (7, 2)
