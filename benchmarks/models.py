"""The benchmark models and data, built the same way for every contender.

Each model is an lfp_ref ``Sequential`` whose children are numbered as in a flat
``torch.nn.Sequential``, so the state dict of one loads into the other (:func:`torch_twin`): lfp_ref
and the torch peers start from the same weights and see the same batch.

=============  =====  ==========================================================================
name           batch  layers
=============  =====  ==========================================================================
mlp-1000       128    784-1000-1000-10, ReLU
mlp-256        128    784-256-256-10, ReLU
lenet-5        64     conv 1->6 k5, ReLU, avgpool 2, conv 6->16 k5, ReLU, avgpool 2, 256-120-84-10
lenet-paper    128    conv 1->16 k5, ReLU, maxpool 2, conv 16->16 k5, ReLU, maxpool 2,
                      256-120, ReLU, dropout, 120-84, ReLU, dropout, 84-10 (lfprop's LeNet)
vgg-small      64     3x32x32: conv 3->32, 32->32 (k3 p1), ReLU each, maxpool 2, conv 32->64,
                      64->64, maxpool 2, 4096-256, ReLU, 256-10
=============  =====  ==========================================================================
"""

from dataclasses import dataclass

import numpy as np

from lfp_ref.layers.activations import ReLU
from lfp_ref.layers.containers import Sequential
from lfp_ref.layers.conv import Conv2d
from lfp_ref.layers.dense import Dense
from lfp_ref.layers.dropout import Dropout
from lfp_ref.layers.pool import AvgPool2d, MaxPool2d
from lfp_ref.layers.reshape import Flatten


def mlp(widths, dtype, rng):
    """Flatten, then Dense layers of the given widths with ReLU between them."""
    layers = [Flatten()]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Dense(n_in, n_out, dtype=dtype, rng=rng))
        if i < len(widths) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def lenet5(dtype, rng):
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


def lenet_paper(dtype, rng):
    """lfprop's ``LeNet`` (lfprop/model/model_definitions.py) for 1x28x28 input, as one flat
    Sequential."""
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


def vgg_small(dtype, rng):
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


@dataclass(frozen=True)
class Spec:
    build: object  # (dtype, rng) -> Sequential
    input_shape: tuple  # one sample, (C, H, W)
    batch: int  # the batch size the suite times


MODELS = {
    "mlp-1000": Spec(lambda dtype, rng: mlp([784, 1000, 1000, 10], dtype, rng), (1, 28, 28), 128),
    "mlp-256": Spec(lambda dtype, rng: mlp([784, 256, 256, 10], dtype, rng), (1, 28, 28), 128),
    "lenet-5": Spec(lenet5, (1, 28, 28), 64),
    "lenet-paper": Spec(lenet_paper, (1, 28, 28), 128),
    "vgg-small": Spec(vgg_small, (3, 32, 32), 64),
}


def build(name, dtype=np.float32, seed=0):
    """The lfp_ref model ``name`` with torch's default initialisation drawn from ``seed``."""
    return MODELS[name].build(np.dtype(dtype), np.random.default_rng(seed))


def batch(name, batch_size=None, dtype=np.float32, seed=0, input_shape=None):
    """A batch of uniform [0, 1) inputs and labels in 0..9, the same for every contender."""
    rng = np.random.default_rng(seed)
    size = MODELS[name].batch if batch_size is None else batch_size
    shape = MODELS[name].input_shape if input_shape is None else input_shape
    x = rng.random(size=(size, *shape)).astype(dtype)
    y = rng.integers(0, 10, size=size)
    return x, y


def gemm_flops(model, x):
    """FLOPs of the forward pass's contractions (2 per multiply-add) for input ``x``: Dense
    ``2 B I O``, Conv2d ``2 B O Ho Wo C kh kw``. Runs one forward pass to get the shapes."""
    flops = 0
    for layer in model.layers:
        z = layer.forward(x)
        if isinstance(layer, Dense):
            flops += 2 * x.shape[0] * layer.in_features * layer.out_features
        elif isinstance(layer, Conv2d):
            flops += 2 * z.size * layer.fan_in
        x = z
    return flops


def training_gemm_flops(model, x):
    """FLOPs of the contractions one training step needs: 3x the forward's (forward, weight VJP,
    input VJP) less the first layer's input VJP, which nothing uses."""
    first = next(layer for layer in model.layers if isinstance(layer, (Dense, Conv2d)))
    first_model = Sequential(*model.layers[: model.layers.index(first) + 1])
    before = Sequential(*model.layers[: model.layers.index(first)])
    first_flops = gemm_flops(first_model, x) - (gemm_flops(before, x) if before.layers else 0)
    return 3 * gemm_flops(model, x) - first_flops


def torch_twin(model):
    """The same network in torch (``torch.nn.Sequential``, same child numbering) with the model's
    weights, in the model's dtype. Needs torch."""
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
