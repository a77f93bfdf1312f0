"""Training spiking networks (issue "Spiking networks", phase 2): the trainer reads a spiking
model's output (T, B, C) through the output protocol of lfp_ref.train.outputs (accuracy from the
spike counts, the rate-coded cross-entropy as the loss, the rate-coded reward as the default), the
"surrogate" method (surrogate-gradient BPTT), bit-identical resume, ``lfp-ref train --timesteps``,
the per-step LFP accounts of a LIF layer, ``lfp-ref verify --snn`` and the figure's smoke mode."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import engine, losses, methods, optim, zoo
from lfp_ref.data import Dataset
from lfp_ref.snn import LIF, SpikingSequential, predict
from lfp_ref.train import ConfigError, TrainConfig, Trainer, evaluate, fit, outputs, read_csv
from lfp_ref.verify import theory
from tests.test_snn import _build

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("lfp-ref")
LFP_REF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "lfp_ref.cli"]

#: a small spiking MLP on 8x8 images: the zoo's snn-mlp with 24 hidden units, T = 5
SMALL = dict(model="snn-mlp", widths=(24,), model_options={"timesteps": 5}, batch_size=16)


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


def image_data(n_train=64, n_test=32, classes=4, seed=0):
    """Random 1x8x8 images whose class sets the brightness of one quadrant: learnable in a few
    steps, tiny enough for seconds."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n_train + n_test)
    x = rng.random((n_train + n_test, 1, 8, 8), dtype=np.float32) * 0.3
    for k in range(classes):
        rows, cols = divmod(k, 2)
        x[y == k, :, rows * 4 : rows * 4 + 4, cols * 4 : cols * 4 + 4] += 0.7
    return Dataset(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes, "images", "test fixture"
    )


def _config(**changes):
    return TrainConfig(**{**SMALL, "data": "images", "epochs": 2, "lr": 0.02, **changes})


# --------------------------------------------------------------------------------------------
# the output protocol


def test_protocol_defaults_are_the_logits_and_the_cross_entropy():
    model = zoo.build("toy", num_classes=3, input_shape=(2,))
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]], np.float32)
    y = np.array([1, 2])
    assert outputs.class_scores(model, logits) is logits
    assert outputs.correct(model, logits, y) == 1
    assert outputs.loss_name(model) == "cross_entropy"
    assert outputs.output_loss(model, logits, y) == losses.cross_entropy(logits, y, "sum")[0]
    assert outputs.default_reward(model) == "softmax_loss"


def test_a_spiking_network_answers_with_spike_counts_and_the_rate_coded_loss():
    net = zoo.build("snn-mlp", num_classes=3, input_shape=(6,), widths=(5,), timesteps=4)
    spikes = np.zeros((4, 2, 3), np.float32)
    spikes[:, 0, 2] = 1  # sample 0: class 2 fires at every step
    spikes[:2, 1, 0] = 1  # sample 1: class 0 twice, class 1 three times
    spikes[1:, 1, 1] = 1
    np.testing.assert_array_equal(outputs.class_scores(net, spikes), [[0, 0, 4], [2, 3, 0]])
    np.testing.assert_array_equal(outputs.predictions(net, spikes), predict(spikes))
    assert outputs.correct(net, spikes, np.array([2, 0])) == 1
    assert outputs.loss_name(net) == "snn_ce_rate" and net.output_loss == "snn_ce_rate"
    y = np.array([2, 1])
    assert outputs.output_loss(net, spikes, y) == losses.snn_ce_rate(spikes, y, "sum")[0]
    assert outputs.default_reward(net) == "snn_rate_coded"


def test_evaluate_takes_the_argmax_of_the_spike_counts():
    data = image_data()
    net = zoo.build("snn-mlp", num_classes=4, input_shape=(1, 8, 8), widths=(24,), timesteps=5)
    acc, loss = evaluate(net, data.x_test, data.y_test, batch_size=10)  # four batches
    spikes = net(data.x_test)
    assert acc == np.mean(predict(spikes) == data.y_test)
    assert loss == pytest.approx(losses.snn_ce_rate(spikes, data.y_test, "mean")[0], rel=1e-12)


# --------------------------------------------------------------------------------------------
# training with lfp and surrogate


