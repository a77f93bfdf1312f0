"""GaussianNoise: the noise drawn (against a float64 transcription), eval and sigma = 0 identity,
seeded streams, the identity feedback and backward, errors; the zoo's ``input_noise`` (off: the
same model, on: a noise layer before every Dense/Conv2d and the same weights and dropout
streams); checkpoints keep the noise stream (a resumed run equals an uninterrupted one)."""

import dataclasses

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import zoo
from lfp_ref.layers.noise import GaussianNoise
from lfp_ref.rules import Epsilon
from lfp_ref.train import TrainConfig, Trainer
from lfp_ref.train import checkpoint as ckpt

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
SIGMAS = pytest.mark.parametrize("sigma", [0.1, 1.0, 3.5], ids=lambda s: f"sigma{s}")


def rule_for(_):
    return Epsilon()


def oracle(x, sigma, seed, calls=1):
    """The outputs of ``calls`` training-mode forward calls, in float64: ``x + sigma * n``
    with ``n`` the seed's standard normal draws of x's shape, one array per call."""
    gen = np.random.default_rng(seed)
    x64 = np.asarray(x, dtype=np.float64)
    return [x64 + sigma * gen.standard_normal(x.shape) for _ in range(calls)]


@DTYPES
@SIGMAS
def test_training_forward_adds_the_seeded_noise(rng, sigma, dtype):
    x = rng.normal(size=(6, 3, 4, 5)).astype(dtype)
    layer = GaussianNoise(sigma, rng=11)
    got = [layer(x) for _ in range(3)]
    for y, expected in zip(got, oracle(x, sigma, 11, calls=3)):
        assert y.dtype == dtype and y.shape == x.shape
        if dtype == np.float64:
            np.testing.assert_array_equal(y, expected)
        else:  # the noise is rounded to float32, then added in float32: within 1 ulp of y
            np.testing.assert_allclose(y, expected, rtol=2 * np.finfo(np.float32).eps, atol=1e-6)
    # each call draws afresh
    assert not np.array_equal(got[0], got[1])
    # the noise has the stated standard deviation
    big = np.zeros((200, 500))
    noise = GaussianNoise(sigma, rng=0)(big)
    assert abs(noise.std() / sigma - 1) < 0.01 and abs(noise.mean()) < 0.01 * sigma


