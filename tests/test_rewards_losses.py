"""Rewards (spec section 3) against literal transcriptions; losses against finite differences."""

import numpy as np
import pytest

from lfp_ref import losses, rewards
from tests.oracle.dense import finite_difference
from tests.tolerances import assert_close


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.fixture
def batch(rng):
    logits = rng.normal(size=(7, 4)) * 2
    y = rng.integers(0, 4, size=7)
    onehot = np.eye(4)[y]
    return logits, y, onehot


def test_softmax_and_sigmoid_loss(batch):
    z, y, onehot = batch
    assert_close(rewards.softmax_loss(z, y), z * (onehot - _softmax(z)))
    assert_close(rewards.sigmoid_loss(z, y), z * (onehot - _sigmoid(z)))


def test_binary_sigmoid_loss(rng):
    z = rng.normal(size=(6, 1))
    y = rng.integers(0, 2, size=6)
    assert_close(rewards.binary_sigmoid_loss(z, y), z * (y[:, None] - _sigmoid(z)))


@pytest.mark.parametrize("sign_only", [False, True], ids=["value", "sign"])
def test_bounded_softmax(batch, sign_only):
    z, y, onehot = batch
    lower, higher = 0.1, 0.6
    p = _softmax(z)
    p_tilde = p.copy()
    for idx, v in np.ndenumerate(p):
        p_tilde[idx] = 1.0 if v > higher else (0.0 if v < lower else v)
    scale = np.sign(z) if sign_only else z
    got = rewards.bounded_softmax(lower, higher, sign_only)(z, y)
    assert_close(got, scale * (onehot - p_tilde))


def test_correct_and_misclassification_literal(batch):
    z, y, _ = batch
    z[0, :] = 1.5  # a tie: counts as correct
    want_correct = np.zeros_like(z)
    want_mis = np.zeros_like(z)
    for b in range(z.shape[0]):
        if z[b, y[b]] == z[b].max():
            want_correct[b, y[b]] = np.sign(z[b, y[b]])
        for c in range(z.shape[1]):
            if z[b, c] > z[b, y[b]]:
                want_mis[b, c] = -np.sign(z[b, c])
    np.testing.assert_array_equal(rewards.correct_classification(z, y), want_correct)
    np.testing.assert_array_equal(rewards.misclassification(z, y), want_mis)
    assert want_correct[0, y[0]] == 1.0


def test_maximize_minimize_neuron(batch):
    z, y, _ = batch
    assert_close(rewards.maximize_neuron(z, y), np.sign(z) * (1 - _sigmoid(z)))
    assert_close(rewards.minimize_neuron(z, y), -np.sign(z) * (1 - _sigmoid(z)))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["cross_entropy", "mse"])
def test_loss_gradients_match_finite_differences(batch, name, reduction):
    z, y, _ = batch
    fn = losses.get(name)
    _, grad = fn(z, y, reduction=reduction)
    assert_close(grad, finite_difference(lambda: fn(z, y, reduction=reduction)[0], z), rtol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits(rng, reduction):
    z = rng.normal(size=(5, 1)) * 3
    y = rng.integers(0, 2, size=5)
    value, grad = losses.binary_cross_entropy_with_logits(z, y, reduction)
    s = _sigmoid(z[:, 0])
    per = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert value == pytest.approx(per.mean() if reduction == "mean" else per.sum(), rel=1e-12)
    fd = finite_difference(lambda: losses.binary_cross_entropy_with_logits(z, y, reduction)[0], z)
    assert_close(grad, fd, rtol=1e-7)


def test_cross_entropy_value(batch):
    z, y, onehot = batch
    value, _ = losses.cross_entropy(z, y, "sum")
    assert value == pytest.approx(-np.sum(onehot * np.log(_softmax(z))), rel=1e-12)


def test_softmax_reward_is_minus_summed_ce_gradient_times_logits(batch):
    z, y, _ = batch
    _, grad = losses.cross_entropy(z, y, "sum")
    assert_close(rewards.softmax_loss(z, y), -z * grad)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 4, 0, 1, 2, 3]), r"labels must lie in \[0, 3\]"),
        (np.array([0, 1, 2]), r"must have shape \(7,\)"),
        (np.zeros(7), r"must be integer labels"),
    ],
    ids=["out-of-range", "wrong-length", "float-labels"],
)
def test_bad_labels_are_rejected(batch, labels, message):
    z, _, _ = batch
    with pytest.raises((ValueError, TypeError), match=message):
        rewards.softmax_loss(z, labels)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown reward 'nope'; known: softmax_loss"):
        rewards.get("nope")
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("nope")
