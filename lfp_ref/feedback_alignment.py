"""Feedback Alignment (Lillicrap et al. 2016, "Random synaptic feedback weights support error
backpropagation for deep learning"), the training method ``"fa"``.

FA is backprop of the cross-entropy in which every Dense and Conv2d layer hands the error to its
input through a fixed random matrix ``B`` of its weight's shape instead of its weight ``W``. With
``delta = dL/dz`` the error at the layer's output:

    dL/dW    = VJP_W(delta)            the usual weight gradient (Dense: delta^T x)
    dL/db    = sum delta               (over the batch and, for Conv2d, the positions)
    delta_x  = VJP_x(delta) with W replaced by B:
               Dense    delta B                                    (B, I)
               Conv2d   conv_transpose2d(delta, B), the layer's stride, padding, dilation

Activations, pooling, BatchNorm, Flatten, Dropout and the residual sum backpropagate as usual.
The loss is the cross-entropy, averaged over the batch (option ``reduction``: "mean", as the
``"gd"`` method, or "sum"); clipping (``clip``) and the optimizer are the trainer's, as for the
other methods.

**The feedback matrices.** One per Dense and Conv2d layer (a layer used twice has one), drawn
once when the method is built, with torch's default init of the layer's weight (kaiming-uniform
with ``a = sqrt(5)``, i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in`` = in_features or
C*kh*kw), in the order of ``model.named_layers()``, from
``np.random.default_rng([seed, 0xFA, 0xB])``: a stream of the run's seed that is not the one the
weights come from (``default_rng(seed)``; drawing B from it would give ``B = W`` at the start)
nor a data order's (``default_rng([seed, epoch])``). They are the method's state, saved in
checkpoints under ``method/feedback/<layer name>``, so a resumed run uses the same matrices
bit for bit.

**How, without touching the layers.** A layer's ``vjp(v, input_vjp=True)`` computes the input
VJP from ``self.weight``, and ``backward`` calls it. This module walks the model itself, the walk
of ``Sequential._reverse`` and ``Residual.backward`` (children in reverse, each child's use
selected with ``begin_reverse()``, the layers below the first one with parameters skipped when
nobody needs the input's gradient, the residual's two paths summed), and at a Dense or Conv2d
layer asks it for the parameter VJPs only, ``layer.vjp(delta, input_vjp=False)``, and computes
the input VJP from ``B`` with the backend's kernels through the layer's public matrix view (the
one the LRP rules use): ``rows_to_input(dense_vjp_input(output_rows(delta), B as (O, K)))``,
which is ``delta B`` for Dense and the transposed convolution (col2im of ``rows B``) for Conv2d.
Every other leaf runs its own ``backward``. Containers other than Sequential and Residual are
refused with a TypeError: a new container needs its walk here too.
"""

from __future__ import annotations

import numpy as np

from . import losses as _losses
from .engine import Gradients, collect, forward
from .kernels import backend_of
from .layers.base import Container, WeightedLayer, init_uniform
from .layers.containers import Residual, Sequential, accumulate, has_parameters
from .methods import Method, StepResult, register_method
from .optim import clip_coefficient

#: the seed sequence of the feedback matrices is ``[seed, *FEEDBACK_STREAM]``
FEEDBACK_STREAM = (0xFA, 0xB)
#: the prefix of the feedback matrices' keys in the method's state dict
STATE_PREFIX = "feedback/"


def feedback_matrices(model, seed):
    """``{layer name: B}`` for every Dense and Conv2d layer of ``model`` (first name of a
    shared layer), each of its weight's shape and dtype, drawn from
    ``default_rng([seed, 0xFA, 0xB])`` with torch's default init
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, in the order of ``model.named_layers()``."""
    rng = np.random.default_rng([int(seed), *FEEDBACK_STREAM])
    matrices = {}
    for name, layer in model.named_layers():
        if isinstance(layer, WeightedLayer):
            fan_in = layer.weight_matrix().shape[1]
            matrices[name] = init_uniform(rng, layer.weight.shape, fan_in, layer.weight.dtype)
    return matrices


def aligned_input_vjp(layer, delta, feedback):
    """The input VJP of a Dense or Conv2d layer with its weight replaced by ``feedback``:
    ``delta B`` (Dense) or ``conv_transpose2d(delta, B)`` (Conv2d), through the layer's matrix
    view: output rows (N, O) times B as (O, K), back to the input's shape."""
    bk = backend_of(delta, feedback)
    rows = layer.output_rows(delta)  # (N, O)
    matrix = feedback.reshape(feedback.shape[0], -1)  # (O, K)
    cols = bk.dense.dense_vjp_input(
        rows, matrix, bk.empty((rows.shape[0], matrix.shape[1]), delta.dtype)
    )  # (N, K)
    return layer.rows_to_input(cols)


