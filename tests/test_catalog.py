"""One model catalog: every model the cross-checks, the benchmarks and the rule study used to build
with builders of their own is built by ``lfp_ref.zoo`` bit for bit as before.

The old builders are copied below verbatim (from commit 4171665: ``lfp_ref/verify/crosscheck.py``,
``benchmarks/models.py``, ``figures/rule_study.py``) as the reference. For each model the test
compares the layer sequence (dotted names, classes, reprs, train/eval flags), every parameter
and buffer (names, order, dtype, bytes), the Dropout layers' Generators (shared with the init
Generator or not, and their state), and the init Generator's state afterwards (so whatever is
drawn next, the cross-checks' input batch, is the same too). The old benchmark torch converter
``torch_twin`` is compared with ``lfp_ref.verify.interop.to_torch`` the same way.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmarks import models as bench
from lfp_ref import zoo
from lfp_ref.layers.activations import ReLU
from lfp_ref.layers.base import as_rng
from lfp_ref.layers.containers import Residual, Sequential
from lfp_ref.layers.conv import Conv2d
from lfp_ref.layers.dense import Dense
from lfp_ref.layers.dropout import Dropout
from lfp_ref.layers.norm import BatchNorm1d, BatchNorm2d
from lfp_ref.layers.pool import AvgPool2d, MaxPool2d
from lfp_ref.layers.reshape import Flatten
from lfp_ref.verify import crosscheck as cc

# --------------------------------------------------------------------------- the old builders
# lfp_ref/verify/crosscheck.py at 4171665


def old_randomize_batchnorm(model, rng):
    for _, layer in model.named_layers():
        if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
            shape = layer.weight.shape
            layer.weight[...] = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
            layer.bias[...] = rng.uniform(-0.5, 0.5, shape)
            layer.running_mean[...] = rng.uniform(-0.3, 0.3, shape)
            layer.running_var[...] = rng.uniform(0.5, 2.0, shape)
    return model


def old_cc_mlp(rng):
    return Sequential(
        Dense(10, 16, rng=rng), ReLU(),
        Dense(16, 12, rng=rng), ReLU(),
        Dense(12, 5, rng=rng),
    )  # fmt: skip


def old_cc_lenet(rng):
    return Sequential(
        Conv2d(1, 4, 5, padding=2, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(4, 8, 5, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(),
        Dense(8 * 2 * 2, 24, rng=rng), ReLU(), Dropout(0.5, rng=rng),
        Dense(24, 10, rng=rng),
    ).eval()  # fmt: skip


def old_cc_vgg_small(rng):
    return old_randomize_batchnorm(
        Sequential(
            Conv2d(3, 8, 3, padding=1, bias=False, rng=rng), BatchNorm2d(8), ReLU(),
            Conv2d(8, 8, 3, padding=1, bias=False, rng=rng), BatchNorm2d(8), ReLU(),
            MaxPool2d(2),
            Conv2d(8, 16, 3, padding=1, bias=False, rng=rng), BatchNorm2d(16), ReLU(),
            AvgPool2d(2),
            Flatten(),
            Dense(16 * 2 * 2, 16, bias=False, rng=rng), BatchNorm1d(16), ReLU(),
            Dense(16, 6, rng=rng),
        ),
        rng,
    ).train()  # fmt: skip


def old_cc_resnet_small(rng):
    def conv_bn(c_in, c_out, k, stride=1):
        return [Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False, rng=rng),
                BatchNorm2d(c_out)]  # fmt: skip

    return old_randomize_batchnorm(
        Sequential(
            *conv_bn(3, 8, 3), ReLU(),
            Residual(Sequential(*conv_bn(8, 8, 3), ReLU(), *conv_bn(8, 8, 3))),
            ReLU(),
            Residual(
                Sequential(*conv_bn(8, 16, 3, stride=2), ReLU(), *conv_bn(16, 16, 3)),
                shortcut=Sequential(*conv_bn(8, 16, 1, stride=2)),
            ),
            ReLU(),
            AvgPool2d(4),
            Flatten(),
            Dense(16, 6, rng=rng),
        ),
        rng,
    ).eval()  # fmt: skip


OLD_CROSSCHECK = {
    "mlp": (old_cc_mlp, (10,), 5),
    "lenet": (old_cc_lenet, (1, 16, 16), 10),
    "vgg-small": (old_cc_vgg_small, (3, 8, 8), 6),
    "resnet-small": (old_cc_resnet_small, (3, 8, 8), 6),
}


def old_build_model(name, seed=0, batch_size=8):
    build, input_shape, num_classes = OLD_CROSSCHECK[name]
    rng = as_rng(seed)
    model = build(rng)
    x = rng.normal(size=(int(batch_size), *input_shape))
    y = rng.integers(0, num_classes, size=int(batch_size))
    return model, x, y, rng


# benchmarks/models.py at 4171665


def old_mlp(widths, dtype, rng):
    layers = [Flatten()]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Dense(n_in, n_out, dtype=dtype, rng=rng))
        if i < len(widths) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def old_lenet5(dtype, rng):
    return Sequential(
        Conv2d(1, 6, 5, dtype=dtype, rng=rng),
        ReLU(),
        AvgPool2d(2),
        Conv2d(6, 16, 5, dtype=dtype, rng=rng),
        ReLU(),
        AvgPool2d(2),
        Flatten(),
        Dense(256, 120, dtype=dtype, rng=rng),
        ReLU(),
        Dense(120, 84, dtype=dtype, rng=rng),
        ReLU(),
        Dense(84, 10, dtype=dtype, rng=rng),
    )


def old_lenet_paper(dtype, rng):
    return Sequential(
        Conv2d(1, 16, 5, dtype=dtype, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Conv2d(16, 16, 5, dtype=dtype, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Dense(256, 120, dtype=dtype, rng=rng),
        ReLU(),
        Dropout(0.5, rng=rng),
        Dense(120, 84, dtype=dtype, rng=rng),
        ReLU(),
        Dropout(0.5, rng=rng),
        Dense(84, 10, dtype=dtype, rng=rng),
    )


def old_vgg_small(dtype, rng):
    return Sequential(
        Conv2d(3, 32, 3, padding=1, dtype=dtype, rng=rng),
        ReLU(),
        Conv2d(32, 32, 3, padding=1, dtype=dtype, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1, dtype=dtype, rng=rng),
        ReLU(),
        Conv2d(64, 64, 3, padding=1, dtype=dtype, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Dense(4096, 256, dtype=dtype, rng=rng),
        ReLU(),
        Dense(256, 10, dtype=dtype, rng=rng),
    )


OLD_BENCHMARKS = {
    "mlp-1000": lambda dtype, rng: old_mlp([784, 1000, 1000, 10], dtype, rng),
    "mlp-256": lambda dtype, rng: old_mlp([784, 256, 256, 10], dtype, rng),
    "lenet-5": old_lenet5,
    "lenet-paper": old_lenet_paper,
    "vgg-small": old_vgg_small,
}


def old_torch_twin(model):
    import torch
    from torch import nn

    layers = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            layers.append(nn.Linear(layer.in_features, layer.out_features))
        elif isinstance(layer, Conv2d):
            layers.append(
                nn.Conv2d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size,
                    stride=layer.stride,
                    padding=layer.padding,
                    dilation=layer.dilation,
                )
            )
        elif isinstance(layer, ReLU):
            layers.append(nn.ReLU())
        elif isinstance(layer, AvgPool2d):
            layers.append(nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding))
        elif isinstance(layer, MaxPool2d):
            layers.append(nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding))
        elif isinstance(layer, Flatten):
            layers.append(nn.Flatten())
        elif isinstance(layer, Dropout):
            layers.append(nn.Dropout(layer.p))
        else:
            raise TypeError(f"torch_twin: no torch layer for {layer!r}")
    twin = nn.Sequential(*layers).to(getattr(torch, model.dtype.name))
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return twin


# figures/rule_study.py at 4171665


def old_small_cnn(image_size, num_classes, seed):
    rng = np.random.default_rng(seed)
    features = 16 * (image_size // 4) ** 2
    return Sequential(
        Conv2d(1, 8, 3, padding=1, rng=rng),
        ReLU(),
        AvgPool2d(2),
        Conv2d(8, 16, 3, padding=1, rng=rng),
        ReLU(),
        AvgPool2d(2),
        Flatten(),
        Dense(features, num_classes, rng=rng),
    )


# --------------------------------------------------------------------------- the comparison


def layer_sequence(model):
    return [
        (name, type(layer), repr(layer), layer.training) for name, layer in model.named_layers()
    ]


def assert_identical(new, old, new_rng=None, old_rng=None):
    """Same layers, modes, parameters and buffers (bit for bit), Dropout Generators, and (given
    the init Generators) the same init Generator state afterwards."""
    assert layer_sequence(new) == layer_sequence(old)
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state)
    for key in old_state:
        assert new_state[key].dtype == old_state[key].dtype, key
        assert new_state[key].shape == old_state[key].shape, key
        assert new_state[key].tobytes() == old_state[key].tobytes(), key
    new_dropouts = [layer for _, layer in new.named_layers() if isinstance(layer, Dropout)]
    old_dropouts = [layer for _, layer in old.named_layers() if isinstance(layer, Dropout)]
    for new_dropout, old_dropout in zip(new_dropouts, old_dropouts, strict=True):
        if old_rng is not None:
            assert (new_dropout.rng is new_rng) == (old_dropout.rng is old_rng)
        assert new_dropout.rng.bit_generator.state == old_dropout.rng.bit_generator.state
    if old_rng is not None:
        assert new_rng.bit_generator.state == old_rng.bit_generator.state


def test_the_comparison_can_fail():
    """The comparison sees a one-ulp change, a different layer, a different mode and a Dropout
    that no longer shares the init Generator."""
    model, _, _, rng = old_build_model("lenet", seed=0)
    again, _, _, rng_again = old_build_model("lenet", seed=0)
    assert_identical(again, model, rng_again, rng)
    again[0].weight[0, 0, 0, 0] = np.nextafter(again[0].weight[0, 0, 0, 0], np.inf)
    with pytest.raises(AssertionError, match="0.weight"):
        assert_identical(again, model)
    again, _, _, rng_again = old_build_model("lenet", seed=0)
    with pytest.raises(AssertionError):
        assert_identical(again.train(), model)
    again[9].rng = np.random.default_rng(rng_again.bit_generator.state["state"]["state"])
    with pytest.raises(AssertionError):
        assert_identical(again.eval(), model, rng_again, rng)
    with pytest.raises(AssertionError):
        assert_identical(old_cc_vgg_small(as_rng(0)), old_cc_vgg_small(as_rng(1)))


# --------------------------------------------------------------------------- the cross-checks


@pytest.mark.parametrize("seed", [0, 3, 12345])
@pytest.mark.parametrize("name", list(OLD_CROSSCHECK))
def test_crosscheck_models_are_the_old_ones(name, seed):
    """``build_model``: the model, and the batch it draws next from the same Generator."""
    old, old_x, old_y, _ = old_build_model(name, seed=seed, batch_size=5)
    model, x, y = cc.build_model(name, seed=seed, batch_size=5)
    assert_identical(model, old)
    assert x.dtype == old_x.dtype and x.tobytes() == old_x.tobytes()
    assert y.dtype == old_y.dtype and y.tobytes() == old_y.tobytes()


@pytest.mark.parametrize("name", list(OLD_CROSSCHECK))
def test_crosscheck_models_leave_the_generator_where_the_old_ones_did(name):
    """Through ``zoo.build`` directly, with the init Generator handed in: same Generator state
    afterwards, same Dropout Generators (lenet's shares the init Generator, as before)."""
    build, input_shape, num_classes = OLD_CROSSCHECK[name]
    old_rng, new_rng = np.random.default_rng(7), np.random.default_rng(7)
    old = build(old_rng)
    spec = cc.MODELS[name]
    assert (spec.input_shape, spec.num_classes) == (input_shape, num_classes)
    new = zoo.build(
        spec.model,
        num_classes=num_classes,
        input_shape=input_shape,
        seed=new_rng,
        dtype=np.float64,
        **spec.options,
    )
    assert_identical(new, old, new_rng, old_rng)


# --------------------------------------------------------------------------- the benchmarks


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(OLD_BENCHMARKS))
def test_benchmark_models_are_the_old_ones(name, dtype, seed):
    old_rng = np.random.default_rng(seed)
    old = OLD_BENCHMARKS[name](np.dtype(dtype), old_rng)
    assert_identical(bench.build(name, dtype, seed), old)
    spec = bench.MODELS[name]
    new_rng = np.random.default_rng(seed)
    new = zoo.build(
        spec.model,
        num_classes=10,
        input_shape=spec.input_shape,
        seed=new_rng,
        dtype=dtype,
        **spec.options,
    )
    assert_identical(new, old, new_rng, old_rng)


