"""The model zoo: lfp_ref's one catalog of networks, built by name.

::

    model = zoo.build("lenet", num_classes=10, input_shape=(1, 28, 28), seed=0)
    print(zoo.describe("lenet"))

It holds the networks of the paper's experiments, the benchmark suite's
(``benchmarks/models.py``), the cross-checks' (:mod:`lfp_ref.verify.crosscheck`) and the rule
study's (``figures/rule_study.py``). Every model is a flat :class:`lfp_ref.Sequential`
(parameter names ``"0.weight"``, ...) whose layers take their initial weights, in construction
order, from one ``np.random.default_rng(seed)``; each Dropout gets its own Generator spawned from
that one (``dropout_rng="spawn"``), so the same seed always gives the same weights and the same
sequence of dropout masks.

=============  ==============================================================================
name           architecture (``act`` = the activation chosen by name)
=============  ==============================================================================
toy            the paper's toy dense net: [Flatten], Dense(I, 32), act, Dense(32, 16), act,
               Dense(16, C)
mlp            [Flatten], Dense(I, w1), act, ..., Dense(wk, C); ``widths`` default (256, 128)
lenet          the paper's LeNet (lfprop's ``LeNet``): Conv(Cin, 16, 5), act, MaxPool(2),
               Conv(16, 16, 5), act, MaxPool(2), Flatten, Dense(F, 120), act, Dropout(0.5),
               Dense(120, 84), act, Dropout(0.5), Dense(84, C); F = 256 for 1x28x28 input,
               400 for 3x32x32
lenet-5        the classic LeNet-5: Conv(Cin, 6, 5), act, AvgPool(2), Conv(6, 16, 5), act,
               AvgPool(2), Flatten, Dense(F, 120), act, Dense(120, 84), act, Dense(84, C)
vgg-small      per stage ``w``: Conv(., w, 3, padding=1), act, Conv(w, w, 3, padding=1), act,
               MaxPool(2); then Flatten, Dense(F, 256), act, Dropout(0.5), Dense(256, C);
               ``widths`` (channels per stage) default (32, 64)
resnet-small   stem Conv(Cin, w1, 3, padding=1), BatchNorm2d, act; per stage ``w`` a
               :class:`lfp_ref.Residual` block (conv-BN-act-conv-BN, stride 2 and a 1x1
               conv-BN shortcut when the stage changes width) followed by act; global
               AvgPool, Flatten, Dense(w_last, C); ``widths`` default (16, 32)
small-cnn      the rule study's CNN: Conv(Cin, 8, 3, padding=1), act, AvgPool(2),
               Conv(8, 16, 3, padding=1), act, AvgPool(2), Flatten, Dense(F, C)
lenet-tiny     a small LeNet (the cross-checks'): Conv(Cin, 4, 5, padding=2), act, MaxPool(2),
               Conv(4, 8, 5), act, MaxPool(2), Flatten, Dense(F, 24), act, Dropout(0.5),
               Dense(24, C)
vgg-tiny       a small VGG with BatchNorm (the cross-checks'): Conv(Cin, 8, 3, padding=1), BN,
               act, Conv(8, 8, 3, padding=1), BN, act, MaxPool(2), Conv(8, 16, 3, padding=1),
               BN, act, AvgPool(2), Flatten, Dense(F, 16), BatchNorm1d, act, Dense(16, C)
resnet-tiny    resnet-small with widths (8, 16) whose stride-2 block draws its branch's
               weights before its shortcut's (the cross-checks')
snn-mlp        the paper's minimal spiking net (784-1000-10 on MNIST, lfprop's SmallLifMLP):
               [Flatten], LIF(Dense(I, w1)), ..., LIF(Dense(wk, C)); ``widths`` default
               (1000,)
snn-cnn        the paper's spiking CNN (lfprop's LifCNN): LIF(Conv(Cin, 12, 5)), MaxPool(2),
               LIF(Conv(12, 64, 5)), MaxPool(2), Flatten, LIF(Dense(F, C)); F = 1024 for
               1x28x28 input, 1600 for 3x32x32
=============  ==============================================================================

``input_shape`` is one sample's shape: ``(features,)`` for dense nets (images are flattened),
``(C, H, W)`` for the CNNs.

Options (keywords of :func:`build`; :func:`known_options` says which a model takes):

- ``mode``: ``"train"`` (default) or ``"eval"``, the mode the model is returned in;
- ``dropout``: the probability p of the Dropout layers (default 0.5); 0 leaves them out;
- ``dropout_rng``: ``"spawn"`` (default: each Dropout has its own Generator spawned from the
  init Generator) or ``"shared"`` (the Dropouts draw their masks from the init Generator itself,
  after the weights; how the benchmark and cross-check models were built before the catalog);
- ``bias_before_norm``: False drops the bias of every Dense/Conv2d followed by a BatchNorm
  (the batch mean removes it: its gradient and feedback are 0 in exact arithmetic);
- ``randomize_batchnorm``: True moves every BatchNorm's gamma/beta off 1/0 and its running
  statistics off 0/1, drawn from the init Generator after the weights (so eval mode and
  BatchNorm merging are not identities);
- the spiking models' (:mod:`lfp_ref.snn`): ``timesteps`` (T, default 15), the LIF neurons'
  ``beta`` (0.9), ``threshold`` (1.0), ``reset`` ("subtract"; "zero" has no LFP rule),
  ``surrogate`` ("atan" or "heaviside", the spike's derivative under backprop) and ``alpha``
  (2.0, the atan surrogate's sharpness).

The spiking models are a :class:`lfp_ref.snn.SpikingSequential` (a Sequential that presents the
input at each of T steps and returns the output spikes (T, B, C)) of :class:`lfp_ref.snn.LIF`
layers, each wrapping the Dense or Conv2d that makes its input current: parameter names
``"0.current.weight"``, ... (lfprop's ``parameterized_layer``, see
:func:`lfp_ref.snn.state_dict_from_torch`). They take no activation (``activation`` is ignored:
the LIF is the non-linearity).

Input noise (``input_noise``, a keyword of :func:`build` like ``activation``, not one of the
options above): ``input_noise=sigma > 0`` inserts a :class:`lfp_ref.layers.GaussianNoise`
(``sigma * N(0, 1)`` added in training mode, the identity in eval mode) right before every
Dense and Conv2d of the model, the noise of the authors' step-function networks. Each noise
layer has its own Generator spawned from the init Generator after every other layer is built, so
the weights and the dropout masks are those of the same model without noise. The default 0.0
inserts nothing (the model is the one without the keyword). It applies to the flat models
(not the residual or spiking ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .layers.activations import ACTIVATIONS
from .layers.base import NormalizationLayer, check_dtype
from .layers.containers import Residual, Sequential
from .layers.conv import Conv2d
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.noise import GaussianNoise, check_sigma
from .layers.norm import BatchNorm1d, BatchNorm2d
from .layers.pool import AvgPool2d, MaxPool2d
from .layers.reshape import Flatten
from .snn import LIF, SpikingSequential, check_lif_options, check_timesteps

TOY_WIDTHS = (32, 16)
DROPOUT_P = 0.5

#: the options every model takes, with their defaults
_COMMON_OPTIONS = {"mode": "train"}
#: the options of models with Dropout layers, with their defaults
_DROPOUT_OPTIONS = {"dropout": DROPOUT_P, "dropout_rng": "spawn"}
#: the options of models with BatchNorm layers, with their defaults
_NORM_OPTIONS = {"bias_before_norm": True, "randomize_batchnorm": False}
#: the options of the spiking models, with their defaults (lfprop's: T = 15, snntorch's Leaky)
_SNN_OPTIONS = {
    "timesteps": 15,
    "beta": 0.9,
    "threshold": 1.0,
    "reset": "subtract",
    "surrogate": "atan",
    "alpha": 2.0,
}


# --------------------------------------------------------------------------- the builder


class _Builder:
    """Appends layers in order, tracking the shape of one sample and handing every layer the
    same Generator (so initial weights depend on the seed and the architecture only)."""

    def __init__(self, shape, activation, rng, dtype, options, what):
        self.shape = shape
        self.activation = ACTIVATIONS[activation]
        self.rng = rng
        self.dtype = dtype
        self.dropout_p = options.get("dropout", DROPOUT_P)
        self.shared_dropout_rng = options.get("dropout_rng") == "shared"
        self.bias_before_norm = options.get("bias_before_norm", True)
        self.what = what  # names the input in "too small" errors
        self.lif_options = {
            k: options[k] for k in _SNN_OPTIONS if k in options and k != "timesteps"
        }

    def act(self):
        return self.activation()

    def dropout(self):
        """``[Dropout(p)]``, or ``[]`` when the ``dropout`` option is 0."""
        if self.dropout_p == 0:
            return []
        # "spawn": its own stream, spawned (not drawn) from the init Generator: the masks depend
        # on the seed only, and the checkpoint can save one independent state per Dropout layer
        rng = self.rng if self.shared_dropout_rng else self.rng.spawn(1)[0]
        return [Dropout(self.dropout_p, rng=rng)]

    def dense(self, out_features, bias=True):
        (features,) = self.shape
        self.shape = (out_features,)
        return Dense(features, out_features, bias, dtype=self.dtype, rng=self.rng)

    def flatten(self):
        self.shape = (int(np.prod(self.shape)),)
        return Flatten()

    def conv(self, out_channels, kernel_size, stride=1, padding=0, bias=True):
        channels, height, width = self.shape
        layer = Conv2d(
            channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            bias=bias,
            dtype=self.dtype,
            rng=self.rng,
        )
        self.shape = (out_channels, *self._spatial(layer, height, width))
        return layer

    def conv_from(self, shape, out_channels, kernel_size, stride=1, padding=0, bias=True):
        """A conv on a branch that starts at ``shape`` (does not move the main shape)."""
        saved, self.shape = self.shape, shape
        layer = self.conv(out_channels, kernel_size, stride, padding, bias)
        self.shape, branch_shape = saved, self.shape
        return layer, branch_shape

    def batchnorm(self):
        """BatchNorm1d after a Dense, BatchNorm2d after a conv."""
        norm = BatchNorm1d if len(self.shape) == 1 else BatchNorm2d
        return norm(self.shape[0], dtype=self.dtype)

    def conv_bn(self, out_channels, kernel_size, stride=1, padding=0):
        """``[Conv2d, BatchNorm2d]``; the conv has a bias unless ``bias_before_norm=False``."""
        conv = self.conv(out_channels, kernel_size, stride, padding, self.bias_before_norm)
        return [conv, self.batchnorm()]

    def dense_bn(self, out_features):
        """``[Dense, BatchNorm1d]``; the Dense has a bias unless ``bias_before_norm=False``."""
        return [self.dense(out_features, self.bias_before_norm), self.batchnorm()]

    def maxpool(self):
        layer = MaxPool2d(2)
        self.shape = (self.shape[0], *self._spatial(layer, *self.shape[1:]))
        return layer

    def avgpool(self):
        layer = AvgPool2d(2)
        self.shape = (self.shape[0], *self._spatial(layer, *self.shape[1:]))
        return layer

    def global_avgpool(self):
        layer = AvgPool2d(self.shape[1:])
        self.shape = (self.shape[0], 1, 1)
        return layer

    def _spatial(self, layer, height, width):
        ho, wo = layer.output_size(height, width)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{self.what} is too small for this model: {layer!r} gets {height}x{width}; use "
                "a larger input (e.g. 28x28) or a model with fewer downsampling steps"
            )
        return ho, wo


# --------------------------------------------------------------------------- the architectures


def _dense_net(b, widths, num_classes):
    layers = [b.flatten()] if len(b.shape) > 1 else []
    for width in widths:
        layers += [b.dense(width), b.act()]
    return [*layers, b.dense(num_classes)]


def _lenet(b, widths, num_classes):
    return [
        b.conv(16, 5), b.act(), b.maxpool(),
        b.conv(16, 5), b.act(), b.maxpool(),
        b.flatten(),
        b.dense(120), b.act(), *b.dropout(),
        b.dense(84), b.act(), *b.dropout(),
        b.dense(num_classes),
    ]  # fmt: skip


def _lenet5(b, widths, num_classes):
    return [
        b.conv(6, 5), b.act(), b.avgpool(),
        b.conv(16, 5), b.act(), b.avgpool(),
        b.flatten(),
        b.dense(120), b.act(),
        b.dense(84), b.act(),
        b.dense(num_classes),
    ]  # fmt: skip


def _vgg_small(b, widths, num_classes):
    layers = []
    for width in widths:
        layers += [b.conv(width, 3, padding=1), b.act()]
        layers += [b.conv(width, 3, padding=1), b.act(), b.maxpool()]
    layers += [b.flatten(), b.dense(256), b.act(), *b.dropout(), b.dense(num_classes)]
    return layers


def _shortcut(b, block_input, width, stride):
    """The 1x1 conv-BN shortcut of a block that changes width (does not move the main shape)."""
    conv, _ = b.conv_from(block_input, width, 1, stride, 0, b.bias_before_norm)
    return Sequential(conv, BatchNorm2d(width, dtype=b.dtype))


def _resnet(b, widths, num_classes, shortcut_first):
    layers = [*b.conv_bn(widths[0], 3, padding=1), b.act()]
    for width in widths:
        block_input = b.shape
        stride = 1 if width == block_input[0] else 2
        shortcut = None
        if stride != 1 and shortcut_first:
            shortcut = _shortcut(b, block_input, width, stride)
        branch = [*b.conv_bn(width, 3, stride=stride, padding=1), b.act()]
        branch += b.conv_bn(width, 3, padding=1)
        if stride != 1 and not shortcut_first:
            shortcut = _shortcut(b, block_input, width, stride)
        layers += [Residual(Sequential(*branch), shortcut), b.act()]
    layers += [b.global_avgpool(), b.flatten(), b.dense(num_classes)]
    return layers


def _resnet_small(b, widths, num_classes):
    return _resnet(b, widths, num_classes, shortcut_first=True)


def _resnet_tiny(b, widths, num_classes):
    return _resnet(b, widths, num_classes, shortcut_first=False)


def _small_cnn(b, widths, num_classes):
    return [
        b.conv(8, 3, padding=1), b.act(), b.avgpool(),
        b.conv(16, 3, padding=1), b.act(), b.avgpool(),
        b.flatten(),
        b.dense(num_classes),
    ]  # fmt: skip


def _lenet_tiny(b, widths, num_classes):
    return [
        b.conv(4, 5, padding=2), b.act(), b.maxpool(),
        b.conv(8, 5), b.act(), b.maxpool(),
        b.flatten(),
        b.dense(24), b.act(), *b.dropout(),
        b.dense(num_classes),
    ]  # fmt: skip


def _vgg_tiny(b, widths, num_classes):
    return [
        *b.conv_bn(8, 3, padding=1), b.act(),
        *b.conv_bn(8, 3, padding=1), b.act(),
        b.maxpool(),
        *b.conv_bn(16, 3, padding=1), b.act(),
        b.avgpool(),
        b.flatten(),
        *b.dense_bn(16), b.act(),
        b.dense(num_classes),
    ]  # fmt: skip


def _snn_mlp(b, widths, num_classes):
    layers = [b.flatten()] if len(b.shape) > 1 else []
    for width in (*widths, num_classes):
        layers.append(LIF(b.dense(width), **b.lif_options))
    return layers


def _snn_cnn(b, widths, num_classes):
    return [
        LIF(b.conv(12, 5), **b.lif_options), b.maxpool(),
        LIF(b.conv(64, 5), **b.lif_options), b.maxpool(),
        b.flatten(),
        LIF(b.dense(num_classes), **b.lif_options),
    ]  # fmt: skip


# --------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class Entry:
    """A model of the catalog.

    Attributes
    ----------
    layers : callable
        ``(builder, widths, num_classes) -> list of layers``, drawing weights in order.
    summary : str
        One line: what the model is and where it is used.
    architecture : str
        The layer sequence (``act`` = the chosen activation, C = classes, F = flattened size).
    image : bool
        Whether it needs ``(C, H, W)`` input.
    widths : tuple of int or None
        The default widths; None for a fixed architecture (``widths=`` is then refused).
    options : dict
        The keyword options it takes, with their defaults.
    spiking : bool
        Whether it is a spiking network (a :class:`lfp_ref.snn.SpikingSequential`).
    """

    layers: object
    summary: str
    architecture: str
    image: bool
    widths: tuple | None = None
    options: dict = field(default_factory=lambda: dict(_COMMON_OPTIONS))
    spiking: bool = False


_CNN = {**_COMMON_OPTIONS}
_CNN_DROPOUT = {**_COMMON_OPTIONS, **_DROPOUT_OPTIONS}
_CNN_NORM = {**_COMMON_OPTIONS, **_NORM_OPTIONS}
_SNN = {**_COMMON_OPTIONS, **_SNN_OPTIONS}

#: the models :func:`build` knows, by canonical name, in the order :func:`known_models` lists them
CATALOG = {
    "toy": Entry(
        lambda b, widths, c: _dense_net(b, TOY_WIDTHS, c),
        "the paper's toy dense net (2-D toy data)",
        "[Flatten], Dense(I, 32), act, Dense(32, 16), act, Dense(16, C)",
        image=False,
        options=_COMMON_OPTIONS,
    ),
    "mlp": Entry(
        _dense_net,
        "a dense net of configurable widths (benchmarks: mlp-1000 = widths (1000, 1000), "
        "mlp-256 = (256, 256))",
        "[Flatten], Dense(I, w1), act, ..., Dense(wk, C)",
        image=False,
        widths=(256, 128),
        options=_COMMON_OPTIONS,
    ),
    "lenet": Entry(
        _lenet,
        "the paper's LeNet, lfprop's LeNet (benchmarks: lenet-paper, with dropout_rng='shared')",
        "Conv(Cin, 16, 5), act, MaxPool(2), Conv(16, 16, 5), act, MaxPool(2), Flatten, "
        "Dense(F, 120), act, Dropout, Dense(120, 84), act, Dropout, Dense(84, C)",
        image=True,
        options=_CNN_DROPOUT,
    ),
    "lenet-5": Entry(
        _lenet5,
        "the classic LeNet-5 with average pooling (benchmarks: lenet-5)",
        "Conv(Cin, 6, 5), act, AvgPool(2), Conv(6, 16, 5), act, AvgPool(2), Flatten, "
        "Dense(F, 120), act, Dense(120, 84), act, Dense(84, C)",
        image=True,
        options=_CNN,
    ),
    "vgg-small": Entry(
        _vgg_small,
        "a small VGG, two convs per stage (benchmarks: vgg-small = widths (32, 64), dropout=0)",
        "per stage w: Conv(., w, 3, padding=1), act, Conv(w, w, 3, padding=1), act, "
        "MaxPool(2); Flatten, Dense(F, 256), act, Dropout, Dense(256, C)",
        image=True,
        widths=(32, 64),
        options=_CNN_DROPOUT,
    ),
    "resnet-small": Entry(
        _resnet_small,
        "a small residual net with BatchNorm",
        "Conv(Cin, w1, 3, padding=1), BN, act; per stage w: Residual(conv-BN-act-conv-BN, "
        "stride 2 and a 1x1 conv-BN shortcut when the width changes), act; global AvgPool, "
        "Flatten, Dense(w_last, C); a stride-2 block draws its shortcut's weights first",
        image=True,
        widths=(16, 32),
        options=_CNN_NORM,
    ),
    "small-cnn": Entry(
        _small_cnn,
        "the rule study's CNN (figures/rule_study.py)",
        "Conv(Cin, 8, 3, padding=1), act, AvgPool(2), Conv(8, 16, 3, padding=1), act, "
        "AvgPool(2), Flatten, Dense(F, C)",
        image=True,
        options=_CNN,
    ),
    "lenet-tiny": Entry(
        _lenet_tiny,
        "a small LeNet (lfp_ref.verify.crosscheck 'lenet': 1x16x16, mode='eval', "
        "dropout_rng='shared')",
        "Conv(Cin, 4, 5, padding=2), act, MaxPool(2), Conv(4, 8, 5), act, MaxPool(2), "
        "Flatten, Dense(F, 24), act, Dropout, Dense(24, C)",
        image=True,
        options=_CNN_DROPOUT,
    ),
    "vgg-tiny": Entry(
        _vgg_tiny,
        "a small VGG with BatchNorm and both poolings (lfp_ref.verify.crosscheck 'vgg-small': "
        "3x8x8, bias_before_norm=False, randomize_batchnorm=True)",
        "Conv(Cin, 8, 3, padding=1), BN, act, Conv(8, 8, 3, padding=1), BN, act, MaxPool(2), "
        "Conv(8, 16, 3, padding=1), BN, act, AvgPool(2), Flatten, Dense(F, 16), BatchNorm1d, "
        "act, Dense(16, C)",
        image=True,
        options=_CNN_NORM,
    ),
    "resnet-tiny": Entry(
        lambda b, widths, c: _resnet_tiny(b, (8, 16), c),
        "resnet-small's layers with widths (8, 16), a stride-2 block drawing its branch's "
        "weights before its shortcut's (lfp_ref.verify.crosscheck 'resnet-small': 3x8x8, "
        "bias_before_norm=False, randomize_batchnorm=True, mode='eval')",
        "Conv(Cin, 8, 3, padding=1), BN, act; Residual(conv-BN-act-conv-BN), act; "
        "Residual(stride-2 conv-BN-act-conv-BN, 1x1 stride-2 conv-BN shortcut), act; global "
        "AvgPool, Flatten, Dense(16, C)",
        image=True,
        options=_CNN_NORM,
    ),
    "snn-mlp": Entry(
        _snn_mlp,
        "the paper's minimal spiking net, lfprop's SmallLifMLP (784-1000-10 on MNIST), LIF "
        "neurons trained by LFP or surrogate gradients",
        "[Flatten], LIF(Dense(I, w1)), ..., LIF(Dense(wk, C)); output spikes (T, B, C)",
        image=False,
        widths=(1000,),
        options=_SNN,
        spiking=True,
    ),
    "snn-cnn": Entry(
        _snn_cnn,
        "the paper's spiking CNN, lfprop's LifCNN",
        "LIF(Conv(Cin, 12, 5)), MaxPool(2), LIF(Conv(12, 64, 5)), MaxPool(2), Flatten, "
        "LIF(Dense(F, C)); output spikes (T, B, C)",
        image=True,
        options=_SNN,
        spiking=True,
    ),
}


#: the default widths of the models with configurable widths
DEFAULT_WIDTHS = {k: e.widths for k, e in CATALOG.items() if e.widths is not None}


def known_models():
    """The names :func:`build` accepts, in catalog order."""
    return tuple(CATALOG)


def known_activations():
    """The activation names :func:`build` accepts (``lfp_ref.layers.ACTIVATIONS``)."""
    return tuple(ACTIVATIONS)


def known_options(name):
    """``{option: default}`` for the keyword options model ``name`` takes."""
    return dict(CATALOG[check_model_name(name)].options)


def describe(name):
    """A few lines on model ``name``: what it is, its layers, its default widths, its options.

    ::

        >>> print(zoo.describe("lenet-5"))  # doctest: +SKIP
        lenet-5: the classic LeNet-5 with average pooling (benchmarks: lenet-5)
        ...
    """
    key = check_model_name(name)
    entry = CATALOG[key]
    widths = "fixed" if entry.widths is None else f"widths default {entry.widths}"
    options = ", ".join(f"{k}={v!r}" for k, v in entry.options.items())
    shape = "(C, H, W)" if entry.image else "any (flattened)"
    return "\n".join(
        [
            f"{key}: {entry.summary}",
            f"  layers: {entry.architecture}",
            f"  input: {shape}; {widths}",
            f"  options: {options}",
        ]
    )


def _canonical(name):
    return name.strip().lower().replace("_", "-") if isinstance(name, str) else name


def check_model_name(name):
    """The canonical model name (case-insensitive, ``_`` = ``-``), or a ValueError listing the
    known ones."""
    key = _canonical(name)
    if key not in CATALOG:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(known_models())}")
    return key


def check_activation(name):
    """The canonical activation name, or a ValueError listing the known ones."""
    key = name.strip().lower().replace("_", "").replace("-", "") if isinstance(name, str) else name
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(known_activations())}")
    return key


def check_widths(name, widths):
    """The widths for model ``name`` (its default when None), checked; the fixed architectures
    take none."""
    key = check_model_name(name)
    entry = CATALOG[key]
    if widths is None:
        return TOY_WIDTHS if key == "toy" else entry.widths
    if entry.widths is None:
        configurable = ", ".join(k for k, e in CATALOG.items() if e.widths is not None)
        raise ValueError(
            f"model {name!r} has fixed widths; drop widths= (or use a model with configurable "
            f"widths: {configurable})"
        )
    widths = tuple(widths)
    if not widths or not all(
        isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1 for w in widths
    ):
        raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
    return tuple(int(w) for w in widths)


def check_options(name, options):
    """``{option: value}`` for model ``name``: ``options`` checked and completed with the
    defaults of :func:`known_options`; a ValueError names what is wrong and what is allowed."""
    key = check_model_name(name)
    allowed = CATALOG[key].options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takers = {
            option: [k for k, e in CATALOG.items() if option in e.options] for option in unknown
        }
        hints = "; ".join(
            f"{option!r} is an option of {', '.join(models)}"
            if models
            else f"{option!r} is no option of any model"
            for option, models in takers.items()
        )
        raise ValueError(
            f"model {key!r} takes the options {', '.join(allowed)}; got {', '.join(unknown)} "
            f"({hints})"
        )
    values = {**allowed, **options}
    if values["mode"] not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {values['mode']!r}")
    if "dropout" in values:
        p = values["dropout"]
        if isinstance(p, bool) or not isinstance(p, (int, float, np.number)) or not 0 <= p < 1:
            raise ValueError(
                f"dropout must be a probability 0 <= p < 1 (0 leaves the Dropout layers out), "
                f"got {p!r}"
            )
        values["dropout"] = float(p)
        if values["dropout_rng"] not in ("spawn", "shared"):
            raise ValueError(
                f"dropout_rng must be 'spawn' (each Dropout its own Generator) or 'shared' (the "
                f"init Generator), got {values['dropout_rng']!r}"
            )
    for flag in ("bias_before_norm", "randomize_batchnorm"):
        if flag in values and not isinstance(values[flag], (bool, np.bool_)):
            raise ValueError(f"{flag} must be True or False, got {values[flag]!r}")
    if "timesteps" in values:
        try:
            values["timesteps"] = check_timesteps(values["timesteps"], f"model {key!r}")
            lif = {k: values[k] for k in _SNN_OPTIONS if k != "timesteps"}
            values.update(check_lif_options(**lif, owner=f"model {key!r}"))
        except TypeError as err:
            raise ValueError(str(err)) from None
    return values


def _check_shape(input_shape, num_classes):
    try:
        shape = tuple(int(n) for n in input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be one sample's shape, e.g. (1, 28, 28) or (2,), got {input_shape!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must have positive sizes, got {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return shape


def _image_shape(name, shape):
    if len(shape) != 3:
        flat = ", ".join(k for k, e in CATALOG.items() if not e.image)
        raise ValueError(
            f"model {name!r} is a CNN and needs input_shape (C, H, W), got {shape}; use one of "
            f"{flat} for flat inputs"
        )
    return shape


def randomize_batchnorm(model, rng):
    """Move every BatchNorm's gamma/beta off 1/0 (so |theta| scaling and the beta path are
    exercised) and its running statistics off 0/1 (so eval mode and the BN merge are not
    identities), drawing from ``rng`` in layer order, in place:
    ``gamma ~ U(0.5, 1.5) * (+-1)``, ``beta ~ U(-0.5, 0.5)``, ``mean ~ U(-0.3, 0.3)``,
    ``var ~ U(0.5, 2)``."""
    for _, layer in model.named_layers():
        if isinstance(layer, NormalizationLayer):
            shape = layer.weight.shape
            layer.weight[...] = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
            layer.bias[...] = rng.uniform(-0.5, 0.5, shape)
            layer.running_mean[...] = rng.uniform(-0.3, 0.3, shape)
            layer.running_var[...] = rng.uniform(0.5, 2.0, shape)
    return model


def _with_input_noise(name, layers, sigma, rng):
    """``layers`` with a GaussianNoise(sigma) before every Dense and Conv2d, each with its own
    Generator spawned from ``rng`` in layer order (after the weights and the Dropouts')."""
    if any(isinstance(layer, (Residual, Sequential)) for layer in layers):
        raise ValueError(
            f"model {name!r}: input_noise is for the flat models (its Dense/Conv2d layers inside "
            "residual blocks would be missed); build the noisy network by hand with "
            "lfp_ref.layers.GaussianNoise"
        )
    noisy = []
    for layer in layers:
        if isinstance(layer, (Dense, Conv2d)):
            noisy.append(GaussianNoise(sigma, rng=rng.spawn(1)[0]))
        noisy.append(layer)
    return noisy


def build(
    name,
    *,
    num_classes,
    input_shape,
    activation="relu",
    seed=0,
    dtype=np.float32,
    widths=None,
    input_noise=0.0,
    **options,
):
    """Build a model of the catalog (see the module docstring, or :func:`describe`).

    Parameters
    ----------
    name : str
        One of :func:`known_models`: toy, mlp, lenet, lenet-5, vgg-small, resnet-small,
        small-cnn, lenet-tiny, vgg-tiny, resnet-tiny, snn-mlp, snn-cnn (case-insensitive,
        ``_`` = ``-``).
    num_classes : int
        Number of outputs (logits).
    input_shape : tuple of int
        One sample's shape: ``(C, H, W)`` for the CNNs, anything for the dense nets.
    activation : str
        A name of ``lfp_ref.layers.ACTIVATIONS``: relu, leakyrelu, tanh, sigmoid, silu, elu,
        step, identity.
    seed : int or numpy.random.Generator
        Every layer draws its initial weights from this one Generator, in construction order
        (a Generator is used as it is, so the caller can go on drawing from it).
    dtype : float32 or float64
    widths : sequence of int, optional
        Hidden widths (mlp, snn-mlp) or channels per stage (vgg-small, resnet-small); not
        allowed for the fixed architectures.
    input_noise : float >= 0
        The standard deviation of the Gaussian noise added in training mode before every
        Dense and Conv2d (a :class:`lfp_ref.layers.GaussianNoise` each; see the module
        docstring); 0 (default) adds no layer. Flat models only (not resnet-*, snn-*).
    **options
        The model's keyword options (:func:`known_options`): ``mode``, ``dropout``,
        ``dropout_rng``, ``bias_before_norm``, ``randomize_batchnorm``; the spiking models'
        ``timesteps``, ``beta``, ``threshold``, ``reset``, ``surrogate``, ``alpha``; see the
        module docstring.

    Returns
    -------
    Sequential
        In training mode (``mode="eval"``: eval mode); a :class:`lfp_ref.snn.SpikingSequential`
        for the spiking models.
    """
    key = check_model_name(name)
    entry = CATALOG[key]
    act = check_activation(activation)
    shape = _check_shape(input_shape, num_classes)
    widths = check_widths(key, widths)
    dtype = check_dtype(dtype)
    options = check_options(key, options)
    sigma = check_sigma(input_noise, f"model {key!r}: input_noise")
    if sigma > 0 and entry.spiking:
        raise ValueError(
            f"model {key!r}: input_noise is for the non-spiking flat models; a spiking net "
            "presents its input at every step (lfprop's NoisyWrapper there is not built in)"
        )
    if entry.image:
        _image_shape(key, shape)
    rng = np.random.default_rng(seed)
    b = _Builder(shape, act, rng, dtype, options, what=f"the input {shape}")
    layers = entry.layers(b, widths, num_classes)
    if sigma > 0:
        layers = _with_input_noise(key, layers, sigma, rng)
    if entry.spiking:
        model = SpikingSequential(*layers, timesteps=options["timesteps"])
    else:
        model = Sequential(*layers)
    if options.get("randomize_batchnorm"):
        randomize_batchnorm(model, rng)
    return model.train(options["mode"] == "train")