class _AlignedWalk:
    """One backward pass of Feedback Alignment over a model (see the module docstring)."""

    def __init__(self, layers_feedback):
        self.feedback = layers_feedback  # {id(layer): B}

    def reverse(self, layer, delta, needed):
        """``(error at the layer's input or None, {parameter name: gradient})`` for the use of
        ``layer`` selected last (its ``begin_reverse`` was called by the caller's walk)."""
        if isinstance(layer, WeightedLayer):
            delta = backend_of(delta).contiguous(delta)
            _, grads = layer.vjp(delta, input_vjp=False)
            if not needed:
                return None, grads
            return aligned_input_vjp(layer, delta, self.feedback[id(layer)]), grads
        if isinstance(layer, Sequential):
            return self._sequence(layer, delta, needed)
        if isinstance(layer, Residual):
            return self._residual(layer, delta, needed)
        if isinstance(layer, Container):
            raise TypeError(
                f"Feedback Alignment walks Sequential and Residual containers; "
                f"{type(layer).__name__} needs its walk in lfp_ref/feedback_alignment.py"
            )
        return layer.backward(delta, needed)

    def _child(self, child, delta, needed):
        child.begin_reverse()
        return self.reverse(child, delta, needed)

    def _sequence(self, sequence, delta, needed):
        # Sequential._reverse: the error at a child's input is needed when the caller needs it
        # or a layer below has parameters
        children = sequence.children()
        below = [needed] * len(children)
        for i in range(1, len(children)):
            below[i] = below[i - 1] or has_parameters(children[i - 1][1])
        params = {}
        for (name, child), need in zip(reversed(children), reversed(below)):
            if not need and not has_parameters(child):
                return None, params
            delta, own = self._child(child, delta, need)
            accumulate(params, name, own)
        return delta, params

    def _residual(self, block, delta, needed):
        # Residual.backward: z = branch(x) + shortcut(x) hands delta to both paths
        block.saved()
        delta_x, own = self._child(block.branch, delta, needed)
        params = {f"branch.{k}": v for k, v in own.items()}
        if block.shortcut is None:
            return (delta_x + delta if needed else None), params
        delta_s, own = self._child(block.shortcut, delta, needed)
        accumulate(params, "shortcut", own)
        return (delta_x + delta_s if needed else None), params


def fa_gradients(model, x, y, feedback, loss="cross_entropy", reduction="mean", input_grad=False):
    """The Feedback Alignment "gradients" of ``model`` on ``(x, y)``.

    Parameters
    ----------
    feedback : dict
        ``{layer name: B}`` for every Dense and Conv2d layer (:func:`feedback_matrices`).
    loss, reduction : as :func:`lfp_ref.engine.gradients`.
    input_grad : also return the error at the input (through the first layer's B).

    Returns
    -------
    lfp_ref.engine.Gradients
        With ``B = W`` for every layer this is :func:`lfp_ref.engine.gradients` exactly.
    """
    layers = dict(model.named_layers())
    missing = [
        n for n, layer in layers.items() if isinstance(layer, WeightedLayer) and n not in feedback
    ]
    if missing:
        raise ValueError(f"no feedback matrix for the layers {missing}")
    by_layer = {}
    for name, matrix in feedback.items():
        layer = layers.get(name)
        if not isinstance(layer, WeightedLayer) or matrix.shape != layer.weight.shape:
            raise ValueError(
                f"feedback matrix {name!r} of shape {matrix.shape} fits no Dense or Conv2d "
                "layer of that name and weight shape"
            )
        by_layer[id(layer)] = matrix
    x, logits = forward(model, x)
    value, delta = _losses.get(loss)(logits, y, reduction=reduction)
    delta = backend_of(logits).contiguous(delta, dtype=logits.dtype)
    delta_in, params = _AlignedWalk(by_layer).reverse(model, delta, input_grad)
    ordered, squared = collect(model, params)
    return Gradients(ordered, delta_in, logits, value, squared)


@register_method("fa")
class FeedbackAlignment(Method):
    """Feedback Alignment: backprop of the cross-entropy with fixed random feedback matrices in
    place of the Dense and Conv2d weights' transposes (module docstring). Option
    ``reduction``: "mean" (default, as ``"gd"``) or "sum"."""

    options = {"reduction": "mean"}

    def __init__(self, config, model):
        super().__init__(config, model)
        if self.settings["reduction"] not in _losses.REDUCTIONS:
            raise ValueError(
                f"method fa: reduction must be one of {_losses.REDUCTIONS}, got "
                f"{self.settings['reduction']!r}"
            )
        if getattr(model, "output_loss", None) is not None:
            raise ValueError(
                "Feedback Alignment here trains networks with a cross-entropy output (Dense, "
                f"Conv2d and their activations); this model's output loss is "
                f"{model.output_loss!r} (a spiking network?): train it with 'lfp', 'gd' or "
                "'surrogate'"
            )
        self.feedback = feedback_matrices(model, config.seed)
        if not self.feedback:
            raise ValueError("Feedback Alignment needs a model with Dense or Conv2d layers")

    def step(self, model, optimizer, x, y):
        g = fa_gradients(model, x, y, self.feedback, reduction=self.settings["reduction"])
        scale = 1.0
        if self.config.clip is not None:
            scale = clip_coefficient(g.squared_norms, self.config.clip)[0]
        optimizer.step(g.params, scale=scale, squared_norms=g.squared_norms)
        return StepResult(g.logits, self.reward(g.logits, y))

    def state_dict(self):
        return {f"{STATE_PREFIX}{name}": matrix for name, matrix in self.feedback.items()}

    def load_state_dict(self, state):
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(
                f"expected the feedback matrices {sorted(expected)}, got {sorted(state)}"
            )
        loaded = {}
        for name, matrix in self.feedback.items():
            saved = np.asarray(state[f"{STATE_PREFIX}{name}"])
            if saved.shape != matrix.shape or saved.dtype != matrix.dtype:
                raise ValueError(
                    f"feedback matrix {name!r}: expected {matrix.dtype} {matrix.shape}, got "
                    f"{saved.dtype} {saved.shape}"
                )
            loaded[name] = saved.copy()
        self.feedback = loaded


__all__ = [
    "FEEDBACK_STREAM",
    "FeedbackAlignment",
    "aligned_input_vjp",
    "fa_gradients",
    "feedback_matrices",
]
