"""Rewards at the output (spec section 3). A reward is positive for "more of this".

Every reward is a function ``reward(logits, y) -> r`` with ``r`` of the logits' shape; ``logits``
is (B, C) and ``y`` integer labels (B,). Parametrised rewards are factories returning such a
function (``bounded_softmax(lower=0.1)``).
"""

from ._checks import check_labels, check_logits_2d
from .kernels import backend_of


def _one_hot(logits, y, what):
    check_logits_2d(logits, what)
    y = check_labels(y, logits.shape[1], logits.shape[0])
    bk = backend_of(logits)
    y = bk.asarray(y)  # the labels where the logits are (a copy to the device for a GPU)
    onehot = bk.xp.zeros_like(logits)
    onehot[bk.xp.arange(len(y)), y] = 1
    return onehot, y


def _special(logits):
    # scipy.special for NumPy arrays, its CuPy twin on a GPU (lfp_ref.kernels.Backend.special)
    return backend_of(logits).special


def softmax_loss(logits, y):
    """``r = z * (Y - softmax(z))``, the paper's default. At the last layer ``rho = Y - p`` up
    to eps, i.e. minus the gradient of the summed cross-entropy w.r.t. the logits."""
    onehot, _ = _one_hot(logits, y, "softmax_loss")
    return logits * (onehot - _special(logits).softmax(logits, axis=1))


def sigmoid_loss(logits, y):
    """``r = z * (Y - sigmoid(z))``."""
    onehot, _ = _one_hot(logits, y, "sigmoid_loss")
    return logits * (onehot - _special(logits).expit(logits))


def binary_sigmoid_loss(logits, y):
    """One logit per sample, (B,) or (B, 1): ``r = z * (y - sigmoid(z))``, y in {0, 1}."""
    z = logits.reshape(-1)
    if logits.ndim == 2 and logits.shape[1] != 1 or logits.ndim > 2:
        raise ValueError(f"binary_sigmoid_loss expects logits (B,) or (B, 1), got {logits.shape}")
    target = backend_of(z).asarray(check_labels(y, 2, z.shape[0]), dtype=logits.dtype)
    return (z * (target - _special(z).expit(z))).reshape(logits.shape)


def bounded_softmax(lower=0.0, higher=1.0, sign_only=False):
    """``r = z * (Y - p~)`` (or ``sign(z) * (Y - p~)``) where ``p~ = softmax(z)`` clipped to 1
    above ``higher`` and to 0 below ``lower``."""
    if not 0 <= lower <= higher <= 1:
        raise ValueError(f"bounded_softmax needs 0 <= lower <= higher <= 1, got {lower}, {higher}")

    def reward(logits, y):
        onehot, _ = _one_hot(logits, y, "bounded_softmax")
        xp = backend_of(logits).xp
        p = _special(logits).softmax(logits, axis=1)
        p = xp.where(p > higher, 1, xp.where(p < lower, 0, p)).astype(logits.dtype)
        scale = xp.sign(logits) if sign_only else logits
        return scale * (onehot - p)

    reward.__name__ = f"bounded_softmax(lower={lower}, higher={higher}, sign_only={sign_only})"
    return reward


def correct_classification(logits, y):
    """``r[b, y_b] = sign(z[b, y_b])`` where the label's logit is the maximum (ties count as
    correct); every other entry 0."""
    _, y = _one_hot(logits, y, "correct_classification")
    xp = backend_of(logits).xp
    rows = xp.arange(len(y))
    label_logit = logits[rows, y]
    r = xp.zeros_like(logits)
    correct = label_logit == logits.max(axis=1)
    r[rows[correct], y[correct]] = xp.sign(label_logit[correct])
    return r


def misclassification(logits, y):
    """``r[b, c] = -sign(z[b, c])`` where ``z[b, c] > z[b, y_b]`` (classes that beat the label),
    else 0."""
    _, y = _one_hot(logits, y, "misclassification")
    xp = backend_of(logits).xp
    label_logit = logits[xp.arange(len(y)), y][:, None]
    return xp.where(logits > label_logit, -xp.sign(logits), 0).astype(logits.dtype)


