"""Spec section 5 properties on whole networks mixing every layer type."""

import numpy as np
import pytest

import lfp_ref as lfp
from tests.tolerances import assert_close


def mixed_relu_cnn(rng, leaky=False):
    """Dense, Conv2d (stride 2, padding), AvgPool, MaxPool, train-mode BatchNorm, a residual
    block and Flatten, with ReLU (or LeakyReLU) activations."""
    act = (lambda: lfp.LeakyReLU(0.1)) if leaky else lfp.ReLU
    block = lfp.Sequential(
        lfp.Conv2d(4, 4, 3, padding=1, bias=False, rng=rng),
        lfp.BatchNorm2d(4),
        act(),
        lfp.Conv2d(4, 4, 3, padding=1, rng=rng),
    )
    return lfp.Sequential(
        # no bias before a train-mode BatchNorm: its true gradient is exactly 0
        lfp.Conv2d(2, 4, 3, stride=2, padding=1, bias=False, rng=rng),
        lfp.BatchNorm2d(4),
        act(),
        lfp.Residual(block),
        act(),
        lfp.MaxPool2d(2),
        lfp.Conv2d(4, 5, 3, padding=1, rng=rng),
        act(),
        lfp.AvgPool2d(2),
        lfp.Flatten(),
        lfp.Dense(5 * 2 * 2, 6, bias=False, rng=rng),
        lfp.BatchNorm1d(6),
        act(),
        lfp.Dense(6, 3, rng=rng),
    )


@pytest.mark.parametrize("leaky", [False, True], ids=["relu", "leakyrelu"])
def test_implicit_weight_scaling_every_layer_type(rng, leaky):
    model = mixed_relu_cnn(rng, leaky)
    # BN's gamma/beta start at 1/0; move them so |theta| scaling and the bias path are exercised
    for _, param in model.named_parameters():
        if param.ndim == 1:
            param[...] = rng.uniform(0.5, 1.5, size=param.shape) * rng.choice([-1, 1], param.shape)
    x = rng.normal(size=(6, 2, 16, 16))
    y = rng.integers(0, 3, size=6)
    # eps -> 0: 1e-300 vanishes against every nonzero |z| but keeps 0/0 (an all-zero pooling
    # window, which receives zero reward) at 0
    fb = lfp.feedback(model, x, y, reward=lfp.rewards.softmax_loss, eps=1e-300)
    g = lfp.gradients(model, x, y, loss="cross_entropy", reduction="sum")
    assert len(fb.params) == len(model.parameters()) == 15
    for name, param in model.named_parameters():
        assert_close(fb.params[name], -np.abs(param) * g.params[name])
    # the reward at the input is x times minus the input gradient
    assert_close(fb.input_reward, -x * g.input_grad)