@pytest.mark.parametrize("method", ["lfp", "surrogate"])
def test_a_spiking_network_trains_and_logs_from_the_spike_counts(tmp_path, method):
    data = image_data(n_train=96)
    config = _config(method=method, epochs=3, lr=0.1, model_options={"timesteps": 8})
    trainer = fit(config, data=data, out=tmp_path, **quiet())
    assert trainer.config.reward == "snn_rate_coded"  # the model's default, resolved
    saved = json.loads((tmp_path / "config.json").read_text())["config"]
    assert saved["reward"] == "snn_rate_coded" and saved["model_options"] == {"timesteps": 8}
    last = trainer.history[-1]
    spikes = trainer.model(trainer.x_test)
    assert spikes.shape == (8, len(data.y_test), 4)
    assert last["test_acc"] == np.mean(predict(spikes) == data.y_test)
    ce = losses.snn_ce_rate(spikes, data.y_test, "mean")[0]
    assert last["test_loss"] == pytest.approx(ce, rel=1e-12)
    assert last["test_acc"] > 0.7, trainer.history  # chance is 0.25 (measured: 0.78-1.0)
    for row in read_csv(tmp_path / "steps.csv"):
        assert 0 <= row["acc"] <= 1 and row["loss"] > 0


def test_the_logged_step_values_are_the_rate_coded_loss_reward_and_count_accuracy(tmp_path):
    data = image_data(n_train=16)
    config = _config(epochs=1, reward="snn_rate_coded_mean")
    net = Trainer(config, data=data, **quiet()).model
    before = copy.deepcopy(net)
    trainer = fit(config, data=data, out=tmp_path, **quiet())
    (row,) = read_csv(tmp_path / "steps.csv")  # one batch holds the whole training set
    order = np.random.default_rng([config.seed, 0]).permutation(16)  # lfp_ref.data.batches
    x, y = trainer.x_train[order], trainer.y_train[order]
    spikes = before(x)
    assert row["acc"] == np.mean(predict(spikes) == y)
    assert row["loss"] == losses.snn_ce_rate(spikes, y, "sum")[0] / 16
    reward = lfp.rewards.snn_rate_coded(divide_by_t=True)(spikes, y)
    assert row["reward"] == float(reward.sum(dtype=np.float64)) / 16


def test_both_methods_start_from_the_same_weights_and_an_explicit_reward_is_kept():
    data = image_data()
    lfp_run = Trainer(_config(reward="snn_rate_coded_mean"), data=data, **quiet())
    bptt = Trainer(_config(method="surrogate"), data=data, **quiet())
    assert lfp_run.config.reward == "snn_rate_coded_mean"
    for key, value in lfp_run.model.state_dict().items():
        np.testing.assert_array_equal(value, bptt.model.state_dict()[key])


def test_a_non_spiking_model_keeps_softmax_loss_by_default():
    config = TrainConfig(model="toy", data="blobs", epochs=1)
    assert config.reward is None and config.validated().reward is None
    assert Trainer(config, **quiet()).config.reward == "softmax_loss"


def test_surrogate_step_is_gd_step_of_the_rate_coded_cross_entropy():
    data = image_data(n_train=16)
    config = _config(method="surrogate", epochs=1, batch_size=16, clip=0.5)
    trainer = Trainer(config, data=data, **quiet())
    twin = copy.deepcopy(trainer.model)
    twin_opt = optim.SGD(twin, lr=config.lr, momentum=config.momentum)
    x, y = trainer.x_train[:16], trainer.y_train[:16]
    result = trainer.method.step(trainer.model, trainer.optimizer, x, y)
    g = engine.gd_step(twin, twin_opt, x, y, loss="snn_ce_rate", reduction="mean", clip_norm=0.5)
    np.testing.assert_array_equal(result.logits, g.logits)
    np.testing.assert_array_equal(result.reward, lfp.rewards.snn_rate_coded()(g.logits, y))
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(trainer.model.state_dict()[key], value)


def test_surrogate_options_set_every_lif():
    data = image_data()
    trainer = Trainer(
        _config(method="surrogate", method_options={"surrogate": "heaviside"}), data=data, **quiet()
    )
    lifs = [layer for _, layer in trainer.model.named_layers() if isinstance(layer, LIF)]
    assert lifs and all(layer.surrogate == "heaviside" for layer in lifs)
    before = copy.deepcopy(trainer.model.state_dict())
    trainer.method.step(trainer.model, trainer.optimizer, trainer.x_train, trainer.y_train)
    for key, value in before.items():  # the true derivative of the spike: nothing is learned
        np.testing.assert_array_equal(trainer.model.state_dict()[key], value)
    trainer = Trainer(
        _config(method="surrogate", method_options={"alpha": 0.5}), data=data, **quiet()
    )
    lifs = [layer for _, layer in trainer.model.named_layers() if isinstance(layer, LIF)]
    assert all(layer.surrogate == "atan" and layer.alpha == 0.5 for layer in lifs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(model="toy", data="blobs", widths=None, model_options={}), "has none"),
        (dict(method_options={"surrogate": "sigmoid"}), "atan, heaviside"),
        (dict(method_options={"alpha": -1.0}), "alpha"),
        (dict(method_options={"beta": 0.5}), "no options"),
    ],
)
def test_surrogate_method_errors(change, message):
    data = None if change.get("data") == "blobs" else image_data()
    with pytest.raises(ConfigError, match=message):
        Trainer(_config(method="surrogate", **change), data=data, **quiet())