def maximize_neuron(logits, y=None):
    """``r = sign(z) * (1 - sigmoid(z))`` for every output (y is ignored)."""
    return backend_of(logits).xp.sign(logits) * (1 - _special(logits).expit(logits))


def minimize_neuron(logits, y=None):
    """``r = -sign(z) * (1 - sigmoid(z))`` for every output (y is ignored)."""
    return -maximize_neuron(logits, y)


def snn_rate_coded(divide_by_t=False):
    """The rate-coded reward of a spiking network (lfp-spec.md section 6; lfprop's
    ``SnnCorrectClassRewardSpikesRateCoded``), a factory: ``snn_rate_coded()`` is the reward
    function ``(spikes, y) -> r`` registered as "snn_rate_coded", and
    ``snn_rate_coded(divide_by_t=True)`` the same divided by T, registered as
    "snn_rate_coded_mean".

    Spikes S (T, B, C) (a SpikingSequential's output), labels y (B,)::

        P   = sum_t S,   N = T - P                       spike and silence counts (B, C)
        pos = 1 - sigmoid(P - T//2),   neg = 1 - sigmoid(N - T//2)
        r[t, b, c] = pos[b, c]               if c == y_b  (at every step)
                   = -S[t, b, c] neg[b, c]   otherwise

    The label's output is rewarded at every step, less the more it already fires; the other
    outputs are punished where they fire, less the more they are already silent. lfprop's
    minimal SNN example divides this by T (``reward /= n_steps``), its experiment script does
    not: "snn_rate_coded" is the undivided one. lfprop writes N as ``sum_t |S - 1|``, the same
    for binary spikes.
    """

    def reward(spikes, y):
        what = "snn_rate_coded" + ("_mean" if divide_by_t else "")
        if getattr(spikes, "ndim", 0) != 3:
            raise ValueError(
                f"{what} expects spikes of shape (T, B, C) (a SpikingSequential's output), "
                f"got {getattr(spikes, 'shape', None)}"
            )
        steps, batch, classes = spikes.shape
        bk = backend_of(spikes)
        xp, expit = bk.xp, bk.special.expit
        y = bk.asarray(check_labels(y, classes, batch))
        count = spikes.sum(axis=0)  # P, (B, C)
        half = steps // 2
        pos = 1 - expit(count - half)  # (B, C)
        neg = 1 - expit((steps - count) - half)  # (B, C)
        label = xp.zeros((batch, classes), dtype=bool)
        label[xp.arange(batch), y] = True
        r = xp.where(label, pos, -spikes * neg)  # (T, B, C), label entries pos at every step
        if divide_by_t:
            r = r / steps
        return r.astype(spikes.dtype, copy=False)

    reward.__name__ = "snn_rate_coded_mean" if divide_by_t else "snn_rate_coded"
    return reward


REWARDS = {
    "softmax_loss": softmax_loss,
    "sigmoid_loss": sigmoid_loss,
    "binary_sigmoid_loss": binary_sigmoid_loss,
    "bounded_softmax": bounded_softmax(),
    "correct_classification": correct_classification,
    "misclassification": misclassification,
    "maximize_neuron": maximize_neuron,
    "minimize_neuron": minimize_neuron,
    "snn_rate_coded": snn_rate_coded(),
    "snn_rate_coded_mean": snn_rate_coded(divide_by_t=True),
}


def get(reward):
    """A reward function from a name in ``REWARDS`` or a callable."""
    if callable(reward):
        return reward
    try:
        return REWARDS[reward]
    except KeyError:
        raise ValueError(f"unknown reward {reward!r}; known: {', '.join(REWARDS)}") from None


def name_of(reward):
    """A short name of what was given as ``reward=``: its name, a function's ``__name__``, or
    "(given array)"."""
    if isinstance(reward, str):
        return reward
    if hasattr(reward, "shape") or isinstance(reward, (list, tuple)):
        return "(given array)"
    return getattr(reward, "__name__", repr(reward))
