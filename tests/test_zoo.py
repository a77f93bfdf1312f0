"""The model zoo: architectures (shapes, parameter names), seeding, activations, errors; the
paper's LeNet against lfprop's (crosscheck)."""

from __future__ import annotations

import numpy as np
import pytest

from lfp_ref import zoo
from lfp_ref.engine import feedback, gradients
from lfp_ref.layers.activations import ACTIVATIONS
from lfp_ref.layers.base import NormalizationLayer, WeightedLayer
from lfp_ref.layers.containers import Residual, Sequential
from lfp_ref.layers.dropout import Dropout
from lfp_ref.layers.norm import BatchNorm2d
from lfp_ref.layers.pool import AvgPool2d
from tests.tolerances import assert_close

# (name, input_shape) pairs every test below runs over
CASES = [
    ("toy", (2,)),
    ("mlp", (1, 8, 8)),
    ("lenet", (1, 28, 28)),
    ("lenet", (3, 32, 32)),
    ("vgg-small", (3, 16, 16)),
    ("resnet-small", (1, 12, 12)),
    ("lenet-5", (1, 28, 28)),
    ("small-cnn", (1, 8, 8)),
    ("lenet-tiny", (1, 16, 16)),
    ("vgg-tiny", (3, 8, 8)),
    ("resnet-tiny", (3, 8, 8)),
]
CASE_IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape in CASES]

LENET_SHAPES = {
    # lfprop's LeNet: features (conv 16 k5, maxpool, conv 16 k5, maxpool), classifier
    # (Linear 256|400 -> 120 -> 84 -> C, dropout after the first two)
    (1, 28, 28): [(16, 1, 5, 5), (16,), (16, 16, 5, 5), (16,), (120, 256), (120,), (84, 120),
                  (84,), (10, 84), (10,)],
    (3, 32, 32): [(16, 3, 5, 5), (16,), (16, 16, 5, 5), (16,), (120, 400), (120,), (84, 120),
                  (84,), (10, 84), (10,)],
}  # fmt: skip