def test_gd_on_a_spiking_network_descends_its_output_loss_as_surrogate_bptt():
    # "gd" takes the model's output loss (the rate-coded cross-entropy of the spikes), so on a
    # spiking net it is the surrogate method with each LIF's own surrogate, step for step
    data = image_data(n_train=16)
    runs = [Trainer(_config(method=m, epochs=1), data=data, **quiet()) for m in ("gd", "surrogate")]
    x, y = runs[0].x_train[:16], runs[0].y_train[:16]
    results = [t.method.step(t.model, t.optimizer, x, y) for t in runs]
    np.testing.assert_array_equal(results[0].logits, results[1].logits)
    states = [t.model.state_dict() for t in runs]
    assert states[0] and all(np.array_equal(states[0][k], states[1][k]) for k in states[0])
    fresh = Trainer(_config(method="gd", epochs=1), data=data, **quiet()).model.state_dict()
    assert any(not np.array_equal(fresh[k], states[0][k]) for k in fresh)  # it did step


def test_feedback_alignment_refuses_a_spiking_network(tmp_path):
    with pytest.raises(ConfigError, match="snn_ce_rate.*'lfp', 'gd' or 'surrogate'"):
        fit(_config(method="fa"), data=image_data(), out=tmp_path, **quiet())


def test_lif_refuses_a_rule_it_would_ignore():
    with pytest.raises(ConfigError, match="ZPlus.*cannot apply to layer '1': 2 layer.*epsilon"):
        Trainer(_config(epochs=1, rule="zplus"), data=image_data(), **quiet())
    # a rule_for callable that hands the LIF a modified-weights rule is refused by the LIF
    net, x, y = _build("dense")
    with pytest.raises(ValueError, match="epsilon rule through its membrane.*ZPlus"):
        lfp.feedback(net, x, y, "snn_rate_coded", rule=lambda layer: lfp.rules.ZPlus())


def test_a_later_value_error_is_not_a_config_error(monkeypatch):
    trainer = Trainer(_config(epochs=1), data=image_data(), **quiet())
    real = trainer.method.step
    calls = []

    def second_fails(*args):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("a bug in step 2")
        return real(*args)

    monkeypatch.setattr(trainer.method, "step", second_fails)
    with pytest.raises(ValueError, match="a bug in step 2"):
        trainer.run()


def test_surrogate_is_registered():
    assert "surrogate" in methods.known_methods()
    from lfp_ref.snn.methods import SurrogateGradients

    assert methods.get_method("Surrogate") is SurrogateGradients


# --------------------------------------------------------------------------------------------
# checkpoints and resume


def _assert_same_run(a, b):
    from lfp_ref.train import checkpoint as ckpt

    state_a, state_b = ckpt.load(a / "last.npz"), ckpt.load(b / "last.npz")
    assert sorted(state_a) == sorted(state_b)
    for key, value in state_a.items():
        if isinstance(value, np.ndarray):
            assert value.tobytes() == state_b[key].tobytes(), key
        else:
            assert value == state_b[key], key
    assert (a / "steps.csv").read_bytes() == (b / "steps.csv").read_bytes()
    rows_a, rows_b = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    for row in rows_a + rows_b:
        row.pop("wall_time")
    assert rows_a == rows_b


@pytest.mark.parametrize("method", ["lfp", "surrogate"])
def test_resume_of_a_spiking_run_is_bit_identical(tmp_path, method):
    data = image_data()
    config = _config(method=method, epochs=2)  # 4 batches per epoch
    fit(config, data=data, out=tmp_path / "straight", **quiet())
    fit(config, data=data, out=tmp_path / "stopped", max_steps=3, **quiet())
    trainer = Trainer.resume(tmp_path / "stopped", data=data, **quiet())
    assert trainer.step == 3 and trainer.config.reward == "snn_rate_coded"
    trainer.run(max_steps=6)
    Trainer.resume(tmp_path / "stopped", data=data, **quiet()).run()
    _assert_same_run(tmp_path / "straight", tmp_path / "stopped")


# --------------------------------------------------------------------------------------------
# the command line


