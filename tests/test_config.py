"""The experiment as data: TrainConfig's model factories, data loaders, rule assignments and
options, through ``fit``, ``lfp-ref train``, ``--resume`` and ``lfp-ref eval``; config.json
round trips; clear ConfigErrors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lfp_ref import composites, zoo
from lfp_ref.data import Dataset, batches
from lfp_ref.engine import lfp_step
from lfp_ref.layers import Conv2d
from lfp_ref.optim import SGD
from lfp_ref.rules import Epsilon, Flat, Gamma, ZPlus
from lfp_ref.train import ConfigError, TrainConfig, Trainer, fit, read_csv, read_run
from lfp_ref.train import checkpoint as ckpt

# the module a user writes: a model factory and a data loader (and two that are wrong)
USER_MODULE = "lfp_ref_test_user_factories"
USER_CODE = textwrap.dedent(
    """
    import numpy as np

    import lfp_ref as lfp
    from lfp_ref.data import Dataset


    def build(num_classes, input_shape, seed, dtype, hidden=8):
        rng = np.random.default_rng(seed)
        (features,) = input_shape
        return lfp.Sequential(
            lfp.Dense(features, hidden, dtype=dtype, rng=rng),
            lfp.ReLU(),
            lfp.Dense(hidden, num_classes, dtype=dtype, rng=rng),
        )


    def not_a_layer(num_classes, input_shape, seed, dtype):
        return [num_classes, input_shape]


    def float64_always(num_classes, input_shape, seed, dtype):
        return build(num_classes, input_shape, seed, np.float64)


    def load(n=120, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 2)).astype(np.float32)
        y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # the XOR quadrants
        split = n * 4 // 5
        return Dataset(x[:split], y[:split], x[split:], y[split:], 2, "quadrants", f"seed {seed}")


    def not_a_dataset():
        return np.zeros((4, 2))
    """
)
MODEL = f"{USER_MODULE}:build"
DATA = f"{USER_MODULE}:load"

_SCRIPT = Path(sys.executable).with_name("lfp-ref")
# the console script of the venv running the tests (it does not put the current folder on
# sys.path itself, so it shows that lfp-ref does), else the module
LFP_REF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "lfp_ref.cli"]


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    """The user's module written into a folder that is put on sys.path (and PYTHONPATH for the
    subprocesses); returns the folder."""
    folder = tmp_path_factory.mktemp("user")
    (folder / f"{USER_MODULE}.py").write_text(USER_CODE)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield folder
    sys.modules.pop(USER_MODULE, None)


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


def _same_state(a, b):
    """Bit-equal checkpoints (but the wall-clock sum)."""
    state_a, state_b = ckpt.load(a), ckpt.load(b)
    for state in (state_a, state_b):
        del state["trainer/sum_seconds"]
    assert sorted(state_a) == sorted(state_b)
    for key, value in state_a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == state_b[key].dtype and value.tobytes() == state_b[key].tobytes()
        else:
            assert value == state_b[key], key


# --------------------------------------------------------------------------------------------
# user model factories and data loaders


def test_user_factory_and_loader_through_fit_and_resume(user_module, tmp_path):
    config = TrainConfig(
        model=MODEL, model_options={"hidden": 6}, data=DATA, data_options={"n": 100, "seed": 2},
        epochs=2, batch_size=16, lr=0.05, dtype="float64",
    )  # fmt: skip
    trainer = Trainer(config, **quiet())
    # the factory got the dataset's classes and sample shape, the seed, the dtype, the options
    by_hand = sys.modules[USER_MODULE].build(
        num_classes=2, input_shape=(2,), seed=0, dtype=np.dtype("float64"), hidden=6
    )
    for (name, value), (_, expected) in zip(
        trainer.model.named_parameters(), by_hand.named_parameters()
    ):
        assert value.tobytes() == expected.tobytes(), name
    assert trainer.model.parameters()["0.weight"].shape == (6, 2)
    assert trainer.dataset.name == "quadrants" and len(trainer.y_train) == 80

    fit(config, out=tmp_path / "straight", **quiet())
    fit(config, out=tmp_path / "stopped", max_steps=7, **quiet())
    resumed = Trainer.resume(tmp_path / "stopped", **quiet())  # rebuilt from config.json alone
    assert resumed.step == 7
    resumed.run()
    _same_state(tmp_path / "straight" / "last.npz", tmp_path / "stopped" / "last.npz")
    saved = read_run(tmp_path / "stopped")
    assert saved["config"]["model"] == MODEL and saved["config"]["data"] == DATA
    assert saved["info"]["data_name"] == "quadrants"


def _cli(*args, cwd, pythonpath=None):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*LFP_REF, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_cli_train_resume_and_eval_with_user_factories(user_module, tmp_path):
    args = [
        "--model", MODEL, "--model-option", "hidden=5", "--data", DATA, "--data-option", "n=90",
        "--epochs", "2", "--batch-size", "16", "--dtype", "float64", "--no-progress",
    ]  # fmt: skip
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    first = _cli("train", *args, "--out", stopped, "--max-steps", "4", cwd=tmp_path,
                 pythonpath=user_module)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert f"training {MODEL}" in first.stdout
    saved = json.loads((stopped / "config.json").read_text())["config"]
    assert saved["model_options"] == {"hidden": 5} and saved["data_options"] == {"n": 90}
    second = _cli(
        "train", "--resume", stopped, "--no-progress", cwd=tmp_path, pythonpath=user_module
    )
    assert second.returncode == 0 and "step 4" in second.stdout, second.stderr
    third = _cli("train", *args, "--out", straight, cwd=tmp_path, pythonpath=user_module)
    assert third.returncode == 0, third.stderr
    _same_state(straight / "last.npz", stopped / "last.npz")
    # eval in the module's own folder finds it without PYTHONPATH (as `python -m` would)
    evaluation = _cli("eval", stopped, cwd=user_module)
    assert evaluation.returncode == 0, evaluation.stderr
    last = read_csv(stopped / "metrics.csv")[-1]
    assert (
        f"test accuracy {last['test_acc']:.4f}  loss {last['test_loss']:.4f}" in evaluation.stdout
    )
    # elsewhere, without it on the path: one line that says what to do
    lost = _cli("eval", stopped, cwd=tmp_path)
    assert lost.returncode == 2
    assert f"cannot import module {USER_MODULE!r}" in lost.stderr
    assert "PYTHONPATH" in lost.stderr and "Traceback" not in lost.stderr


# --------------------------------------------------------------------------------------------
# rule assignments: the trainer's step is the engine's lfp_step with the same composite


def image_data(n_train=24, n_test=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, 1, 8, 8))
    y = rng.integers(0, classes, n_train + n_test)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes, "images", "test")


def _by_hand(data, composite, steps, seed=3, batch_size=8, eps=1e-6):
    """``steps`` LFP steps with ``composite`` through the engine alone."""
    model = zoo.build("small-cnn", num_classes=3, input_shape=(1, 8, 8), seed=seed,
                      dtype=np.float64)  # fmt: skip
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    order = batches(data.x_train, data.y_train, batch_size, shuffle=True, seed=seed, epoch=0)
    for (xb, yb), _ in zip(order, range(steps)):
        lfp_step(model, optimizer, xb, yb, reward="softmax_loss", eps=eps, clip_norm=3.0,
                 composite=composite)  # fmt: skip
    return model


RULE_CASES = {
    "composite": (
        dict(composite="epsilon_plus"),
        lambda: composites.EpsilonPlus(),
    ),
    "composite-with-options": (
        dict(composite="EpsilonGammaBox", rule_options={"low": 0.0, "high": 1.0, "gamma": 0.5}),
        lambda: composites.EpsilonGammaBox(low=0.0, high=1.0, gamma=0.5),
    ),
    "per-layer-type-and-name": (
        dict(rule_for={"0": "flat", "Conv2d": "zplus"}),
        lambda: composites.Composite(Epsilon(), layer_types={Conv2d: ZPlus()}, names={"0": Flat()}),
    ),  # fmt: skip
    "per-layer-with-default-and-options": (
        dict(
            rule_for={"Conv2d": "gamma", "default": "zplus"}, rule_options={"gamma": {"gamma": 1.0}}
        ),
        lambda: composites.Composite(ZPlus(), layer_types={Conv2d: Gamma(1.0)}),
    ),
}


@pytest.mark.parametrize("case", list(RULE_CASES))
def test_rule_assignment_equals_lfp_step_with_the_composite(case, tmp_path):
    fields, composite = RULE_CASES[case]
    data = image_data()
    config = TrainConfig(
        model="small-cnn", data="images", epochs=1, batch_size=8, lr=0.1, seed=3,
        dtype="float64", **fields,
    )  # fmt: skip
    for steps in (1, 2):
        trainer = fit(config, data=data, out=tmp_path / f"{steps}", max_steps=steps, **quiet())
        expected = _by_hand(data, composite(), steps)
        for name, value in expected.state_dict().items():
            assert trainer.model.state_dict()[name].tobytes() == value.tobytes(), (steps, name)
    # the assignment matters: plain epsilon gives other weights
    epsilon = _by_hand(data, composites.Composite(Epsilon()), 2)
    assert any(
        trainer.model.state_dict()[name].tobytes() != value.tobytes()
        for name, value in epsilon.state_dict().items()
    )


def test_rule_for_an_unknown_layer_names_the_layers():
    config = TrainConfig(model="small-cnn", data="images", rule_for={"9": "zplus"})
    with pytest.raises(ConfigError, match=r"no layer named \['9'\] in the model; its layers are"):
        Trainer(config, data=image_data(), **quiet())


# --------------------------------------------------------------------------------------------
# config.json


def test_every_new_field_round_trips_through_config_json(user_module, tmp_path):
    configs = [
        TrainConfig(
            model=MODEL,
            model_options={"hidden": 7},
            data=DATA,
            data_options={"n": 50, "seed": 1},
            method_options={"batch_reduction": "mean"},
            composite="epsilon_gamma_box",
            rule_options={"low": [0.0], "high": (1.0,)},
        ),
        TrainConfig(
            model="lenet",
            model_options={"dropout": 0.25},
            data="blobs",
            rule_for={"Conv2d": "zbox", "default": "epsilon"},
            rule_options={"zbox": {"low": 0, "high": 1}},
        ),  # fmt: skip
        TrainConfig(rule="zbox", rule_options={"low": -1.0, "high": 1.0}),
    ]
    for config in configs:
        checked = config.validated()
        assert TrainConfig.from_dict(json.loads(json.dumps(checked.to_dict()))) == checked
        # and through TOML (--print-config / --config)
        assert TrainConfig.from_toml(checked.to_toml()).validated() == checked
    checked = configs[0].validated()
    assert checked.composite == "EpsilonGammaBox"  # zennit's class name
    assert checked.rule_options == {"low": [0.0], "high": [1.0]}  # as config.json gives it back
    assert (checked.activation, checked.widths, checked.rule) == (None, None, None)
    assert configs[1].validated().activation == "relu"
    # what fit writes is what a resume reads
    config = TrainConfig(
        model=MODEL,
        model_options={"hidden": 4},
        data=DATA,
        epochs=1,
        method_options={"batch_reduction": "mean"},
        rule_for={"Dense": "zplus"},
    )
    trainer = fit(config, out=tmp_path, **quiet())
    assert TrainConfig.from_dict(read_run(tmp_path)["config"]) == trainer.config
    assert Trainer.resume(tmp_path, **quiet()).done


def test_a_config_json_without_the_new_fields_still_loads():
    old = {"model": "toy", "data": "blobs", "rule": "epsilon", "activation": "relu"}
    config = TrainConfig.from_dict(old)
    assert config == TrainConfig(model="toy", data="blobs").validated()
    assert (config.model_options, config.composite, config.rule_for) == ({}, None, None)


# --------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(model="pkg.module:"), "neither a known name nor a factory 'package.module:function'"),
        (dict(model=":build"), "neither a known name nor a factory"),
        (dict(model="a:b:c"), "neither a known name nor a factory"),
        (
            dict(model="lfp_ref_no_such_module:build"),
            "cannot import module 'lfp_ref_no_such_module'",
        ),
        (dict(model="json:no_such_function"), "'json' has no attribute 'no_such_function'"),
        (dict(model="json:__name__"), "model factory 'json:__name__' is not callable"),
        (dict(model="alexnet"), "or a user factory 'package.module:function'"),
        (
            dict(model=MODEL, model_options={"depth": 3}),
            "got an unexpected keyword argument 'depth'",
        ),
        (dict(model=MODEL, widths=(4,)), "widths configure zoo models"),
        (dict(model="toy", model_options={"seed": 1}), "model_options may not set ['seed']"),
        (dict(model="toy", model_options={"p": np.float32(0.5)}), "must hold JSON values"),
        (dict(data="lfp_ref_no_such_module:load"), "data factory 'lfp_ref_no_such_module:load'"),
        (dict(data=DATA, data_root="/data"), "data_root is for the named datasets"),
        (dict(data="blobs", data_options={"dtype": "float64"}), "may not set ['dtype']"),
        (
            dict(rule="zplus", composite="EpsilonPlus"),
            "give one way of assigning rules, got rule and composite",
        ),
        (dict(rule="zplus", rule_for={"Conv2d": "flat"}), "got rule and rule_for"),
        (dict(composite="EpsilonPlus", rule_for={"0": "flat"}), "got composite and rule_for"),
        (dict(composite="EpsilonMinus"), "unknown composite 'EpsilonMinus'"),
        (dict(composite="EpsilonGammaBox"), "EpsilonGammaBox needs the input bounds"),
        (dict(rule="zbox"), "the zbox rule needs the input bounds"),
        (dict(rule="gamma", rule_options={"gammma": 1.0}), "gammma"),
        (dict(rule_for={"Conv2d": "nope"}), "unknown rule 'nope'"),
        (dict(rule_for={}), "rule_for is empty"),
        (
            dict(rule_for={"Conv2d": "zbox"}, rule_options={"low": 0}),
            "rule_options maps a rule name",
        ),
        (dict(method="lfp-fa"), "method must be one of lfp, gd"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_config_errors_say_what_to_do(user_module, change, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**change).validated()
    assert message in str(info.value)


def test_a_factory_must_return_a_layer_of_the_configured_dtype(user_module):
    data = sys.modules[USER_MODULE].load()
    with pytest.raises(ConfigError, match=r"returned list, not an lfp_ref layer"):
        Trainer(TrainConfig(model=f"{USER_MODULE}:not_a_layer", data=DATA), data=data, **quiet())
    with pytest.raises(ConfigError, match="built float64 parameters but the config's dtype is"):
        Trainer(TrainConfig(model=f"{USER_MODULE}:float64_always", data=DATA), **quiet())
    with pytest.raises(ConfigError, match=r"returned ndarray, not an lfp_ref.data.Dataset"):
        Trainer(TrainConfig(model="toy", data=f"{USER_MODULE}:not_a_dataset"), **quiet())


def test_cli_rule_flags_build_the_config(tmp_path):
    pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")
    out = tmp_path / "run"
    result = _cli(
        "train", "--model", "small-cnn", "--data", "digits", "--limit-train", "32", "--limit-test",
        "8", "--epochs", "1", "--batch-size", "16", "--rule-for", "Conv2d=zplus", "--rule-for",
        "default=epsilon", "--method-option", "batch_reduction=mean", "--no-progress", "--out", out,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rules Conv2d=zplus, default=epsilon" in result.stdout
    saved = read_run(out)["config"]
    assert saved["rule_for"] == {"Conv2d": "zplus", "default": "epsilon"}
    assert saved["rule"] is None and saved["method_options"] == {"batch_reduction": "mean"}
    both = _cli("train", "--rule", "zplus", "--composite", "EpsilonPlus", cwd=tmp_path)
    assert both.returncode == 2 and "give one way of assigning rules" in both.stderr


def test_toml_round_trips_every_field_including_none_and_no_clipping():
    config = TrainConfig(
        model="mlp", data="blobs", method="gd", epochs=4, batch_size=16, optimizer="adamw",
        lr=1e-3, momentum=0.0, weight_decay=1e-4, scheduler="steplr", step_size=2, gamma=0.5,
        clip=None, reward="sigmoid_loss", eps=1e-9, activation="tanh", widths=(8, 4), seed=7,
        dtype="float64", limit_train=100, limit_test=20, data_root=None, checkpoint_every=5,
        keep_checkpoints=True, eval_every=3, data_options={"n_samples": 200, "seed": 2},
        rule_options={},
    ).validated()  # fmt: skip
    text = config.to_toml()
    assert "clip = 0  # no clipping" in text and "# data_root is not set" in text
    assert "widths = [8, 4]" in text and "data_options = {n_samples = 200, seed = 2}" in text
    assert TrainConfig.from_toml(text).validated() == config
    quoted = TrainConfig(model="toy", data="blobs", data_options={"odd key": 'a "b"\n'})
    assert TrainConfig.from_toml(quoted.to_toml()).data_options == {"odd key": 'a "b"\n'}
