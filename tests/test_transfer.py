"""Transfer learning in the trainer: ``TrainConfig.init_from`` copies a run's weights exactly,
``TrainConfig.trainable`` freezes exactly the other parameters (lfp, gd, fa; momentum and weight
decay included) while LFP's reward still reaches trainable layers below frozen ones, clipping
counts the trainable parameters only, errors name what is wrong, and a run using both resumes
bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lfp_ref import data as lfp_data
from lfp_ref import engine
from lfp_ref.optim import clip_coefficient
from lfp_ref.train import ConfigError, TrainConfig, Trainer, fit, read_run
from lfp_ref.train import checkpoint as ckpt
from lfp_ref.train.trainer import build_model
from tests.test_train import _assert_same_run, image_data, quiet

#: LeNet's parameters: convolutions 0 and 3, the dense head 7, 10, 13
HEAD = ["7", "10", "13"]
CONV = ["0.weight", "0.bias", "3.weight", "3.bias"]


def lenet(**changes):
    values = dict(model="lenet", data="images", epochs=1, batch_size=8)
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A short LeNet run on 4 classes: the weights to start from."""
    out = tmp_path_factory.mktemp("source") / "run"
    fit(lenet(method="gd", keep_checkpoints=True, epochs=2), data=image_data(), out=out, **quiet())
    return out


def test_init_from_a_run_folder_copies_its_last_weights_exactly(source, tmp_path):
    trainer = Trainer(lenet(init_from=str(source), seed=5), data=image_data(seed=1), **quiet())
    saved = ckpt.load(source / "last.npz")
    state = trainer.model.state_dict()
    assert sorted(state) == sorted(k[6:] for k in saved if k.startswith("model/"))
    for name, value in state.items():
        assert value.dtype == saved[f"model/{name}"].dtype
        assert value.tobytes() == saved[f"model/{name}"].tobytes(), name
    # not the seed's weights: the copy did something
    fresh = build_model(lenet(seed=5).validated(), image_data())
    assert fresh.state_dict()["0.weight"].tobytes() != state["0.weight"].tobytes()


def test_init_from_a_checkpoint_file_and_what_config_json_records(source, tmp_path):
    file = source / "epoch-001.npz"
    trainer = fit(lenet(init_from=str(file)), data=image_data(), out=tmp_path / "b", **quiet())
    saved = read_run(tmp_path / "b")
    assert saved["config"]["init_from"] == str(file)
    info = json.loads((tmp_path / "b" / "config.json").read_text())["info"]["init_from"]
    assert info["checkpoint"] == str(file.resolve()) and (info["epoch"], info["step"]) == (1, 5)
    assert info["step"] == 5 and len(info["weights_sha256"]) == 16
    # the run's first checkpoint (step 0) is that file's weights: a rerun of the sweep or a
    # resume never needs the source again
    assert trainer.step == 5