def test_same_seed_same_stream_other_seed_other_stream(rng):
    x = rng.normal(size=(8, 7))
    a, b, c = GaussianNoise(0.5, rng=3), GaussianNoise(0.5, rng=3), GaussianNoise(0.5, rng=4)
    for _ in range(3):  # the whole sequence repeats, not just the first draw
        ya, yb, yc = a(x), b(x), c(x)
        np.testing.assert_array_equal(ya, yb)
        assert not np.array_equal(ya, yc)
    seeded = GaussianNoise(0.5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(seeded(x), GaussianNoise(0.5, rng=3)(x))


def test_noise_does_not_depend_on_the_dtype(rng):
    x = rng.normal(size=(5, 9))
    y64 = GaussianNoise(0.2, rng=1)(x)
    y32 = GaussianNoise(0.2, rng=1)(x.astype(np.float32))
    np.testing.assert_allclose(y32, y64, rtol=1e-6, atol=1e-6)


def test_eval_mode_and_sigma_zero_are_the_identity_and_draw_nothing(rng):
    x = rng.normal(size=(4, 6))
    for layer in (GaussianNoise(0.3, rng=2).eval(), GaussianNoise(0.0, rng=2)):
        before = layer.rng.bit_generator.state
        y = layer(x)
        np.testing.assert_array_equal(y, x)
        assert y is not x  # a copy, as Dropout's eval mode
        assert layer.rng.bit_generator.state == before
    # back in training mode the stream starts where it was
    layer = GaussianNoise(0.3, rng=2).eval()
    layer(x)
    layer.train()
    np.testing.assert_array_equal(layer(x), oracle(x, 0.3, 2)[0])


@DTYPES
def test_feedback_and_backward_hand_the_values_through(rng, dtype):
    layer = GaussianNoise(0.7, rng=5)
    x = rng.normal(size=(3, 4, 2)).astype(dtype)
    layer(x)
    reward = rng.normal(size=x.shape).astype(dtype)
    reward_in, params = layer.feedback(reward, rule_for)
    assert params == {}
    np.testing.assert_array_equal(reward_in, reward)
    grad_in, grads = layer.backward(reward)
    assert grads == {}
    np.testing.assert_array_equal(grad_in, reward)


def test_lfp_and_backprop_see_the_noisy_input(rng):
    """A noise layer in front of a Dense: feedback and gradients equal those of the model
    without it fed ``x + noise`` (the noise the layer drew), so nothing else changes."""
    noisy = lfp.Sequential(
        GaussianNoise(0.3, rng=9),
        lfp.Dense(5, 6, rng=rng),
        lfp.Tanh(),
        lfp.Dense(6, 3, rng=rng),
    )
    plain = lfp.Sequential(noisy[1], noisy[2], noisy[3])
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    shifted = oracle(x, 0.3, 9, calls=2)
    fb = lfp.feedback(noisy, x, y)
    fb_plain = lfp.feedback(plain, shifted[0], y)
    g = lfp.gradients(noisy, x, y)  # the second draw
    g_plain = lfp.gradients(plain, shifted[1], y)
    for name in ("weight", "bias"):
        for i in (1, 3):
            np.testing.assert_array_equal(
                fb.params[f"{i}.{name}"], fb_plain.params[f"{i - 1}.{name}"]
            )
            np.testing.assert_array_equal(
                g.params[f"{i}.{name}"], g_plain.params[f"{i - 1}.{name}"]
            )
    np.testing.assert_array_equal(fb.input_reward, fb_plain.input_reward)
    np.testing.assert_array_equal(g.input_grad, g_plain.input_grad)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf"), "big", None, True], ids=repr)
def test_bad_sigma_is_rejected(sigma):
    with pytest.raises(ValueError, match=r"finite standard deviation sigma >= 0"):
        GaussianNoise(sigma)


def test_reverse_before_forward_and_wrong_shape_explain(rng):
    with pytest.raises(RuntimeError, match="forward pass first"):
        GaussianNoise(0.1).feedback(np.ones(3), rule_for)
    layer = GaussianNoise(0.1, rng=0)
    layer(rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match=r"the input's shape \(4, 3\)"):
        layer.backward(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"the input's shape \(4, 3\)"):
        layer.feedback(np.ones((3, 4)), rule_for)


def test_repr_and_export():
    assert repr(GaussianNoise(0.25)) == "GaussianNoise(sigma=0.25)"
    assert lfp.GaussianNoise is GaussianNoise
    assert "GaussianNoise" in lfp.layers.__all__


# --------------------------------------------------------------------------------------------
# the zoo's input_noise

ZOO_CASES = [
    ("toy", (2,), {}),
    ("mlp", (1, 8, 8), {"widths": (12, 7)}),
    ("lenet", (1, 28, 28), {}),
    ("lenet-5", (1, 28, 28), {}),
]


def _layers(model):
    return [(name, type(layer).__name__, repr(layer)) for name, layer in model.named_layers()]


@pytest.mark.parametrize(("name", "shape", "kw"), ZOO_CASES, ids=[c[0] for c in ZOO_CASES])
def test_input_noise_off_builds_the_same_model(name, shape, kw):
    default = zoo.build(name, num_classes=4, input_shape=shape, seed=3, **kw)
    off = zoo.build(name, num_classes=4, input_shape=shape, seed=3, input_noise=0.0, **kw)
    assert _layers(off) == _layers(default)
    assert not any(isinstance(layer, GaussianNoise) for _, layer in off.named_layers())
    a, b = default.state_dict(), off.state_dict()
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert ckpt.rng_layers(default).keys() == ckpt.rng_layers(off).keys()
    for key, layer in ckpt.rng_layers(default).items():
        assert layer.rng.bit_generator.state == ckpt.rng_layers(off)[key].rng.bit_generator.state


@pytest.mark.parametrize(("name", "shape", "kw"), ZOO_CASES, ids=[c[0] for c in ZOO_CASES])
def test_input_noise_on_inserts_a_noise_layer_before_every_dense_and_conv(name, shape, kw):
    plain = zoo.build(name, num_classes=4, input_shape=shape, seed=3, activation="step", **kw)
    noisy = zoo.build(
        name, num_classes=4, input_shape=shape, seed=3, activation="step", input_noise=0.2, **kw
    )
    layers = list(noisy)
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, (lfp.Dense, lfp.Conv2d))]
    assert weighted
    for i in weighted:
        assert isinstance(layers[i - 1], GaussianNoise) and layers[i - 1].sigma == 0.2
    noise_layers = [layer for layer in layers if isinstance(layer, GaussianNoise)]
    assert len(noise_layers) == len(weighted)
    # without the noise layers it is the same model: the same weights in the same order ...
    assert [type(x).__name__ for x in layers if not isinstance(x, GaussianNoise)] == [
        type(x).__name__ for x in plain
    ]
    values = list(noisy.parameters().values())
    assert len(values) == len(plain.parameters())
    for got, expected in zip(values, plain.parameters().values()):
        np.testing.assert_array_equal(got, expected)
    # ... and the same dropout streams; every noise layer has a stream of its own
    plain_dropouts = [x for x in plain if isinstance(x, lfp.Dropout)]
    noisy_dropouts = [x for x in layers if isinstance(x, lfp.Dropout)]
    for a, b in zip(plain_dropouts, noisy_dropouts):
        assert a.rng.bit_generator.state == b.rng.bit_generator.state
    states = [str(layer.rng.bit_generator.state) for layer in noise_layers]
    assert len(set(states)) == len(states)
    # eval mode: the noise-free network; training mode with the dropouts off: only the noise
    x = np.random.default_rng(0).normal(size=(5, *shape)).astype(np.float32)
    np.testing.assert_array_equal(noisy.eval()(x), plain.eval()(x))
    for layer in noise_layers:
        layer.train()
    assert not np.array_equal(noisy(x), plain(x))


