"""The model zoo: the networks of the paper's experiments (and two small extras), built by name.

::

    model = zoo.build("lenet", num_classes=10, input_shape=(1, 28, 28), seed=0)

Every model is a flat :class:`lfp_ref.Sequential` (parameter names ``"0.weight"``, ...) whose
layers take their initial weights, in construction order, from one
``np.random.default_rng(seed)``; each Dropout gets its own Generator spawned from that one, so the
same seed always gives the same weights and the same sequence of dropout masks.

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
vgg-small      per stage ``w``: Conv(., w, 3, padding=1), act, Conv(w, w, 3, padding=1), act,
               MaxPool(2); then Flatten, Dense(F, 256), act, Dropout(0.5), Dense(256, C);
               ``widths`` (channels per stage) default (32, 64)
resnet-small   stem Conv(Cin, w1, 3, padding=1), BatchNorm2d, act; per stage ``w`` a
               :class:`lfp_ref.Residual` block (conv-BN-act-conv-BN, stride 2 and a 1x1
               conv-BN shortcut when the stage changes width) followed by act; global
               AvgPool, Flatten, Dense(w_last, C); ``widths`` default (16, 32)
=============  ==============================================================================

``input_shape`` is one sample's shape: ``(features,)`` for dense nets (images are flattened),
``(C, H, W)`` for the CNNs.
"""

from __future__ import annotations

import numpy as np

from .layers.activations import ACTIVATIONS
from .layers.base import check_dtype
from .layers.containers import Residual, Sequential
from .layers.conv import Conv2d
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.norm import BatchNorm2d
from .layers.pool import AvgPool2d, MaxPool2d
from .layers.reshape import Flatten

#: models whose widths are fixed by the paper
_FIXED_WIDTHS = ("toy", "lenet")
DEFAULT_WIDTHS = {"mlp": (256, 128), "vgg-small": (32, 64), "resnet-small": (16, 32)}
TOY_WIDTHS = (32, 16)
DROPOUT_P = 0.5


def known_models():
    """The names :func:`build` accepts."""
    return ("toy", "mlp", "lenet", "vgg-small", "resnet-small")


def known_activations():
    """The activation names :func:`build` accepts (``lfp_ref.layers.ACTIVATIONS``)."""
    return tuple(ACTIVATIONS)


def _canonical(name):
    return name.strip().lower().replace("_", "-") if isinstance(name, str) else name


def check_model_name(name):
    """The canonical model name (case-insensitive, ``_`` = ``-``), or a ValueError listing the
    known ones."""
    key = _canonical(name)
    if key not in known_models():
        raise ValueError(f"unknown model {name!r}; known: {', '.join(known_models())}")
    return key


def check_activation(name):
    """The canonical activation name, or a ValueError listing the known ones."""
    key = name.strip().lower().replace("_", "").replace("-", "") if isinstance(name, str) else name
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(known_activations())}")
    return key


def check_widths(name, widths):
    """The widths for model ``name`` (its default when None), checked; the paper's fixed
    architectures take none."""
    if widths is None:
        return TOY_WIDTHS if name == "toy" else DEFAULT_WIDTHS.get(name)
    if name in _FIXED_WIDTHS:
        raise ValueError(
            f"model {name!r} has the paper's fixed widths; drop widths= (or use model 'mlp' "
            "for configurable dense widths)"
        )
    widths = tuple(widths)
    if not widths or not all(
        isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1 for w in widths
    ):
        raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
    return tuple(int(w) for w in widths)


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
        raise ValueError(
            f"model {name!r} is a CNN and needs input_shape (C, H, W), got {shape}; use 'mlp' "
            "or 'toy' for flat inputs"
        )
    return shape


class _Builder:
    """Appends layers in order, tracking the shape of one sample and handing every layer the
    same Generator (so initial weights depend on the seed and the architecture only)."""

    def __init__(self, shape, activation, rng, dtype):
        self.shape = shape
        self.activation = ACTIVATIONS[activation]
        self.rng = rng
        self.dtype = dtype

    def act(self):
        return self.activation()

    def dropout(self):
        # its own stream, spawned (not drawn) from the init Generator: the masks depend on the
        # seed only, and the checkpoint can save one independent state per Dropout layer
        return Dropout(DROPOUT_P, rng=self.rng.spawn(1)[0])

    def dense(self, out_features):
        (features,) = self.shape
        self.shape = (out_features,)
        return Dense(features, out_features, dtype=self.dtype, rng=self.rng)

    def flatten(self):
        self.shape = (int(np.prod(self.shape)),)
        return Flatten()

    def conv(self, out_channels, kernel_size, stride=1, padding=0, what="the input"):
        channels, height, width = self.shape
        layer = Conv2d(
            channels, out_channels, kernel_size, stride, padding, dtype=self.dtype, rng=self.rng
        )
        self.shape = (out_channels, *self._spatial(layer, height, width, what))
        return layer

    def conv_from(self, shape, out_channels, kernel_size, stride=1, padding=0):
        """A conv on a branch that starts at ``shape`` (does not move the main shape)."""
        saved, self.shape = self.shape, shape
        layer = self.conv(out_channels, kernel_size, stride, padding)
        self.shape, branch_shape = saved, self.shape
        return layer, branch_shape

    def batchnorm(self):
        return BatchNorm2d(self.shape[0], dtype=self.dtype)

    def maxpool(self, what="the input"):
        layer = MaxPool2d(2)
        self.shape = (self.shape[0], *self._spatial(layer, *self.shape[1:], what))
        return layer

    def global_avgpool(self):
        layer = AvgPool2d(self.shape[1:])
        self.shape = (self.shape[0], 1, 1)
        return layer

    @staticmethod
    def _spatial(layer, height, width, what):
        ho, wo = layer.output_size(height, width)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{what} is too small for this model: {layer!r} gets {height}x{width}; use a "
                "larger input (e.g. 28x28) or a model with fewer downsampling steps"
            )
        return ho, wo