def test_init_from_casts_to_the_run_dtype(source):
    trainer = Trainer(lenet(init_from=str(source), dtype="float64"), data=image_data(), **quiet())
    saved = ckpt.load(source / "last.npz")["model/13.weight"]
    got = trainer.model.state_dict()["13.weight"]
    assert got.dtype == np.float64 and np.array_equal(got, saved.astype(np.float64))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(init_from=""), "init_from must be a run folder or a checkpoint file"),
        (dict(init_from=3), "init_from must be a run folder or a checkpoint file"),
        (dict(trainable="7"), "trainable must be a list of layer names"),
        (dict(trainable=[]), "trainable is empty"),
        (dict(trainable=["7", "7"]), "trainable lists ['7'] more than once"),
        (dict(trainable=["7."]), "trainable entries are layer names or dotted name prefixes"),
        (dict(trainable=[7]), "trainable entries are layer names"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_config_errors(changes, message):
    with pytest.raises(ConfigError) as info:
        lenet(**changes).validated()
    assert message in str(info.value)


def test_errors_against_the_model(source, tmp_path):
    data = image_data()
    with pytest.raises(ConfigError, match=r"no run folder or checkpoint file at .*nowhere"):
        Trainer(lenet(init_from=str(tmp_path / "nowhere")), data=data, **quiet())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no checkpoint \(last.npz\)"):
        Trainer(lenet(init_from=str(tmp_path / "empty")), data=data, **quiet())
    # 3 classes here, 4 in the source: the output layer is named, with both shapes
    with pytest.raises(ConfigError) as info:
        Trainer(lenet(init_from=str(source)), data=image_data(classes=3), **quiet())
    text = str(info.value)
    assert "layer '13' (Dense(84, 3))" in text and "(3, 84)" in text and "(4, 84)" in text
    # another architecture
    with pytest.raises(ConfigError, match=r"has no '0.weight'|has '0.weight' of shape"):
        Trainer(lenet(model="lenet-5", init_from=str(source)), data=data, **quiet())
    # a name that selects nothing: the layers with parameters are listed; "1" is not "10"
    with pytest.raises(ConfigError) as info:
        Trainer(lenet(trainable=["13", "1"]), data=data, **quiet())
    assert "['1'] select no parameter" in str(info.value)
    assert "['0', '3', '7', '10', '13']" in str(info.value)


def _fresh_weights(config, data):
    return build_model(config.validated(), data).state_dict()


@pytest.mark.parametrize("method", ["lfp", "gd", "fa"])
@pytest.mark.parametrize("trainable", [HEAD, ["0", "13.bias"]], ids=["head", "conv0-and-a-bias"])
def test_trainable_freezes_exactly_the_other_parameters(method, trainable, tmp_path):
    data = image_data()
    config = lenet(method=method, trainable=trainable, epochs=2, weight_decay=1e-2, lr=0.05)
    before = _fresh_weights(config, data)
    trainer = fit(config, data=data, out=tmp_path / "run", **quiet())
    after = trainer.model.state_dict()
    selected = {n for n in after if any(n == e or n.startswith(e + ".") for e in trainable)}
    assert trainer.trainable == [n for n in after if n in selected]
    for name in after:
        same = after[name].tobytes() == before[name].tobytes()
        assert same == (name not in selected), name
    # the optimizer holds state (momentum) for the trainable parameters only
    saved = ckpt.load(tmp_path / "run" / "last.npz")
    momentum = {k.split("/")[2] for k in saved if k.startswith("optimizer/state/")}
    assert momentum == selected
    assert json.loads((tmp_path / "run" / "config.json").read_text())["info"][
        "trainable_parameters"
    ] == [n for n in after if n in selected]


def test_every_layer_listed_is_the_same_run_as_none(tmp_path):
    """The trainable view clips and steps exactly as the engine does: listing every layer
    changes nothing, bit for bit (with the clipping active: clip 0.01)."""
    data = image_data()
    every = ["0", "3", "7", "10", "13"]
    fit(lenet(trainable=every, clip=0.01), data=data, out=tmp_path / "a", **quiet())
    fit(lenet(clip=0.01), data=data, out=tmp_path / "b", **quiet())
    a, b = ckpt.load(tmp_path / "a" / "last.npz"), ckpt.load(tmp_path / "b" / "last.npz")
    for key in a:
        if key.startswith(("model/", "optimizer/")):
            assert np.asarray(a[key]).tobytes() == np.asarray(b[key]).tobytes(), key


@pytest.mark.parametrize("method", ["lfp", "gd"])
def test_reward_passes_frozen_layers_and_clipping_counts_the_trainable_ones(method, tmp_path):
    """Only the first convolution trains: its update is the whole model's feedback (gradient)
    for it, so the reward went down through every frozen layer above, and the clipping factor
    is that of its own norm (the clip of 1e-3 is active)."""
    data = image_data()
    config = lenet(
        model="lenet-5", method=method, trainable=["0"], batch_size=40, momentum=0.0, clip=1e-3
    )
    trainer = Trainer(config, data=data, out=tmp_path / "run", **quiet())
    model = build_model(trainer.config, data)  # the same weights
    xb, yb = next(iter(lfp_data.batches(trainer.x_train, trainer.y_train, 40, seed=0, epoch=0)))
    if method == "lfp":
        out = engine.feedback(model, xb, yb, reward="softmax_loss", eps=1e-6, input_reward=False)
        direction = {k: v for k, v in out.params.items()}  # ascend F
    else:
        out = engine.gradients(model, xb, yb, input_grad=False)
        direction = {k: -v for k, v in out.params.items()}  # descend g
    own = {k: out.squared_norms[k] for k in ("0.weight", "0.bias")}
    factor, _ = clip_coefficient(own, 1e-3)
    everything, _ = clip_coefficient(out.squared_norms, 1e-3)
    assert factor < 1.0 and factor != pytest.approx(everything, rel=1e-3)
    before = model.state_dict()
    trainer.run(max_steps=1)  # the first batch: xb, yb
    after = trainer.model.state_dict()
    for name in ("0.weight", "0.bias"):
        expected = before[name] + config.lr * factor * direction[name]
        assert np.abs(direction[name]).max() > 0
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-7)
    for name in after:
        if not name.startswith("0."):
            assert after[name].tobytes() == before[name].tobytes(), name


RESUME_STOPS = (3, 7)  # mid-epoch (5 batches per epoch), then into the second epoch


@pytest.mark.parametrize("method", ["lfp", "gd"])
def test_a_run_with_init_from_and_trainable_resumes_bit_for_bit(source, tmp_path, method):
    data = image_data(seed=2)
    config = lenet(
        method=method, init_from=str(source), trainable=HEAD, epochs=2, checkpoint_every=2
    )
    fit(config, data=data, out=tmp_path / "straight", **quiet())
    fit(config, data=data, out=tmp_path / "stopped", max_steps=RESUME_STOPS[0], **quiet())
    previous = RESUME_STOPS[0]
    for stop in (*RESUME_STOPS[1:], None):
        trainer = Trainer.resume(tmp_path / "stopped", data=data, **quiet())
        assert trainer.step == previous and trainer.config.trainable == tuple(HEAD)
        trainer.run(max_steps=stop)
        previous = stop
    _assert_same_run(tmp_path / "straight", tmp_path / "stopped")
    # the convolutions are still the source's, in both runs
    saved = ckpt.load(source / "last.npz")
    final = ckpt.load(tmp_path / "stopped" / "last.npz")
    for name in CONV:
        assert final[f"model/{name}"].tobytes() == saved[f"model/{name}"].tobytes()


def test_resume_does_not_need_the_source_again(source, tmp_path):
    """init_from is read when a run starts; a resumed run takes its weights from its own
    checkpoint, so moving the source away changes nothing."""
    import shutil

    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    data = image_data()
    config = lenet(init_from=str(copy), epochs=2)
    fit(config, data=data, out=tmp_path / "straight", **quiet())
    fit(config, data=data, out=tmp_path / "stopped", max_steps=2, **quiet())
    shutil.rmtree(copy)
    Trainer.resume(tmp_path / "stopped", data=data, **quiet()).run()
    _assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_config_round_trips(tmp_path):
    config = lenet(init_from=str(tmp_path), trainable=["7", "13.bias"]).validated()
    assert config.trainable == ("7", "13.bias")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig.from_toml(config.to_toml()).validated() == config
    assert TrainConfig.from_dict({"model": "toy", "data": "blobs"}).trainable is None