def test_input_noise_errors():
    with pytest.raises(ValueError, match="input_noise needs a finite standard deviation"):
        zoo.build("mlp", num_classes=3, input_shape=(4,), input_noise=-1.0)
    with pytest.raises(ValueError, match="non-spiking flat models"):
        zoo.build("snn-mlp", num_classes=3, input_shape=(4,), input_noise=0.1)
    with pytest.raises(ValueError, match="flat models"):
        zoo.build("resnet-tiny", num_classes=3, input_shape=(3, 8, 8), input_noise=0.1)
    # the option set of every model is unchanged (input_noise is a keyword of build)
    assert "input_noise" not in zoo.known_options("mlp")


# --------------------------------------------------------------------------------------------
# checkpoints


def _noisy_config(**kw):
    return TrainConfig(
        model="mlp",
        data="digits",
        widths=(16,),
        activation="step",
        model_options={"input_noise": 0.1},
        epochs=2,
        batch_size=64,
        limit_train=320,
        limit_test=64,
        lr=0.05,
        dtype="float64",
        **kw,
    )


def test_checkpoint_keeps_the_noise_stream(tmp_path):
    """A run stopped mid-epoch and resumed from its checkpoint equals the uninterrupted run bit
    for bit: the checkpoint holds every noise layer's Generator state."""
    quiet = {"progress": False, "log": lambda *a: None}
    straight = Trainer(_noisy_config(), out=tmp_path / "straight", **quiet)
    straight.run()
    stopped = Trainer(_noisy_config(), out=tmp_path / "stopped", **quiet)
    stopped.run(max_steps=3)  # mid-epoch (5 batches per epoch)
    state = ckpt.load(tmp_path / "stopped" / "last.npz")
    noise_names = [n for n, x in stopped.model.named_layers() if isinstance(x, GaussianNoise)]
    assert noise_names and {f"rng/{n}" for n in noise_names} <= set(state)
    resumed = Trainer.resume(tmp_path / "stopped", **quiet)
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # the noise matters: the same run without it ends elsewhere
    plain = Trainer(
        dataclasses.replace(_noisy_config(), model_options={}), out=tmp_path / "plain", **quiet
    )
    plain.run()
    assert any(
        not np.array_equal(value, other)
        for value, other in zip(a.values(), plain.model.state_dict().values())
    )