def _batch(shape, dtype, n=3, seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(dtype)


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_output_shape_and_dtype(name, shape, dtype):
    model = zoo.build(name, num_classes=7, input_shape=shape, dtype=dtype)
    logits = model(_batch(shape, dtype))
    assert logits.shape == (3, 7)
    assert logits.dtype == dtype
    assert all(p.dtype == dtype for _, p in model.named_parameters())
    assert model.training


@pytest.mark.parametrize("shape", list(LENET_SHAPES), ids=["1x28x28", "3x32x32"])
def test_lenet_is_the_papers(shape):
    model = zoo.build("lenet", num_classes=10, input_shape=shape)
    params = model.parameters()
    assert [p.shape for p in params.values()] == LENET_SHAPES[shape]
    assert list(params) == [f"{i}.{k}" for i in (0, 3, 7, 10, 13) for k in ("weight", "bias")]
    dropouts = [layer for layer in model if isinstance(layer, Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]


def test_toy_is_2_32_16_c():
    model = zoo.build("toy", num_classes=3, input_shape=(2,))
    assert [p.shape for p in model.parameters().values()] == [
        (32, 2), (32,), (16, 32), (16,), (3, 16), (3,)
    ]  # fmt: skip


def test_mlp_widths_are_configurable():
    model = zoo.build("mlp", num_classes=4, input_shape=(1, 5, 5), widths=(7, 6, 5))
    weights = [p.shape for name, p in model.named_parameters() if name.endswith("weight")]
    assert weights == [(7, 25), (6, 7), (5, 6), (4, 5)]


def test_resnet_small_has_residual_blocks_with_batchnorm():
    model = zoo.build("resnet-small", num_classes=5, input_shape=(2, 9, 9), widths=(4, 6))
    blocks = [layer for layer in model if isinstance(layer, Residual)]
    assert len(blocks) == 2
    assert blocks[0].shortcut is None  # same width: identity shortcut
    assert blocks[1].shortcut is not None  # width change, stride 2: 1x1 conv + BN
    assert any(isinstance(layer, BatchNorm2d) for _, layer in model.named_layers())
    assert model(_batch((2, 9, 9), np.float32)).shape == (3, 5)


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
def test_lfp_and_backprop_reach_every_parameter(name, shape):
    model = zoo.build(name, num_classes=4, input_shape=shape, dtype=np.float64)
    x, y = _batch(shape, np.float64, n=4), np.array([0, 1, 2, 3])
    fb = feedback(model, x, y)
    g = gradients(model, x, y)
    names = list(model.parameters())
    assert list(fb.params) == names and list(g.params) == names
    for value in (*fb.params.values(), *g.params.values()):
        assert np.isfinite(value).all()
    # some feedback reaches the first layer (not an all-zero pass)
    assert np.abs(fb.params[names[0]]).sum() > 0


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
def test_same_seed_same_model_and_masks(name, shape):
    a = zoo.build(name, num_classes=3, input_shape=shape, seed=5)
    b = zoo.build(name, num_classes=3, input_shape=shape, seed=5)
    c = zoo.build(name, num_classes=3, input_shape=shape, seed=6)
    for (na, pa), (nb, pb), (_, pc) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters()
    ):
        assert na == nb
        assert pa.tobytes() == pb.tobytes()
        if pa.ndim >= 2:
            assert pa.tobytes() != pc.tobytes()
    x = _batch(shape, np.float32)
    # two forward passes each: the dropout masks follow the seed, pass after pass
    for _ in range(2):
        assert a(x).tobytes() == b(x).tobytes()


def test_dropout_layers_have_independent_generators():
    model = zoo.build("lenet", num_classes=10, input_shape=(1, 28, 28))
    first, second = [layer for layer in model if isinstance(layer, Dropout)]
    assert first.rng is not second.rng
    assert first.rng.bit_generator.state != second.rng.bit_generator.state


def test_seed_generator_draws_weights_in_order():
    """One Generator through all layers: the first Dense layer's weight is the first draw."""
    model = zoo.build("toy", num_classes=3, input_shape=(2,), seed=11, dtype=np.float64)
    bound = 1 / np.sqrt(2)
    expected = np.random.default_rng(11).uniform(-bound, bound, size=(32, 2))
    np.testing.assert_array_equal(model.parameters()["0.weight"], expected)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_by_name(activation):
    model = zoo.build("lenet", num_classes=3, input_shape=(1, 28, 28), activation=activation)
    kinds = {type(layer) for layer in model}
    assert ACTIVATIONS[activation] in kinds
    assert model(_batch((1, 28, 28), np.float32)).shape == (3, 3)


def test_names_are_forgiving():
    model = zoo.build("VGG_small", num_classes=2, input_shape=(1, 8, 8), activation="Leaky-ReLU")
    assert model(_batch((1, 8, 8), np.float32)).shape == (3, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(name="alexnet"), "unknown model 'alexnet'; known: toy, mlp, lenet"),
        (dict(activation="swish"), "unknown activation 'swish'; known: "),
        (dict(widths=(8,)), "fixed widths"),
        (dict(name="lenet-5", widths=(8,)), "fixed widths; drop widths= (or use a model with"),
        (dict(input_shape=(784,)), "needs input_shape (C, H, W)"),
        (dict(input_shape=(1, 8, 8)), "too small for this model"),
        (dict(num_classes=1), "num_classes must be an int >= 2"),
    ],
    ids=["model", "activation", "widths", "fixed-widths", "flat-input", "small-input", "classes"],
)
def test_errors_say_what_to_do(kwargs, message):
    args = dict(name="lenet", num_classes=10, input_shape=(1, 28, 28)) | kwargs
    with pytest.raises(ValueError) as info:
        zoo.build(args.pop("name"), **args)
    assert message in str(info.value)


