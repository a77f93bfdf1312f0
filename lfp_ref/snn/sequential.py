"""SpikingSequential: LIF layers (with MaxPool2d, Flatten, Dropout between them) run over T time
steps on a static input (direct current coding), time folded into the batch."""

from __future__ import annotations

from ..kernels import backend_of
from ..layers.containers import Sequential
from ..layers.dropout import Dropout
from ..layers.pool import MaxPool2d
from ..layers.reshape import Flatten
from .lif import LIF, check_timesteps

#: the layers a SpikingSequential holds: the LIF layers and what may sit between them
ALLOWED_LAYERS = (LIF, MaxPool2d, Flatten, Dropout)


def spike_counts(spikes):
    """``sum_t S``: the spike count of every output, (B, C), from spikes (T, B, C)."""
    if getattr(spikes, "ndim", 0) != 3:
        raise ValueError(
            f"spike_counts expects spikes of shape (T, B, C), got {getattr(spikes, 'shape', None)}"
        )
    return spikes.sum(axis=0)


def predict(spikes):
    """The predicted class of every sample, (B,): the output with the most spikes over the T
    steps (ties: the first such class, as torch's argmax)."""
    return spike_counts(spikes).argmax(axis=-1)


class SpikingSequential(Sequential):
    """A spiking network: the same static input at each of T steps, the output spikes (T, B, C).

    Forward. The input x (B, ...) is repeated to (T*B, ...) (step t in rows t*B .. t*B+B-1) and
    walked through the children in order (the containers' walk, so :func:`lfp_ref.trace` records
    every layer): each :class:`LIF` computes its current for all steps with one call of its
    Dense/Conv2d and runs the membrane recursion over T; MaxPool2d, Flatten and Dropout act on the
    (T*B, ...) rows unchanged (a Dropout draws an independent mask at every step, as a torch
    Dropout called once per step does). The last layer's spikes are returned as (T, B, C).
    Membranes start at zero in every pass: there is no state between batches.

    The first LIF's input is the static input at every step (when nothing before it differs from
    step to step: Flatten, MaxPool2d, an eval-mode Dropout), so its current is computed once, on
    B rows, and its weight VJP takes the sum over the steps (:meth:`LIF.forward`'s ``repeated``;
    equal to the per-step computation in exact arithmetic). ``share_static_current = False`` on
    an instance turns this off (every current on T*B rows).

    MaxPool2d on binary spikes meets ties all the time: the reward (and the gradient) of a window
    goes to its FIRST maximum in row-major window order, as torch's max_pool2d does.

    Reverse passes. The reward (or gradient) at the output spikes (T, B, C) is unfolded to
    (T*B, C) rows and walked back through the children; the reward at the input is the sum over
    the T steps of what each step hands down (the adjoint of the repetition), shape (B, ...).
    ``lfp.feedback(net, x, y, reward="snn_rate_coded")``, ``lfp.lfp_step``, ``lfp.trace`` and
    ``lfp.gradients(net, x, y, loss="snn_ce_rate")`` take it as any other model.

    Prediction: the class with the most spikes, :func:`lfp_ref.snn.predict`.

    Training (:mod:`lfp_ref.train.outputs`): the network answers the trainer's output protocol
    with its spike counts as class scores (:meth:`class_scores`), the rate-coded cross-entropy
    ``"snn_ce_rate"`` as its loss (:attr:`output_loss`) and the rate-coded reward
    ``"snn_rate_coded"`` as the reward a run uses when its configuration names none
    (:attr:`default_reward`).

    Parameters
    ----------
    *layers : LIF, MaxPool2d, Flatten, Dropout
        Children "0", "1", ... (parameters "0.current.weight", ...); the last one a LIF.
    timesteps : int >= 1
        T, the number of steps the input is presented for (lfprop: 15 to 25).
    """

    #: the loss the trainer logs and evaluates (a name in lfp_ref.losses.LOSSES)
    output_loss = "snn_ce_rate"
    #: the reward of a training run that names none (a name in lfp_ref.rewards.REWARDS)
    default_reward = "snn_rate_coded"
    #: compute the current of a LIF whose input is the static input on its B rows, once
    #: (:meth:`repeated_input_child`); False: on all T*B rows, as any other LIF
    share_static_current = True

    def __init__(self, *layers, timesteps):
        super().__init__(*layers)
        for i, layer in enumerate(self.layers):
            self._check_child(str(i), layer)
        if not self.layers or not isinstance(self.layers[-1], LIF):
            last = repr(self.layers[-1]) if self.layers else "nothing"
            raise ValueError(
                f"SpikingSequential must end with a LIF layer (its spikes are the output), got "
                f"{last}"
            )
        self.timesteps = timesteps

    @staticmethod
    def _check_child(name, layer):
        if not isinstance(layer, ALLOWED_LAYERS):
            allowed = ", ".join(cls.__name__ for cls in ALLOWED_LAYERS)
            raise TypeError(
                f"SpikingSequential item {name} is {layer!r}; it holds {allowed} (wrap a Dense or "
                "Conv2d in LIF(...): the LIF is the non-linearity)"
            )

    @property
    def timesteps(self):
        """T, the number of time steps; setting it sets every LIF's."""
        return self._timesteps

    @timesteps.setter
    def timesteps(self, value):
        self._timesteps = check_timesteps(value)
        for layer in self.layers:
            if isinstance(layer, LIF):
                layer.timesteps = self._timesteps

    def class_scores(self, output):
        """The spike count of every class, (B, C), from the output spikes (T, B, C): its argmax
        is the prediction (:func:`predict`)."""
        return spike_counts(output)

    def lif_layers(self):
        """``(name, LIF)`` for every LIF layer, in order."""
        return [(name, layer) for name, layer in self.children() if isinstance(layer, LIF)]

    def set_surrogate(self, surrogate, alpha=None):
        """Set every LIF's surrogate ("atan" or "heaviside") and, when given, ``alpha``."""
        for _, layer in self.lif_layers():
            layer.set_surrogate(surrogate, alpha)
        return self

    def set_child(self, name, layer):
        self._check_child(name, layer)
        super().set_child(name, layer)
        if isinstance(layer, LIF):
            layer.timesteps = self._timesteps

    def repeated_input_child(self):
        """The name of the LIF whose input is the static input repeated over the T steps, or
        None: the first LIF, if every layer before it maps each (T*B, ...) row to a row by the
        same function at every step. Flatten and MaxPool2d do (row by row, deterministic), and
        so does a Dropout in eval mode (the identity); a Dropout in training mode draws a mask
        per step, so a LIF after it sees a different input at each step and runs the per-step
        path."""
        if not self.share_static_current:
            return None
        for name, layer in self.children():
            if isinstance(layer, LIF):
                return name
            if not isinstance(layer, (Flatten, MaxPool2d)) and not (
                isinstance(layer, Dropout) and not layer.training
            ):
                return None
        return None

    # -- the passes ------------------------------------------------------------------------

    def forward(self, x):
        steps = self._timesteps
        if getattr(x, "ndim", 0) < 2:
            raise ValueError(
                f"SpikingSequential expects a batch of static inputs (B, ...), got shape "
                f"{getattr(x, 'shape', None)}; it repeats it over the T = {steps} steps itself"
            )
        bk = backend_of(x)
        batch = x.shape[0]
        folded = bk.empty((steps * batch, *x.shape[1:]), x.dtype)
        folded.reshape(steps, *x.shape)[...] = x  # (T, B, ...): the same input at every step
        repeated = self.repeated_input_child()
        out = folded
        for name, layer in self.children():  # the containers' walk (Sequential.forward)
            out = self._forward_child(name, layer, out, repeated=name == repeated)  # (T*B, C)
        self.save((x.shape, steps, out.shape))
        return out.reshape(steps, batch, *out.shape[1:])  # (T, B, C)

    def _forward_child(self, name, child, x, repeated=False):
        if not repeated:
            return super()._forward_child(name, child, x)
        z = child.forward(x, repeated=True)  # x: the static input at every step
        if self.observer is not None:
            self.observer(self, name, child, "forward", x, z)
        return z

    def _fold(self, value, what):
        x_shape, steps, out_shape = self.saved()
        expected = (steps, x_shape[0], *out_shape[1:])
        if getattr(value, "shape", None) != expected:
            raise ValueError(
                f"SpikingSequential: {what} must have the output spikes' shape (T, B, C) = "
                f"{expected}, got {getattr(value, 'shape', type(value).__name__)}"
            )
        return backend_of(value).contiguous(value).reshape(out_shape)  # (T*B, C)

    def _unfold_input(self, value):
        """The value at the repeated input (T*B, ...) summed over the steps: (B, ...)."""
        if value is None:
            return None
        x_shape, steps, _ = self.saved()
        return value.reshape(steps, *x_shape).sum(axis=0)

    def feedback(self, reward, rule_for, input_reward=True):
        value, params = self._reverse(self._fold(reward, "the reward"), rule_for, input_reward)
        return self._unfold_input(value), params

    def backward(self, grad, input_grad=True):
        value, params = self._reverse(self._fold(grad, "the gradient"), None, input_grad)
        return self._unfold_input(value), params

    def __repr__(self):
        inner = "".join(
            f"\n  ({n}): {'  '.join(repr(c).splitlines(True))}" for n, c in self.children()
        )
        return f"SpikingSequential(timesteps={self._timesteps},{inner}\n)"
