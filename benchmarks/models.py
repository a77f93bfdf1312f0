"""The benchmark models, built the same way for every contender."""

import numpy as np

import lfp_ref as lfp


def mlp(widths, rng, dtype):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(lfp.Dense(n_in, n_out, dtype=dtype, rng=rng))
        if i < len(widths) - 2:
            layers.append(lfp.ReLU())
    return lfp.Sequential(lfp.Flatten(), *layers)


def lenet5(rng, dtype):
    """conv 1->6 k5, ReLU, avgpool 2, conv 6->16 k5, ReLU, avgpool 2, 256-120-84-10."""
    return lfp.Sequential(
        lfp.Conv2d(1, 6, 5, dtype=dtype, rng=rng),
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Conv2d(6, 16, 5, dtype=dtype, rng=rng),
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Flatten(),
        lfp.Dense(256, 120, dtype=dtype, rng=rng),
        lfp.ReLU(),
        lfp.Dense(120, 84, dtype=dtype, rng=rng),
        lfp.ReLU(),
        lfp.Dense(84, 10, dtype=dtype, rng=rng),
    )


MODELS = {
    "mlp-256": (lambda rng, dtype: mlp([784, 256, 256, 10], rng, dtype), (1, 28, 28)),
    "lenet-5": (lenet5, (1, 28, 28)),
}


def batch(name, batch_size, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shape = MODELS[name][1]
    x = rng.random(size=(batch_size, *shape)).astype(dtype)
    y = rng.integers(0, 10, size=batch_size)
    return x, y
