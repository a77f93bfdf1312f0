"""The registry of training methods: lfp and gd are one engine step each, a method registered
from outside trains through ``fit`` without touching the trainer, and a method's own state is
checkpointed and restored bit for bit."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from lfp_ref import engine, methods, zoo
from lfp_ref.data import batches, load
from lfp_ref.optim import SGD
from lfp_ref.train import ConfigError, TrainConfig, Trainer, fit, read_run
from lfp_ref.train import checkpoint as ckpt
from lfp_ref.train import trainer as trainer_module


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


@pytest.fixture
def register():
    """Register methods for one test; they are gone afterwards (other tests list the names)."""
    names = []

    def add(name, factory):
        methods.register_method(name, factory)
        names.append(name)
        return factory

    yield add
    for name in names:
        methods.unregister_method(name)


DATA = load("blobs", n_samples=80, dtype=np.float64)
CONFIG = dict(model="toy", data="blobs", epochs=2, batch_size=16, lr=0.05, dtype="float64")


def _by_hand(step, steps=None, **changes):
    """Replay the trainer's data order on a fresh toy model with ``step(model, opt, x, y)``."""
    c = TrainConfig(**{**CONFIG, **changes}).validated()
    model = zoo.build("toy", num_classes=2, input_shape=(2,), seed=c.seed, dtype=np.float64)
    optimizer = SGD(model, lr=c.lr, momentum=c.momentum)
    done = 0
    for epoch in range(c.epochs):
        for xb, yb in batches(DATA.x_train, DATA.y_train, c.batch_size, seed=c.seed, epoch=epoch):
            if steps is not None and done == steps:
                return model
            step(model, optimizer, xb, yb)
            done += 1
    return model