def test_catalog_describes_every_model():
    """Every model has a description, and the module docstring's table lists them all."""
    assert zoo.known_models() == tuple(zoo.CATALOG)
    table = zoo.__doc__.split("=============  ")[2]
    assert [line.split()[0] for line in table.splitlines()[1:] if line and line[0] != " "] == [
        *zoo.known_models()
    ]
    for name in zoo.known_models():
        text = zoo.describe(name)
        assert text.startswith(f"{name}: ")
        assert "layers: " in text and "options: mode='train'" in text
    assert "dropout_rng='spawn'" in zoo.describe("LeNet")
    assert "widths default (32, 64)" in zoo.describe("vgg-small")


def test_lenet5_and_small_cnn_layers():
    lenet5 = zoo.build("lenet-5", num_classes=10, input_shape=(1, 28, 28))
    assert [p.shape for p in lenet5.parameters().values()] == [
        (6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 256), (120,), (84, 120), (84,),
        (10, 84), (10,)
    ]  # fmt: skip
    assert sum(isinstance(layer, AvgPool2d) for layer in lenet5) == 2
    cnn = zoo.build("small-cnn", num_classes=4, input_shape=(1, 10, 10))
    assert [p.shape for p in cnn.parameters().values()] == [
        (8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (4, 64), (4,)
    ]  # fmt: skip


def test_mode_option():
    model = zoo.build("resnet-small", num_classes=3, input_shape=(1, 8, 8), mode="eval")
    assert not any(layer.training for _, layer in model.named_layers())
    model = zoo.build("toy", num_classes=3, input_shape=(2,), mode="train")
    assert all(layer.training for _, layer in model.named_layers())


def test_dropout_options():
    plain = zoo.build("vgg-small", num_classes=3, input_shape=(3, 8, 8), seed=2)
    without = zoo.build("vgg-small", num_classes=3, input_shape=(3, 8, 8), seed=2, dropout=0)
    assert not any(isinstance(layer, Dropout) for layer in without)
    assert len(without.layers) == len(plain.layers) - 1
    # the weights do not depend on the Dropout layers (spawning draws nothing)
    for a, b in zip(plain.parameters().values(), without.parameters().values(), strict=True):
        assert a.tobytes() == b.tobytes()
    light = zoo.build("lenet", num_classes=3, input_shape=(1, 28, 28), dropout=0.25)
    assert [layer.p for layer in light if isinstance(layer, Dropout)] == [0.25, 0.25]
    rng = np.random.default_rng(4)
    shared = zoo.build(
        "lenet-tiny", num_classes=3, input_shape=(1, 16, 16), seed=rng, dropout_rng="shared"
    )
    assert [layer.rng for layer in shared if isinstance(layer, Dropout)] == [rng]
    spawned = zoo.build("lenet-tiny", num_classes=3, input_shape=(1, 16, 16), seed=rng)
    assert all(layer.rng is not rng for layer in spawned if isinstance(layer, Dropout))


def _followed_by_norm(model):
    """``{weighted layer name: whether a normalization layer follows it}``."""
    out = {}
    for prefix, layer in model.named_layers():
        if isinstance(layer, Sequential):
            children = layer.children()
            for (name, first), (_, second) in zip(children, [*children[1:], (None, None)]):
                if isinstance(first, WeightedLayer):
                    key = f"{prefix}.{name}" if prefix else name
                    out[key] = isinstance(second, NormalizationLayer)
    return out


@pytest.mark.parametrize("name", ["resnet-small", "vgg-tiny", "resnet-tiny"])
def test_bias_before_norm_option(name):
    model = zoo.build(name, num_classes=3, input_shape=(3, 8, 8), bias_before_norm=False)
    followed = _followed_by_norm(model)
    assert any(followed.values()) and not all(followed.values())
    layers = dict(model.named_layers())
    for key, before_norm in followed.items():
        assert (layers[key].bias is None) == before_norm, key
    # the default keeps every bias
    default = dict(zoo.build(name, num_classes=3, input_shape=(3, 8, 8)).named_layers())
    assert all(default[key].bias is not None for key in followed)


def test_randomize_batchnorm_option():
    plain = zoo.build("vgg-tiny", num_classes=3, input_shape=(3, 8, 8), seed=1, dtype=np.float64)
    rng = np.random.default_rng(1)
    random = zoo.build(
        "vgg-tiny",
        num_classes=3,
        input_shape=(3, 8, 8),
        seed=rng,
        dtype=np.float64,
        randomize_batchnorm=True,
    )
    norms = [layer for _, layer in random.named_layers() if isinstance(layer, NormalizationLayer)]
    assert len(norms) == 4
    for layer in norms:
        assert np.all((0.5 <= np.abs(layer.weight)) & (np.abs(layer.weight) <= 1.5))
        assert np.all(np.abs(layer.bias) <= 0.5) and np.any(layer.bias != 0)
        assert np.all(np.abs(layer.running_mean) <= 0.3) and np.any(layer.running_mean != 0)
        assert np.all((0.5 <= layer.running_var) & (layer.running_var <= 2.0))
    # drawn after the weights: the weighted layers are the unrandomized model's
    for key, value in plain.state_dict().items():
        if key.endswith("weight") and value.ndim >= 2:
            assert value.tobytes() == random.state_dict()[key].tobytes(), key
    # and the Generator was drawn from past the weights
    assert rng.bit_generator.state != np.random.default_rng(1).bit_generator.state


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mlp", dict(dropout=0.1), "model 'mlp' takes the options mode; got dropout ('dropout' "
         "is an option of lenet, vgg-small, lenet-tiny)"),
        ("lenet", dict(randomize_batchnorm=True), "'randomize_batchnorm' is an option of "
         "resnet-small, vgg-tiny, resnet-tiny"),
        ("lenet", dict(colour="red"), "'colour' is no option of any model"),
        ("lenet", dict(mode="inference"), "mode must be 'train' or 'eval', got 'inference'"),
        ("lenet", dict(dropout=1.0), "dropout must be a probability 0 <= p < 1"),
        ("lenet", dict(dropout_rng="fresh"), "dropout_rng must be 'spawn'"),
        ("vgg-tiny", dict(bias_before_norm="no"), "bias_before_norm must be True or False"),
    ],
    ids=["not-this-model", "bn-option", "unknown", "mode", "dropout", "dropout-rng", "flag"],
)  # fmt: skip
def test_option_errors_say_what_to_do(name, options, message):
    shape = {"mlp": (4,), "lenet": (1, 28, 28), "vgg-tiny": (3, 8, 8)}[name]
    with pytest.raises(ValueError) as info:
        zoo.build(name, num_classes=3, input_shape=shape, **options)
    assert message in str(info.value)


