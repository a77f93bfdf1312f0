"""The training loop: configuration checks, both methods learn, metrics mean what they say,
bit-identical resume (mid-epoch, at epoch ends, after a crash left extra rows, a kill between
the two checkpoint writes, stale temporary files; extended to more epochs), non-finite values
stop the run with the epoch, step and layer and never reach a checkpoint; the warning for z+ /
alpha-beta on the output layer; the summary line; the progress bar; the learning-curve plot."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

from lfp_ref import checkpoint as ckpt
from lfp_ref import rewards, rules
from lfp_ref.data import Dataset, load
from lfp_ref.progress import Progress, format_duration
from lfp_ref.train import (
    METRIC_COLUMNS,
    STEP_COLUMNS,
    ConfigError,
    OutputRuleWarning,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    comparison_table,
    evaluate,
    fit,
    read_csv,
    read_run,
    resolve_rule,
    weight_sparsity,
)


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


def image_data(n_train=40, n_test=12, classes=4, seed=0):
    """Random 1x28x28 images (LeNet's input) with random labels: enough to exercise every
    piece of state a resume must restore, including the dropout streams."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, classes, n_train + n_test)
    return Dataset(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes, "images", "test fixture"
    )


# --------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(method="sgd"), "method must be one of lfp, gd"),
        (dict(optimizer="rmsprop"), "optimizer must be one of sgd, adam, adamw"),
        (dict(scheduler="cosine"), "scheduler must be one of none, onecycle, steplr"),
        (dict(model="alexnet"), "unknown model 'alexnet'; known: toy, mlp, lenet"),
        (dict(activation="swish"), "unknown activation 'swish'"),
        (dict(reward="accuracy"), "unknown reward 'accuracy'; known: softmax_loss"),
        (dict(lr=0.0), "lr must be a finite number > 0"),
        (dict(lr=float("nan")), "lr must be a finite number > 0"),
        (dict(epochs=0), "epochs must be a positive int, got 0"),
        (dict(batch_size=2.5), "batch_size must be a positive int"),
        (dict(seed=-1), "seed must be an int >= 0"),
        (dict(clip=-1.0), "clip must be a finite number > 0"),
        (dict(dtype="float16"), "dtype must be one of float32, float64"),
        (dict(model="lenet", widths=(4,)), "fixed widths"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_config_errors_say_what_is_allowed(change, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**change).validated()
    assert message in str(info.value)


def test_config_round_trip_and_canonical_names():
    config = TrainConfig(model="VGG_small", method="GD", widths=[8, 16]).validated()
    assert (config.model, config.method, config.widths) == ("vgg-small", "gd", (8, 16))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match=r"unknown configuration keys \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_rule_names():
    assert resolve_rule("epsilon", 1e-6) is None  # the engine's own Epsilon(eps)
    assert isinstance(resolve_rule("ZPlus", 1e-6), rules.ZPlus)
    assert isinstance(resolve_rule("alpha2beta1", 1e-6), rules.AlphaBeta)
    with pytest.raises(ConfigError, match="unknown rule 'nope'"):
        resolve_rule("nope", 1e-6)


def test_dataset_name_must_match_config():
    with pytest.raises(ConfigError, match="the dataset given is 'images' but the config says"):
        Trainer(TrainConfig(model="mlp", data="mnist"), data=image_data(), **quiet())


def test_fresh_run_refuses_a_folder_holding_a_run(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=1)
    fit(config, out=tmp_path, **quiet())
    with pytest.raises(ConfigError, match="already holds a run; continue it with --resume"):
        Trainer(config, out=tmp_path, **quiet())


def test_overwrite_starts_afresh(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=2, keep_checkpoints=True)
    fit(config, out=tmp_path, **quiet())
    assert (tmp_path / "epoch-002.npz").exists()
    shorter = TrainConfig(model="toy", data="blobs", epochs=1, keep_checkpoints=True, lr=0.05)
    fit(shorter, out=tmp_path, overwrite=True, **quiet())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "epoch-001.npz", "last.npz", "metrics.csv", "metrics.jsonl", "steps.csv"
    ]  # fmt: skip
    assert len(read_csv(tmp_path / "metrics.csv")) == 1
    assert read_run(tmp_path)["config"]["lr"] == 0.05
    assert Trainer.resume(tmp_path, **quiet()).done  # the new config and checkpoint agree


def test_max_steps_needs_an_output_folder():
    trainer = Trainer(TrainConfig(model="toy", data="blobs", epochs=1), **quiet())
    with pytest.raises(ConfigError, match="give an output folder"):
        trainer.run(max_steps=3)


# --------------------------------------------------------------------------------------------
# learning and metrics


@pytest.mark.parametrize("method", ["lfp", "gd"])
def test_short_training_run_learns_the_swirls(method):
    config = TrainConfig(
        model="toy", data="swirls", method=method, epochs=15, batch_size=32, lr=0.05,
        dtype="float64",
    )  # fmt: skip
    trainer = Trainer(config, **quiet())
    before, _ = evaluate(trainer.model, trainer.x_test, trainer.y_test)
    trainer.run()
    after = trainer.history[-1]["test_acc"]
    assert before < 0.5  # three classes: an untrained net is near chance
    assert after > 0.85
    assert trainer.history[-1]["train_loss"] < trainer.history[0]["train_loss"]


def test_metrics_mean_what_they_say(tmp_path):
    data = load("blobs", n_samples=90)
    config = TrainConfig(model="toy", data="blobs", epochs=2, batch_size=16, eval_every=2)
    trainer = fit(config, data=data, out=tmp_path, **quiet())
    metrics, steps = read_csv(tmp_path / "metrics.csv"), read_csv(tmp_path / "steps.csv")
    assert tuple(metrics[0]) == METRIC_COLUMNS and tuple(steps[0]) == STEP_COLUMNS
    assert [row["epoch"] for row in metrics] == [1, 2]
    n_batches = trainer.batches_per_epoch
    assert [row["step"] for row in steps] == list(range(1, 2 * n_batches + 1))
    # the epoch's train_loss is the sample-weighted mean of its batches' losses
    sizes = [16] * (n_batches - 1) + [len(trainer.y_train) - 16 * (n_batches - 1)]
    last_epoch = steps[n_batches:]
    for key, column in (("loss", "train_loss"), ("reward", "train_reward"), ("acc", "running_acc")):
        weighted = sum(row[key] * n for row, n in zip(last_epoch, sizes)) / sum(sizes)
        assert metrics[1][column] == pytest.approx(weighted, rel=1e-12)
    # train_acc and test_acc are eval-mode accuracies of the final weights
    assert metrics[1]["train_acc"] == evaluate(trainer.model, trainer.x_train, trainer.y_train)[0]
    assert metrics[1]["test_acc"] == evaluate(trainer.model, trainer.x_test, trainer.y_test)[0]
    # test accuracy at every second step, and none in between
    assert [row["test_acc"] is not None for row in steps] == [
        step % 2 == 0 for step in range(1, 2 * n_batches + 1)
    ]
    assert metrics[1]["sparsity"] == 0.0  # uniform init: no exact zeros
    assert trainer.history == read_run(tmp_path)["metrics"]


def test_softmax_reward_metric_is_the_summed_reward():
    """One batch holding the whole training set: train_reward is the mean over samples of
    sum_c z_c (Y_c - p_c) at the initial weights."""
    data = load("blobs", n_samples=40)
    config = TrainConfig(model="toy", data="blobs", epochs=1, batch_size=40, dtype="float64")
    trainer = Trainer(config, data=data, **quiet())
    reward = rewards.softmax_loss(trainer.model(trainer.x_train), trainer.y_train)
    trainer.run()
    # the batch is a permutation of the set, so the sums agree up to reordering
    assert trainer.history[0]["train_reward"] == pytest.approx(reward.sum(axis=1).mean(), rel=1e-12)
    assert trainer.history[0]["train_reward"] != 0.0


def test_weight_sparsity_counts_exact_zeros_of_weights_only():
    from lfp_ref import zoo

    model = zoo.build("toy", num_classes=2, input_shape=(2,))
    params = model.parameters()
    params["0.weight"][:8] = 0.0  # 16 of 64 + 512 + 32 weights
    params["0.bias"][:] = 0.0  # biases do not count
    assert weight_sparsity(model) == 16 / (64 + 512 + 32)


def test_evaluate_restores_the_training_mode():
    trainer = Trainer(TrainConfig(model="lenet", data="images"), data=image_data(), **quiet())
    assert trainer.model.training
    evaluate(trainer.model, trainer.x_test, trainer.y_test)
    assert trainer.model.training
    trainer.model.eval()
    evaluate(trainer.model, trainer.x_test, trainer.y_test)
    assert not trainer.model.training


# --------------------------------------------------------------------------------------------
# resume


def _read_state(run):
    state = ckpt.load(run / "last.npz")
    del state["trainer/sum_seconds"]  # wall-clock time, the one thing allowed to differ
    return state


def _assert_same_run(a, b):
    state_a, state_b = _read_state(a), _read_state(b)
    assert sorted(state_a) == sorted(state_b)
    for key, value in state_a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == state_b[key].dtype and value.tobytes() == state_b[key].tobytes()
        else:
            assert value == state_b[key], key
    assert (a / "steps.csv").read_bytes() == (b / "steps.csv").read_bytes()
    rows_a, rows_b = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    for row in rows_a + rows_b:
        row.pop("wall_time")
    assert rows_a == rows_b
    assert _jsonl(a) == _jsonl(b) and len(_jsonl(a)) == len(read_csv(a / "steps.csv")) + len(rows_a)


def _jsonl(run):
    """metrics.jsonl's records without the clock."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("wall_time", None)
    return records


RESUME_CASES = {
    # name: (config changes, the steps at which the run is stopped and resumed)
    "lfp-sgd-onecycle-mid-epoch": (
        dict(method="lfp", scheduler="onecycle", checkpoint_every=2, eval_every=3),
        (3, 8),
    ),
    "gd-adam-steplr-epoch-end": (
        dict(method="gd", optimizer="adam", lr=1e-3, scheduler="steplr"),
        (5,),
    ),
    "lfp-adamw-first-step": (dict(method="lfp", optimizer="adamw", lr=1e-3), (1, 2, 9)),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_is_bit_identical(tmp_path, case):
    changes, stops = RESUME_CASES[case]
    config = TrainConfig(model="lenet", data="images", epochs=2, batch_size=8, **changes)
    data = image_data()
    fit(config, data=data, out=tmp_path / "straight", **quiet())
    fit(config, data=data, out=tmp_path / "stopped", max_steps=stops[0], **quiet())
    previous = stops[0]
    for stop in (*stops[1:], None):
        trainer = Trainer.resume(tmp_path / "stopped", data=data, **quiet())
        assert trainer.step == previous
        trainer.run(max_steps=stop)
        previous = stop
    _assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_resume_drops_rows_written_after_the_checkpoint(tmp_path):
    """A process killed between checkpoints has written csv rows the checkpoint has not seen
    (and maybe half a line); the resumed run drops them and writes them again, identically."""
    config = TrainConfig(model="lenet", data="images", epochs=2, batch_size=8, checkpoint_every=4)
    data = image_data()
    fit(config, data=data, out=tmp_path / "straight", **quiet())
    fit(config, data=data, out=tmp_path / "crashed", max_steps=4, **quiet())
    with open(tmp_path / "crashed" / "steps.csv", "a") as file:
        file.write("5,0.9,0.1,9.9,9.9,0.5,,\n6,1.0,0.1,9.9,9.9,0.5,,\n7,1.1")  # torn last line
    with open(tmp_path / "crashed" / "metrics.csv", "a") as file:
        file.write("1,5,0.1,9.9,9.9,0.5,0.5,9.9,0.5,0.0,1.0\n")
    Trainer.resume(tmp_path / "crashed", data=data, **quiet()).run()
    _assert_same_run(tmp_path / "straight", tmp_path / "crashed")


def test_resume_drops_json_lines_written_after_the_checkpoint(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=2, batch_size=32, checkpoint_every=3)
    fit(config, out=tmp_path / "straight", **quiet())
    fit(config, out=tmp_path / "crashed", max_steps=3, **quiet())
    with open(tmp_path / "crashed" / "metrics.jsonl", "a") as file:
        file.write('{"type": "step", "step": 4, "loss": 9.9}\n{"type": "epoch", "epoch": 1}\n{"ty')
    Trainer.resume(tmp_path / "crashed", **quiet()).run()
    _assert_same_run(tmp_path / "straight", tmp_path / "crashed")


class Killed(BaseException):
    """A stand-in for SIGKILL at a chosen moment (BaseException: nothing catches it)."""


def test_a_kill_between_the_two_checkpoint_writes_loses_no_epoch_file(tmp_path, monkeypatch):
    """keep_checkpoints writes two files at an epoch end; a process killed after the first
    must still end up, once resumed, with every epoch-NNN.npz of the uninterrupted run."""
    config = TrainConfig(model="toy", data="blobs", epochs=2, batch_size=32, keep_checkpoints=True)
    fit(config, out=tmp_path / "straight", **quiet())
    real_save, writes = ckpt.save, []

    def save_then_die(path, state):
        if state["trainer/epoch"] == 1 and state["trainer/batch"] == 0:
            writes.append(path.name)
            if len(writes) == 2:
                raise Killed  # the second of the epoch end's two writes never happens
        real_save(path, state)

    monkeypatch.setattr(ckpt, "save", save_then_die)
    with pytest.raises(Killed):
        fit(config, out=tmp_path / "killed", **quiet())
    monkeypatch.setattr(ckpt, "save", real_save)
    Trainer.resume(tmp_path / "killed", **quiet()).run()
    _assert_same_run(tmp_path / "straight", tmp_path / "killed")
    for name in ("epoch-001.npz", "epoch-002.npz"):
        kept, straight = (
            ckpt.load(tmp_path / "killed" / name),
            ckpt.load(tmp_path / "straight" / name),
        )
        for key, value in straight.items():
            if key.startswith("model/"):
                assert kept[key].tobytes() == value.tobytes(), (name, key)


def test_resume_writes_a_missing_epoch_file_again(tmp_path):
    """A run killed by an older lfp_ref between last.npz and epoch-NNN.npz (or a deleted epoch
    file): resuming at that epoch end writes it from the same state."""
    config = TrainConfig(model="toy", data="blobs", epochs=2, batch_size=32, keep_checkpoints=True)
    trainer = fit(config, out=tmp_path, max_steps=1, **quiet())
    steps = trainer.batches_per_epoch
    Trainer.resume(tmp_path, **quiet()).run(max_steps=steps)  # stops at the end of epoch 1
    (tmp_path / "epoch-001.npz").unlink()
    resumed = Trainer.resume(tmp_path, **quiet())
    resumed.run()
    restored = ckpt.load(tmp_path / "epoch-001.npz")
    assert restored["trainer/epoch"] == 1 and restored["trainer/step"] == steps
    assert (tmp_path / "epoch-002.npz").exists()


def test_resume_and_overwrite_remove_stale_temporary_files(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=1, batch_size=32)
    fit(config, out=tmp_path, max_steps=2, **quiet())
    stale = [".last.npz.tmp-99999", ".metrics.csv.tmp-4242", ".epoch-001.npz.tmp-7"]
    for name in stale:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp-1").write_text("not ours")  # not a temporary of atomic_write
    Trainer.resume(tmp_path, **quiet()).run()
    assert not any((tmp_path / name).exists() for name in stale)
    assert (tmp_path / "notes.tmp-1").exists()
    for name in stale:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    fit(config, out=tmp_path, overwrite=True, **quiet())
    assert not any((tmp_path / name).exists() for name in stale)


@pytest.mark.parametrize("scheduler", ["none", "steplr"])
def test_resume_with_more_epochs_equals_a_run_started_with_them(tmp_path, scheduler):
    config = TrainConfig(model="lenet", data="images", epochs=3, batch_size=8, scheduler=scheduler,
                         step_size=1, gamma=0.5, checkpoint_every=2)  # fmt: skip
    data = image_data()
    fit(config, data=data, out=tmp_path / "straight", **quiet())
    shorter = TrainConfig(**{**config.to_dict(), "epochs": 2})
    fit(shorter, data=data, out=tmp_path / "extended", **quiet())
    trainer = Trainer.resume(tmp_path / "extended", data=data, epochs=3, **quiet())
    assert trainer.epoch == 2 and not trainer.done
    trainer.run()
    _assert_same_run(tmp_path / "straight", tmp_path / "extended")
    saved = json.loads((tmp_path / "extended" / "config.json").read_text())
    assert saved["config"]["epochs"] == 3 and saved["info"]["extended"][0]["from_epochs"] == 2


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=1)
    fit(config, out=tmp_path, **quiet())
    before = (tmp_path / "last.npz").read_bytes()
    trainer = Trainer.resume(tmp_path, **quiet())
    assert trainer.done and trainer.epoch == 1
    assert trainer.run() == read_csv(tmp_path / "metrics.csv")
    assert (tmp_path / "last.npz").read_bytes() == before


def test_resume_rejects_a_checkpoint_of_another_configuration(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=2)
    fit(config, out=tmp_path, max_steps=3, **quiet())
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["config"]["lr"] = 0.5
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ckpt.CheckpointError, match=r"another configuration: \['lr: 0.1"):
        Trainer.resume(tmp_path, **quiet())


def test_resume_rejects_mismatched_shapes(tmp_path):
    config = TrainConfig(model="mlp", data="blobs", epochs=2, widths=(8,))
    fit(config, out=tmp_path, max_steps=3, **quiet())
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["config"]["widths"] = [9]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ckpt.CheckpointError, match=r"does not fit the model: .*expected \(9, 2\)"):
        Trainer.resume(tmp_path, **quiet())


# --------------------------------------------------------------------------------------------
# non-finite values


def test_a_model_holding_nan_is_not_reported_as_too_large_weights():
    trainer = Trainer(TrainConfig(model="toy", data="blobs"), **quiet())
    trainer.model.parameters()["0.weight"][1, 0] = np.nan  # changed outside the optimizer
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    message = str(info.value)
    assert "held non-finite values before this step, in model/0.weight (1 value)" in message
    assert "too large" not in message and "Lower the learning rate" not in message


def test_a_non_finite_buffer_never_reaches_a_checkpoint(tmp_path, monkeypatch):
    """A step that leaves the weights finite but a buffer (BatchNorm's running variance)
    infinite: the next checkpoint is refused, and the one on disk stays the last good one."""
    from lfp_ref import methods

    class Poisoning(methods.LFP):
        def step(self, model, optimizer, x, y):
            result = super().step(model, optimizer, x, y)
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                norms = [
                    layer for _, layer in model.named_layers() if hasattr(layer, "running_var")
                ]
                norms[0].running_var[0] = np.inf
            return result

    methods.register_method("lfp-poisoning", Poisoning)
    try:
        config = TrainConfig(model="resnet-small", data="images", method="lfp-poisoning",
                             batch_size=8, widths=(4, 8), checkpoint_every=2)  # fmt: skip
        trainer = Trainer(config, data=image_data(), out=tmp_path, **quiet())
        with pytest.raises(TrainingDiverged) as info:
            trainer.run()
    finally:
        methods.unregister_method("lfp-poisoning")
    message = str(info.value)
    assert message.startswith("epoch 1, checkpoint after step 4: not writing ")
    assert "running_var (1 value)" in message
    assert f"the last good checkpoint {tmp_path / 'last.npz'} (step 2) is intact" in message
    state = ckpt.load(tmp_path / "last.npz")
    assert state["trainer/step"] == 2 and not ckpt.non_finite_entries(state)
    assert not list(tmp_path.glob(".*tmp*"))


def test_non_finite_reward_stops_the_run_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    calls = []

    def poisoned(logits, y):
        calls.append(1)
        r = rewards.softmax_loss(logits, y)
        return r * np.nan if len(calls) == 3 else r

    monkeypatch.setitem(rewards.REWARDS, "poisoned", poisoned)
    config = TrainConfig(model="toy", data="blobs", reward="poisoned", checkpoint_every=1)
    trainer = Trainer(config, out=tmp_path, **quiet())
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    message = str(info.value)
    assert message.startswith("epoch 1, step 3 (batch 3 of ")
    assert "the reward 'poisoned' has" in message and "non-finite entries" in message
    assert f"the last good checkpoint {tmp_path / 'last.npz'} (step 2) is intact" in message
    state = ckpt.load(tmp_path / "last.npz")
    assert state["trainer/step"] == 2
    resumed = Trainer.resume(tmp_path, **quiet())  # loads, and is the state after step 2
    assert resumed.step == 2
    for name, value in resumed.model.named_parameters():
        assert np.isfinite(value).all(), name


def test_non_finite_weights_name_the_parameter(tmp_path):
    trainer = Trainer(TrainConfig(model="toy", data="blobs"), out=tmp_path, **quiet())
    real_step = trainer.optimizer.step

    def step_then_overflow(grads, **kwargs):
        real_step(grads, **kwargs)
        if trainer.step == 4:
            trainer.model.parameters()["2.weight"][3, 1] = np.inf

    trainer.optimizer.step = step_then_overflow
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    assert "epoch 1, step 5 (batch 5 of" in str(info.value)
    assert "parameter '2.weight' has 1 non-finite entries after the optimizer step" in str(
        info.value
    )
    assert ckpt.load(tmp_path / "last.npz")["trainer/step"] == 0  # the initial checkpoint


@pytest.mark.parametrize("method", ["lfp", "gd"])
def test_overflowing_forward_pass_names_the_layer(method):
    config = TrainConfig(model="toy", data="blobs", method=method, lr=1e30, clip=None)
    with pytest.raises(TrainingDiverged) as info:
        fit(config, **quiet())
    message = str(info.value)
    assert message.startswith("epoch 1, step 2")
    assert "the first non-finite output comes from layer '" in message
    assert "Lower the learning rate" in message


# --------------------------------------------------------------------------------------------
# rules on the output layer


@pytest.mark.parametrize(
    ("rules_given", "warns"),
    [
        (dict(rule="zplus"), True),
        (dict(rule="alpha2beta1"), True),
        (dict(rule_for={"Dense": "alphabeta"}), True),
        (dict(rule_for={"default": "zplus", "4": "epsilon"}), False),
        (dict(composite="EpsilonPlus"), False),
        (dict(rule="epsilon"), False),
        (dict(rule="zplus", method="gd"), False),  # gd places no rules
    ],
    ids=[
        "zplus",
        "alpha2beta1",
        "rule_for-alphabeta",
        "zplus-epsilon-output",
        "EpsilonPlus",
        "epsilon",
        "gd",
    ],  # fmt: skip
)
def test_z_plus_or_alpha_beta_on_the_output_layer_warns(rules_given, warns):
    config = TrainConfig(model="toy", data="swirls", **rules_given)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(config, **quiet())
    found = [w for w in caught if issubclass(w.category, OutputRuleWarning)]
    assert len(found) == int(warns)
    if warns:
        text = str(found[0].message)
        assert text.startswith("the output layer '4' (Dense(16, 3)) gets the rule ")
        assert "--rule-for 4=epsilon" in text and "below chance" in text


def test_the_summary_line_names_each_accuracy():
    row = dict(epoch=1, step=38, lr=0.02, train_loss=0.9573, train_reward=-0.0094,
               running_acc=0.421, train_acc=0.8073, test_loss=0.7058, test_acc=0.6267,
               sparsity=0.0, wall_time=0.31)  # fmt: skip
    from lfp_ref.train import summary_line

    assert summary_line(row, 3) == (
        "epoch 1/3: running: loss 0.9573 reward -0.0094 acc 0.4210 | eval: train acc 0.8073, "
        "test acc 0.6267, test loss 0.7058 | sparsity 0.0000 | lr 0.02 | 0.3 s"
    )


# --------------------------------------------------------------------------------------------
# progress bar, table, plot


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_redraws_in_place_throttled():
    stream, clock = FakeTerminal(), FakeClock()
    with Progress(10, desc="epoch 1/2", stream=stream, clock=clock, min_interval=0.5) as bar:
        for _ in range(4):
            clock.now += 0.2
            bar.update(loss=0.5)
    draws = stream.getvalue().split("\r")[1:]
    # drawn at the first update (t=0.2), at t=0.8 (>= 0.5 later) and when closed
    assert len(draws) == 3
    assert draws[0].startswith("epoch 1/2 [##") and " 1/10  10%" in draws[0]
    assert draws[-1].endswith("\n") and " 4/10  40%" in draws[-1] and "loss 0.5" in draws[-1]


def test_progress_without_a_terminal_prints_few_plain_lines():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(100, desc="epoch 1/1", stream=stream, clock=clock, plain_interval=10) as bar:
        for _ in range(100):
            clock.now += 0.25  # 25 s in all
            bar.update(acc=0.75)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "[" not in stream.getvalue()
    assert len(lines) == 3  # at 10 s, at 20 s, and the final line
    assert lines[0].startswith("epoch 1/1  40/100  40% 4.0 it/s eta 0:15 acc 0.75")
    assert lines[-1].startswith("epoch 1/1 100/100 100% 4.0 it/s in 0:25")


def test_progress_can_be_disabled():
    stream = FakeTerminal()
    with Progress(5, stream=stream, enabled=False) as bar:
        bar.update(loss=1.0)
    assert stream.getvalue() == ""


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]


def test_comparison_table_and_learning_curves(tmp_path):
    for method in ("lfp", "gd"):
        config = TrainConfig(model="toy", data="blobs", method=method, epochs=2, eval_every=5)
        fit(config, out=tmp_path / method, **quiet())
    runs = [read_run(tmp_path / "lfp"), read_run(tmp_path / "gd")]
    table = comparison_table(runs).splitlines()
    assert table[0].split()[:5] == ["run", "method", "model", "data", "epochs"]
    assert len(table) == 3
    for line, run in zip(table[1:], runs):
        assert line.split()[1:5] == [run["config"]["method"], "toy", "blobs", "2/2"]
        assert f"{run['metrics'][-1]['test_acc']:.4f}" in line
    pytest.importorskip("matplotlib", reason="the learning-curve plot needs matplotlib")
    from lfp_ref.plots import learning_curves

    path = learning_curves(runs, tmp_path / "figs" / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_moving_average_is_the_trailing_mean():
    from lfp_ref.plots import moving_average

    values = np.array([1.0, 5.0, 2.0, 8.0, 3.0])
    expected = [np.mean(values[max(0, i - 2) : i + 1]) for i in range(5)]
    np.testing.assert_allclose(moving_average(values, 3), expected, rtol=1e-15)
    np.testing.assert_array_equal(moving_average(values, 1), values)


def test_progress_stops_quietly_on_an_error():
    for stream in (FakeTerminal(), io.StringIO()):
        clock = FakeClock()
        with pytest.raises(RuntimeError), Progress(9, stream=stream, clock=clock) as bar:
            clock.now += 20
            bar.update()
            raise RuntimeError
        # one drawing of the bar (the terminal's line then ended), no "final" line for the
        # failed epoch
        assert stream.getvalue().count("1/9") == 1
        assert stream.getvalue().endswith("\n")