@pytest.mark.parametrize("width", [64, 256, 1000])
def test_the_width_sweep_mlp_is_the_old_one(width):
    old = old_mlp([784, width, width, 10], np.float32, np.random.default_rng(0))
    assert_identical(bench.build_mlp(width), old)


@pytest.mark.crosscheck
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(OLD_BENCHMARKS))
def test_to_torch_gives_the_old_torch_twin(name, dtype):
    """The benchmark peers' torch models: the same modules (reprs), weights, modes and dtype."""
    pytest.importorskip("torch", reason="needs torch: run `make crosscheck` (the crosscheck extra)")
    from lfp_ref.verify.interop import to_torch

    old = old_torch_twin(OLD_BENCHMARKS[name](np.dtype(dtype), np.random.default_rng(0)))
    new = to_torch(bench.build(name, dtype))
    assert repr(new) == repr(old)
    assert [(n, type(m), m.training) for n, m in new.named_modules()] == [
        (n, type(m), m.training) for n, m in old.named_modules()
    ]
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state)
    for key in old_state:
        assert new_state[key].dtype == old_state[key].dtype, key
        assert new_state[key].numpy().tobytes() == old_state[key].numpy().tobytes(), key


# --------------------------------------------------------------------------- the rule study


@pytest.mark.parametrize(
    ("image_size", "num_classes", "seed"), [(8, 10, 0), (28, 4, 7), (10, 3, 1)]
)
def test_small_cnn_is_the_rule_studys(image_size, num_classes, seed):
    old = old_small_cnn(image_size, num_classes, seed)
    new = zoo.build(
        "small-cnn",
        num_classes=num_classes,
        input_shape=(1, image_size, image_size),
        seed=seed,
        dtype=np.float64,
    )
    assert_identical(new, old)