def _dense_net(b, widths, num_classes):
    layers = [b.flatten()] if len(b.shape) > 1 else []
    for width in widths:
        layers += [b.dense(width), b.act()]
    return [*layers, b.dense(num_classes)]


def _lenet(b, num_classes, input_shape):
    what = f"the input {input_shape}"
    layers = [
        b.conv(16, 5, what=what), b.act(), b.maxpool(what),
        b.conv(16, 5, what=what), b.act(), b.maxpool(what),
        b.flatten(),
        b.dense(120), b.act(), b.dropout(),
        b.dense(84), b.act(), b.dropout(),
        b.dense(num_classes),
    ]  # fmt: skip
    return layers


def _vgg_small(b, widths, num_classes, input_shape):
    what = f"the input {input_shape}"
    layers = []
    for width in widths:
        layers += [b.conv(width, 3, padding=1, what=what), b.act()]
        layers += [b.conv(width, 3, padding=1, what=what), b.act(), b.maxpool(what)]
    layers += [b.flatten(), b.dense(256), b.act(), b.dropout(), b.dense(num_classes)]
    return layers


def _resnet_small(b, widths, num_classes, input_shape):
    what = f"the input {input_shape}"
    layers = [b.conv(widths[0], 3, padding=1, what=what), b.batchnorm(), b.act()]
    for width in widths:
        block_input = b.shape
        stride = 1 if width == block_input[0] else 2
        shortcut = None
        if stride != 1:
            conv, _ = b.conv_from(block_input, width, 1, stride=stride)
            shortcut = Sequential(conv, BatchNorm2d(width, dtype=b.dtype))
        branch = [b.conv(width, 3, stride=stride, padding=1, what=what), b.batchnorm(), b.act()]
        branch += [b.conv(width, 3, padding=1, what=what), b.batchnorm()]
        layers += [Residual(Sequential(*branch), shortcut), b.act()]
    layers += [b.global_avgpool(), b.flatten(), b.dense(num_classes)]
    return layers


def build(
    name,
    *,
    num_classes,
    input_shape,
    activation="relu",
    seed=0,
    dtype=np.float32,
    widths=None,
):
    """Build a model of the zoo (see the module docstring for the architectures).

    Parameters
    ----------
    name : {"toy", "mlp", "lenet", "vgg-small", "resnet-small"}
    num_classes : int
        Number of outputs (logits).
    input_shape : tuple of int
        One sample's shape: ``(C, H, W)`` for the CNNs, anything for the dense nets.
    activation : str
        A name of ``lfp_ref.layers.ACTIVATIONS``: relu, leakyrelu, tanh, sigmoid, silu, elu,
        step, identity.
    seed : int or numpy.random.Generator
        Every layer draws its initial weights from this one Generator, in construction order.
    dtype : float32 or float64
    widths : sequence of int, optional
        Hidden widths (mlp) or channels per stage (vgg-small, resnet-small); not allowed for the
        paper's fixed architectures (toy, lenet).

    Returns
    -------
    Sequential
        In training mode.
    """
    key = check_model_name(name)
    act = check_activation(activation)
    shape = _check_shape(input_shape, num_classes)
    widths = check_widths(key, widths)
    dtype = check_dtype(dtype)
    rng = np.random.default_rng(seed)
    b = _Builder(shape, act, rng, dtype)
    if key in ("toy", "mlp"):
        layers = _dense_net(b, widths, num_classes)
    elif key == "lenet":
        layers = _lenet(b, num_classes, _image_shape(key, shape))
    elif key == "vgg-small":
        layers = _vgg_small(b, widths, num_classes, _image_shape(key, shape))
    else:
        layers = _resnet_small(b, widths, num_classes, _image_shape(key, shape))
    return Sequential(*layers).train()