def lfp_ref(*args, cwd=None):
    return subprocess.run([*LFP_REF, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_cli_timesteps_trains_a_spiking_model_and_resumes(tmp_path):
    out = tmp_path / "run"
    common = ["--model", "snn-mlp", "--data", "digits", "--widths", "16", "--batch-size", "64",
              "--lr", "0.02", "--limit-train", "256", "--limit-test", "64", "--epochs", "2",
              "--no-progress"]  # fmt: skip
    result = lfp_ref("train", *common, "--timesteps", "3", "--method", "surrogate",
                     "--max-steps", "3", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "reward snn_rate_coded" in result.stdout
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["model_options"] == {"timesteps": 3} and saved["method"] == "surrogate"
    result = lfp_ref("train", "--resume", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert len(read_csv(out / "metrics.csv")) == 2
    straight = tmp_path / "straight"
    result = lfp_ref("train", *common, "--timesteps", "3", "--method", "surrogate",
                     "--out", str(straight))  # fmt: skip
    assert result.returncode == 0, result.stderr
    _assert_same_run(straight, out)
    # lfp-ref eval reads the spike counts too
    result = lfp_ref("eval", str(out))
    assert result.returncode == 0, result.stderr
    last = read_csv(out / "metrics.csv")[-1]
    assert f"test accuracy {last['test_acc']:.4f}  loss {last['test_loss']:.4f}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "lenet", "--timesteps", "5"], "model 'lenet' is not one"),
        (["--model", "snn-mlp", "--timesteps", "5", "--model-option", "timesteps=3"],
         "both set T"),
        (["--model", "snn-mlp", "--timesteps", "0"], "positive integer"),
        (["--model", "toy", "--method", "surrogate", "--data", "blobs"], "has none"),
    ],
)  # fmt: skip
def test_cli_timesteps_errors(tmp_path, args, message):
    result = lfp_ref("train", *args, "--no-progress", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_cli_timesteps_with_resume_is_refused(tmp_path):
    result = lfp_ref("train", "--resume", str(tmp_path), "--timesteps", "4")
    assert result.returncode == 2 and "--timesteps" in result.stderr


def test_cli_print_config_holds_timesteps():
    result = lfp_ref("train", "--model", "snn-cnn", "--timesteps", "7", "--print-config")
    assert result.returncode == 0, result.stderr
    config = TrainConfig.from_toml(result.stdout)
    assert config.model_options == {"timesteps": 7} and config.reward is None
    help_text = " ".join(lfp_ref("train", "--help").stdout.split())
    assert "--timesteps T" in help_text and "snn-mlp, snn-cnn" in help_text


# --------------------------------------------------------------------------------------------
# per-step accounts of a LIF layer, and lfp-ref verify --snn


@pytest.mark.parametrize("name", ["dense", "conv-maxpool"])
def test_lif_accounts_balance_and_match_the_trace(name):
    net, x, y = _build(name, seed=1)
    t = lfp.trace(net, x, y, reward="snn_rate_coded", eps=1e-6)
    for record in t.records:
        if record.kind != "LIF":
            continue
        lif = record.layer
        acc = lif.lfp_accounts(
            record.reward_arriving, eps=1e-6, reward_leaving=record.reward_leaving
        )
        steps = net.timesteps
        assert set(acc) == {"arriving", "from_next", "to_below", "bias", "to_previous",
                            "normaliser", "stabiliser", "other"}  # fmt: skip
        assert all(v.shape == (steps,) for v in acc.values())
        scale = np.abs(acc["arriving"] + acc["from_next"]).max()
        assert np.abs(acc["other"]).max() <= 1e-12 * scale
        assert acc["to_previous"][0] == 0 and acc["from_next"][-1] == 0
        np.testing.assert_allclose(acc["from_next"][:-1], acc["to_previous"][1:], rtol=1e-12)
        assert acc["arriving"].sum() == pytest.approx(record.sum_arriving, rel=1e-12)
        assert acc["to_below"].sum() == pytest.approx(record.sum_leaving, rel=1e-12)
        assert acc["bias"].sum() == pytest.approx(record.bias_share, rel=1e-12)
        # without R_x the identity sum rho (I - b) gives the same to rounding
        identity = lif.lfp_accounts(record.reward_arriving, eps=1e-6)["to_below"]
        np.testing.assert_allclose(identity, acc["to_below"], rtol=1e-10, atol=1e-12 * scale)


def test_lif_accounts_show_the_normaliser_loss_where_membranes_go_negative():
    rng = np.random.default_rng(3)
    current = lfp.Dense(3, 2, dtype=np.float64, rng=rng)
    current.weight[...] = [[2.0, -3.0, 0.5], [-1.0, 1.5, 2.0]]
    current.bias[...] = [0.2, -0.4]
    net = SpikingSequential(LIF(current), timesteps=6)
    x = rng.uniform(0, 1, (5, 3))
    r = rng.normal(size=(6, 5, 2))
    net(x)
    acc = net[0].lfp_accounts(r.reshape(30, 2), eps=1e-6)
    membrane = net[0].cached_membrane
    assert (membrane < 0).any()
    assert np.abs(acc["normaliser"]).max() > 1e-3  # lost where |.| differs from the value
    total = acc["to_below"] + acc["bias"] + acc["to_previous"] + acc["normaliser"]
    np.testing.assert_allclose(total + acc["stabiliser"], acc["arriving"] + acc["from_next"],
                               rtol=1e-12, atol=1e-14)  # fmt: skip


def test_lif_accounts_need_a_stabiliser():
    net, x, y = _build("dense")
    net(x)
    with pytest.raises(ValueError, match="needs the stabiliser"):
        net[0].lfp_accounts(np.zeros((net.timesteps * x.shape[0], 16)))


def test_theory_snn_checks_pass_and_can_fail(monkeypatch):
    checks = theory.snn_checks(0)
    assert len(checks) == 2 and all(c.passed for c in checks), checks
    check, rows = theory.snn_shares(0)
    assert {row["net"] for row in rows} == set(theory.SNN_NETS)
    for row in rows:
        parts = row["to_below"] + row["bias"] + row["normaliser"] + row["stabiliser"]
        assert parts + row["other"] == pytest.approx(row["arriving"], rel=1e-12)
    assert "normaliser (lost)" in theory.shares_table(rows)
    # a wrong recursion (no leak into the previous step) is caught
    real = theory.snn_oracle

    def leaky(net, x, reward, eps):
        for _, layer in net.lif_layers():
            layer.beta *= 0.5
        try:
            return real(net, x, reward, eps)
        finally:
            for _, layer in net.lif_layers():
                layer.beta *= 2

    monkeypatch.setattr(theory, "snn_oracle", leaky)
    assert not theory.snn_recursion(0).passed


def test_verify_snn_prints_the_checks_and_the_shares():
    result = lfp_ref("verify", "--snn", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert "14 checks, 0 failed: PASS" in result.stdout
    assert "SNN-LFP recursion = the literal oracle" in result.stdout
    assert "normaliser (lost)" in result.stdout


# --------------------------------------------------------------------------------------------
# the figure


def test_figure_smoke_mode(tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT))
    from figures import fig_snn

    assert fig_snn.main(["--smoke", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "snn" / "smoke"
    assert (folder / "snn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(folder / "curves.csv", newline="") as file:
        curves = list(csv.DictReader(file))
    assert list(curves[0]) == ["method", "step", "epoch", "probe_acc", "probe_loss",
                               "train_seconds"]  # fmt: skip
    assert {row["method"] for row in curves} == {"lfp", "surrogate"}
    with open(folder / "rates.csv", newline="") as file:
        rates = list(csv.DictReader(file))
    assert {row["layer"] for row in rates} == {"1", "2"}  # the two LIF layers after Flatten
    assert all(0 <= float(row["rate"]) <= 1 for row in rates)
    with open(folder / "epochs.csv", newline="") as file:
        epochs = list(csv.DictReader(file))
    assert [row["method"] for row in epochs] == ["lfp", "surrogate"]
    assert float(epochs[0]["cumulative_time"]) == float(epochs[0]["wall_time"])
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["methods"]) == {"lfp", "surrogate"}
    # a second call reuses the finished runs
    assert fig_snn.main(["--smoke", "--out", str(tmp_path)]) == 0


def test_figure_smoke_mode_of_the_spiking_cnn(tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT))
    from figures import fig_snn

    assert fig_snn.figure_name("snn-cnn", "fashion-mnist") == "snn_cnn_fashion"
    assert fig_snn.main(["--smoke", "--model", "snn-cnn", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "snn_cnn_mnist" / "smoke"
    assert (folder / "snn_cnn_mnist.png").exists()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["settings"]["model"] == "snn-cnn" and summary["paper"] is None
    with open(folder / "rates.csv", newline="") as file:
        layers = {row["layer"] for row in csv.DictReader(file)}
    assert layers == {"0", "2", "5"}  # LIF(conv), LIF(conv), LIF(dense)
    config = fig_snn.config_of("lfp", "full", model="snn-cnn", data="fashion-mnist")
    assert (config.model, config.data, config.batch_size) == ("snn-cnn", "fashion-mnist", 64)