# --------------------------------------------------------------------------- the training zoo

# The training zoo's own models kept their builders (refactored, not replaced): pinned as sha256
# fingerprints of what the zoo at 4171665 built (seed 3, float32, 5 classes).
ZOO_FINGERPRINTS = [
    ("toy", (2,), None, "2b0541cce96ea1d5cb131db3ac00c0f2"),
    ("mlp", (1, 8, 8), None, "c4e683cf584d3c75ab2cc65771c19b21"),
    ("lenet", (1, 28, 28), None, "6fa89afc07e57d95a7ddc8fd770d04ac"),
    ("vgg-small", (3, 16, 16), None, "892775dfe35055aad95b5775fc607e4a"),
    ("resnet-small", (2, 9, 9), (4, 6), "77d332b18f2c41765c13a2e81e29e26e"),
]


def fingerprint(model):
    """sha256 over the state dict (names, dtypes, shapes, bytes), the layer sequence (names,
    classes, modes) and the Dropout Generators' states."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(str(value.dtype).encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    for name, layer in model.named_layers():
        digest.update(f"{name}:{type(layer).__name__}:{layer.training}".encode())
        if isinstance(layer, Dropout):
            digest.update(repr(layer.rng.bit_generator.state).encode())
    return digest.hexdigest()[:32]


@pytest.mark.parametrize(
    ("name", "shape", "widths", "expected"), ZOO_FINGERPRINTS, ids=[c[0] for c in ZOO_FINGERPRINTS]
)
def test_training_zoo_models_are_the_old_ones(name, shape, widths, expected):
    model = zoo.build(name, num_classes=5, input_shape=shape, seed=3, widths=widths)
    assert fingerprint(model) == expected
