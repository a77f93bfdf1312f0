"""The benchmark models and data, built the same way for every contender.

Each model is a model of the catalog :mod:`lfp_ref.zoo` (a flat ``Sequential`` whose children are
numbered as in a ``torch.nn.Sequential``) with torch's default initialisation drawn from the seed;
:func:`lfp_ref.verify.interop.to_torch` makes its torch twin, so lfp_ref and the torch peers
start from the same weights and see the same batch.

=============  =====  ==========================================================================
name           batch  layers (zoo model and options)
=============  =====  ==========================================================================
mlp-1000       128    784-1000-1000-10, ReLU ("mlp", widths (1000, 1000))
mlp-256        128    784-256-256-10, ReLU ("mlp", widths (256, 256))
lenet-5        64     conv 1->6 k5, ReLU, avgpool 2, conv 6->16 k5, ReLU, avgpool 2, 256-120-84-10
                      ("lenet-5")
lenet-paper    128    conv 1->16 k5, ReLU, maxpool 2, conv 16->16 k5, ReLU, maxpool 2,
                      256-120, ReLU, dropout, 120-84, ReLU, dropout, 84-10 (lfprop's LeNet:
                      "lenet", its Dropouts drawing from the init Generator)
vgg-small      64     3x32x32: conv 3->32, 32->32 (k3 p1), ReLU each, maxpool 2, conv 32->64,
                      64->64, maxpool 2, 4096-256, ReLU, 256-10 ("vgg-small" without Dropout)
resnet-small   64     3x32x32: conv 3->16 k3 p1, BatchNorm, ReLU; a residual block 16->16 (two
                      conv k3 p1 with BatchNorm); a stride-2 block 16->32 with a 1x1 conv-BN
                      shortcut; ReLU after each block, global avgpool, 32-10 ("resnet-small",
                      BatchNorm in train mode)
=============  =====  ==========================================================================
"""

from dataclasses import dataclass, field

import numpy as np

from lfp_ref import zoo
from lfp_ref.layers.conv import Conv2d
from lfp_ref.layers.dense import Dense

NUM_CLASSES = 10


@dataclass(frozen=True)
class Spec:
    model: str  # the zoo model
    input_shape: tuple  # one sample, (C, H, W)
    batch: int  # the batch size the suite times
    options: dict = field(default_factory=dict)  # zoo.build keywords (widths, options)


MODELS = {
    "mlp-1000": Spec("mlp", (1, 28, 28), 128, {"widths": (1000, 1000)}),
    "mlp-256": Spec("mlp", (1, 28, 28), 128, {"widths": (256, 256)}),
    "lenet-5": Spec("lenet-5", (1, 28, 28), 64),
    "lenet-paper": Spec("lenet", (1, 28, 28), 128, {"dropout_rng": "shared"}),
    "vgg-small": Spec("vgg-small", (3, 32, 32), 64, {"widths": (32, 64), "dropout": 0.0}),
    "resnet-small": Spec("resnet-small", (3, 32, 32), 64, {"widths": (16, 32)}),
}


def _spec(name):
    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def build(name, dtype=np.float32, seed=0):
    """The lfp_ref model ``name`` with torch's default initialisation drawn from ``seed``."""
    spec = _spec(name)
    return zoo.build(
        spec.model,
        num_classes=NUM_CLASSES,
        input_shape=spec.input_shape,
        seed=seed,
        dtype=dtype,
        **spec.options,
    )


def build_mlp(width, dtype=np.float32, seed=0):
    """The width sweep's MLP, 784-``width``-``width``-10 with ReLU (mlp-256 at width 256)."""
    return zoo.build(
        "mlp",
        num_classes=NUM_CLASSES,
        input_shape=(1, 28, 28),
        seed=seed,
        dtype=dtype,
        widths=(width, width),
    )


def batch(name, batch_size=None, dtype=np.float32, seed=0, input_shape=None):
    """A batch of uniform [0, 1) inputs and labels in 0..9, the same for every contender."""
    rng = np.random.default_rng(seed)
    size = _spec(name).batch if batch_size is None else batch_size
    shape = _spec(name).input_shape if input_shape is None else input_shape
    x = rng.random(size=(size, *shape)).astype(dtype)
    y = rng.integers(0, NUM_CLASSES, size=size)
    return x, y


def _contraction_flops(model, x):
    """``[(layer, FLOPs)]`` for every Dense and Conv2d use in one forward pass at input ``x``,
    in the order of the model's layers (residual branches included): Dense ``2 B I O``, Conv2d
    ``2 B O Ho Wo C kh kw``."""
    model.clear_caches()
    model.forward(x)
    found = []
    for _, layer in model.named_layers():
        if not isinstance(layer, (Dense, Conv2d)):
            continue
        for _ in range(layer.uses):
            layer.begin_reverse()
            z = layer.cached_output
            fan_in = layer.in_features if isinstance(layer, Dense) else layer.fan_in
            found.append((layer, 2 * z.size * fan_in))
    model.clear_caches()
    return found


def gemm_flops(model, x):
    """FLOPs of the forward pass's contractions (2 per multiply-add) for input ``x``: Dense
    ``2 B I O``, Conv2d ``2 B O Ho Wo C kh kw``. Runs one forward pass to get the shapes."""
    return sum(flops for _, flops in _contraction_flops(model, x))


def training_gemm_flops(model, x):
    """FLOPs of the contractions one training step needs: 3x the forward's (forward, weight VJP,
    input VJP) less the first layer's input VJP, which nothing uses."""
    found = _contraction_flops(model, x)
    return 3 * sum(flops for _, flops in found) - found[0][1]