def test_known_and_checked_options():
    assert zoo.known_options("lenet") == {"mode": "train", "dropout": 0.5, "dropout_rng": "spawn"}
    assert zoo.known_options("toy") == {"mode": "train"}
    assert zoo.check_options("vgg_tiny", {"mode": "eval"}) == {
        "mode": "eval",
        "bias_before_norm": True,
        "randomize_batchnorm": False,
    }


def test_bad_widths():
    with pytest.raises(ValueError, match="positive ints"):
        zoo.build("mlp", num_classes=2, input_shape=(3,), widths=(4, 0))


@pytest.mark.crosscheck
def test_lenet_matches_lfprop_lenet():
    """Load lfprop's LeNet weights into ours (same order and shapes) and compare the eval-mode
    forward pass in float64."""
    torch = pytest.importorskip("torch", reason="needs torch (make crosscheck)")
    definitions = pytest.importorskip(
        "lfprop.model.model_definitions", reason="needs lfprop 1.0.0 (make crosscheck)"
    )
    torch.manual_seed(0)
    peer = definitions.LeNet(1, 10).double().eval()
    ours = zoo.build("lenet", num_classes=10, input_shape=(1, 28, 28), dtype=np.float64).eval()
    peer_state = [v.detach().numpy() for v in peer.state_dict().values()]
    ours.load_state_dict(dict(zip(ours.parameters(), peer_state, strict=True)))
    x = _batch((1, 28, 28), np.float64, n=5)
    expected = peer(torch.from_numpy(x)).detach().numpy()
    assert_close(ours(x), expected)