def _assert_same_weights(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for name, value in state_a.items():
        assert value.tobytes() == state_b[name].tobytes(), name


def _same_checkpoints(a, b):
    state_a, state_b = ckpt.load(a), ckpt.load(b)
    for state in (state_a, state_b):
        del state["trainer/sum_seconds"]
    if sorted(state_a) != sorted(state_b):
        return False
    for key, value in state_a.items():
        other = state_b[key]
        if isinstance(value, np.ndarray):
            if value.dtype != other.dtype or value.tobytes() != other.tobytes():
                return False
        elif value != other:
            return False
    return True


# --------------------------------------------------------------------------------------------
# the registry


def test_the_built_in_methods_are_registered():
    assert methods.known_methods()[:2] == ("lfp", "gd")
    assert methods.get_method("LFP") is methods.LFP
    with pytest.raises(ValueError, match="method must be one of lfp, gd, .*got 'nosuch'"):
        methods.get_method("nosuch")


def test_registering_a_taken_name_needs_replace(register):
    def factory(config, model):
        return methods.GradientDescent(config, model)

    with pytest.raises(ValueError, match="'lfp' is already registered"):
        methods.register_method("lfp", factory)
    assert methods.get_method("lfp") is methods.LFP
    with pytest.raises(TypeError, match="must be callable"):
        methods.register_method("broken", 42)
    assert register("twice", factory) is factory
    methods.register_method("twice", factory)  # the same factory again is fine
    methods.register_method("twice", methods.LFP, replace=True)
    assert methods.get_method("TWICE") is methods.LFP
    decorated = methods.register_method("decorated")(factory)
    register("decorated", decorated)
    assert decorated is factory and "decorated" in methods.known_methods()


def test_the_trainer_knows_no_method_by_name():
    source = inspect.getsource(trainer_module)
    for text in ("lfp_step", "gd_step", "method ==", 'method in ("'):
        assert text not in source


# --------------------------------------------------------------------------------------------
# the built-in methods are one engine step each


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_lfp_is_one_lfp_step(reduction):
    changes = {"method_options": {"batch_reduction": reduction}} if reduction == "mean" else {}
    trainer = fit(TrainConfig(**CONFIG, **changes), data=DATA, **quiet())

    def step(model, optimizer, x, y):
        engine.lfp_step(model, optimizer, x, y, reward="softmax_loss", eps=1e-6, clip_norm=3.0,
                        batch_reduction=reduction)  # fmt: skip

    _assert_same_weights(trainer.model, _by_hand(step))


def test_gd_is_one_gd_step():
    trainer = fit(TrainConfig(**CONFIG, method="gd"), data=DATA, **quiet())

    def step(model, optimizer, x, y):
        engine.gd_step(model, optimizer, x, y, loss="cross_entropy", clip_norm=3.0)

    _assert_same_weights(trainer.model, _by_hand(step))


def test_unknown_method_options_are_a_config_error():
    config = TrainConfig(**CONFIG, method_options={"batch_reduce": "mean"})
    with pytest.raises(ConfigError, match=r"has no options \['batch_reduce'\]; its options: batch"):
        Trainer(config, data=DATA, **quiet())
    with pytest.raises(ConfigError, match="its options: none"):
        Trainer(TrainConfig(**{**CONFIG, "method": "gd"}, method_options={"x": 1}), data=DATA)


# --------------------------------------------------------------------------------------------
# methods registered from outside the package


class SignSGD(methods.Method):
    """Descend the sign of the cross-entropy gradient."""

    def step(self, model, optimizer, x, y):
        g = engine.gradients(model, x, y, input_grad=False)
        optimizer.step({name: np.sign(value) for name, value in g.params.items()})
        return methods.StepResult(g.logits, self.reward(g.logits, y))


def test_a_registered_method_trains_through_fit(register, tmp_path):
    register("sign-sgd", SignSGD)
    config = TrainConfig(**{**CONFIG, "method": "Sign-SGD"})
    trainer = fit(config, data=DATA, out=tmp_path, **quiet())
    assert trainer.config.method == "sign-sgd" and len(trainer.history) == 2

    def step(model, optimizer, x, y):
        g = engine.gradients(model, x, y, input_grad=False)
        optimizer.step({name: np.sign(value) for name, value in g.params.items()})

    _assert_same_weights(trainer.model, _by_hand(step))
    assert read_run(tmp_path)["config"]["method"] == "sign-sgd"
    assert Trainer.resume(tmp_path, data=DATA, **quiet()).done


class JitterLFP(methods.Method):
    """The LFP step scaled by a random factor from the method's own Generator: state that a
    checkpoint must hold (as Feedback Alignment's fixed random matrices will be)."""

    options = {"spread": 0.5}

    def __init__(self, config, model):
        super().__init__(config, model)
        self.rng = np.random.default_rng([config.seed, 7])
        self.scales = np.zeros(0)

    def step(self, model, optimizer, x, y):
        scale = 1.0 + self.settings["spread"] * self.rng.uniform(-1.0, 1.0)
        fb = engine.feedback(model, x, y, reward=self.reward, eps=self.config.eps,
                             input_reward=False)  # fmt: skip
        optimizer.step(fb.params, scale=-scale)  # ascend the feedback: g = -F
        self.scales = np.append(self.scales, scale)
        return methods.StepResult(fb.logits, fb.reward)

    def state_dict(self):
        return {"rng": json.dumps(self.rng.bit_generator.state), "scales": self.scales}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.scales = np.array(state["scales"])


def test_a_methods_state_is_checkpointed_and_resumed_bit_for_bit(register, tmp_path):
    register("jitter-lfp", JitterLFP)
    config = TrainConfig(**CONFIG, method="jitter-lfp", method_options={"spread": 0.9},
                         checkpoint_every=3)  # fmt: skip
    fit(config, data=DATA, out=tmp_path / "straight", **quiet())
    fit(config, data=DATA, out=tmp_path / "stopped", max_steps=5, **quiet())
    saved = ckpt.load(tmp_path / "stopped" / "last.npz")
    assert saved["method/scales"].shape == (5,) and "method/rng" in saved
    for stop in (7, None):
        Trainer.resume(tmp_path / "stopped", data=DATA, **quiet()).run(max_steps=stop)
    assert _same_checkpoints(tmp_path / "straight" / "last.npz", tmp_path / "stopped" / "last.npz")
    assert ckpt.load(tmp_path / "straight" / "last.npz")["method/scales"].shape == (
        8,
    )  # 2 epochs of 4 batches


def test_without_its_state_the_resumed_method_differs(register, tmp_path, monkeypatch):
    """The state matters: a resume that ignores it leaves the uninterrupted trajectory."""
    register("jitter-lfp", JitterLFP)
    config = TrainConfig(**CONFIG, method="jitter-lfp")
    fit(config, data=DATA, out=tmp_path / "straight", **quiet())
    fit(config, data=DATA, out=tmp_path / "stopped", max_steps=5, **quiet())
    monkeypatch.setattr(JitterLFP, "load_state_dict", lambda self, state: None)
    Trainer.resume(tmp_path / "stopped", data=DATA, **quiet()).run()
    assert not _same_checkpoints(
        tmp_path / "straight" / "last.npz", tmp_path / "stopped" / "last.npz"
    )


def test_a_state_that_does_not_fit_the_method_is_refused(register, tmp_path):
    register("jitter-lfp", JitterLFP)
    fit(TrainConfig(**CONFIG, method="jitter-lfp"), data=DATA, out=tmp_path, max_steps=2,
        **quiet())  # fmt: skip
    lfp = Trainer(TrainConfig(**CONFIG), data=DATA, **quiet())
    state = ckpt.load(tmp_path / "last.npz")
    with pytest.raises(ckpt.CheckpointError, match="does not fit the method LFP"):
        ckpt.restore(state, lfp.model, lfp.optimizer, method=lfp.method)
    with pytest.raises(ckpt.CheckpointError, match="holds a training method's state"):
        ckpt.restore(state, lfp.model, lfp.optimizer)


def test_stateless_methods_add_nothing_to_the_checkpoint(tmp_path):
    fit(TrainConfig(**{**CONFIG, "epochs": 1}), data=DATA, out=tmp_path, **quiet())
    assert not [key for key in ckpt.load(tmp_path / "last.npz") if key.startswith("method/")]
