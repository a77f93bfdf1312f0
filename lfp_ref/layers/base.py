"""The layer protocol every lfp_ref layer follows.

A layer has three passes, each with its own kernels:

- ``forward(x)``: computes ``z`` and caches what the other two passes need;
- ``feedback(reward, rule_for)``: LFP; takes the reward at the layer's output and returns
  ``(reward at the input, {parameter name: parameter feedback})``;
- ``backward(grad)``: backprop; returns ``(dL/dx, {parameter name: dL/dparameter})``.

Layers that are linear in their input given their parameters (Dense, Conv2d, AvgPool2d,
BatchNorm) subclass :class:`LinearLayer`: they only provide ``vjp(rho)``, and the rule (by default
LFP-epsilon, :class:`lfp_ref.rules.Epsilon`) turns it into feedback. Backprop is then ``vjp(grad)``.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_rng(rng):
    """A ``numpy.random.Generator`` from a seed, a Generator, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"lfp_ref computes in float32 or float64, got dtype {dtype}")
    return dtype


class Layer:
    """Base class. Subclasses list their parameters in ``param_names`` (torch names, torch
    layouts) and non-trainable state in ``buffer_names``."""

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()

    def __init__(self):
        self.training = True
        self._cache = None

    # -- the three passes ------------------------------------------------------------------

    def forward(self, x):
        raise NotImplementedError

    def feedback(self, reward, rule_for):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def __call__(self, x):
        """Validated forward: x must be a finite float array in the model's dtype."""
        from .._checks import check_array

        return self.forward(check_array(x, "x", self.dtype))

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(
                f"{self!r}: feedback/backward needs the forward pass first; call the model on "
                "the input (lfp_ref.feedback and lfp_ref.gradients do this for you)"
            )
        return self._cache

    # -- structure ---------------------------------------------------------------------------

    def children(self):
        """``(name, layer)`` pairs of sub-layers; leaves have none."""
        return ()

    def named_layers(self, prefix=""):
        """Every layer in the tree, depth first, with its dotted name ("" for the root)."""
        yield prefix, self
        for name, child in self.children():
            yield from child.named_layers(f"{prefix}.{name}" if prefix else name)

    def own_parameters(self):
        return {n: getattr(self, n) for n in self.param_names if getattr(self, n) is not None}

    def own_buffers(self):
        return {n: getattr(self, n) for n in self.buffer_names if getattr(self, n) is not None}

    def named_parameters(self):
        """``(dotted name, array)`` for every parameter, in torch's order and naming; the arrays
        are the live parameters (optimizers update them in place)."""
        for prefix, layer in self.named_layers():
            for name, value in layer.own_parameters().items():
                yield (f"{prefix}.{name}" if prefix else name), value

    def parameters(self):
        return dict(self.named_parameters())

    @property
    def dtype(self):
        """The dtype of the parameters (None for a network without parameters)."""
        for _, value in self.named_parameters():
            return value.dtype
        return None

    # -- state dict --------------------------------------------------------------------------

    def state_dict(self):
        """Parameters and buffers under torch's names, e.g. ``{"0.weight": ..., "0.bias": ...}``
        (copies)."""
        state = {}
        for prefix, layer in self.named_layers():
            entries = {**layer.own_parameters(), **layer.own_buffers()}
            for name in (*layer.param_names, *layer.buffer_names):
                if name in entries:
                    state[f"{prefix}.{name}" if prefix else name] = np.array(entries[name])
        return state

    def load_state_dict(self, state):
        """Copy arrays from a state dict (e.g. a torch one converted with
        ``{k: v.numpy() for k, v in sd.items()}``) into the parameters and buffers, in place,
        cast to each parameter's dtype. Missing, unexpected or mis-shaped keys are an error that
        lists them all."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        misshaped = [
            f"{k}: expected {own[k].shape}, got {np.shape(state[k])}"
            for k in own
            if k in state and np.shape(state[k]) != own[k].shape
        ]
        if missing or unexpected or misshaped:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            if misshaped:
                parts.append(f"mis-shaped {misshaped}")
            raise ValueError("load_state_dict: " + "; ".join(parts))
        for prefix, layer in self.named_layers():
            entries = {**layer.own_parameters(), **layer.own_buffers()}
            for name, target in entries.items():
                value = np.asarray(state[f"{prefix}.{name}" if prefix else name])
                if target.ndim == 0:
                    setattr(layer, name, np.asarray(value, dtype=target.dtype).copy())
                else:
                    target[...] = value
        return self

    # -- modes and dtype ---------------------------------------------------------------------

    def train(self, mode=True):
        """Training mode: BatchNorm uses batch statistics, Dropout drops."""
        for _, layer in self.named_layers():
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Cast parameters and floating buffers to ``dtype`` (float32 or float64), in place."""
        dtype = check_dtype(dtype)
        for _, layer in self.named_layers():
            for name, value in {**layer.own_parameters(), **layer.own_buffers()}.items():
                if value.dtype.kind == "f":
                    setattr(layer, name, np.ascontiguousarray(value, dtype=dtype))
            layer._cache = None
        return self

    def reset_parameters(self, rng=None):
        """Re-initialise every parameter as torch does, drawing from ``rng`` (a seed or a
        Generator) in registration order."""
        rng = as_rng(rng)
        for _, layer in self.named_layers():
            if hasattr(layer, "_init_parameters"):
                layer._init_parameters(rng)
        return self

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""


class LinearLayer(Layer):
    """A layer linear in its input given its parameters: ``z = f(x; theta)``.

    Subclasses implement ``forward`` (caching ``self._cache = (x, z, ...)``) and ``vjp(v)``
    returning ``(VJP_x(v), {name: VJP_theta(v)})``, each summed over the batch and over shared
    positions. The rule decides how a reward becomes ``rho`` and how VJPs become feedback.
    """

    def vjp(self, v):
        raise NotImplementedError

    def feedback(self, reward, rule_for):
        return rule_for(self).propagate(self, reward)

    def backward(self, grad):
        self._cached()
        return self.vjp(np.ascontiguousarray(grad))

    @property
    def cached_input(self):
        return self._cached()[0]

    @property
    def cached_output(self):
        return self._cached()[1]


# -- the layer families: code above the layers dispatches on these, never on concrete classes --


class WeightedLayer(LinearLayer):
    """A linear layer with a ``weight`` (output features first, torch's layout) and an optional
    ``bias``, the layers every LRP rule applies to (Dense, Conv2d). Subclasses also provide
    ``matrix_view()`` (see :class:`lfp_ref.rules`) so that rules see them as ``X W^T + b``."""


class PoolingLayer(Layer):
    """Window pooling over NCHW input (AvgPool2d, MaxPool2d)."""


class NormalizationLayer(LinearLayer):
    """Per-channel normalisation with parameters ``weight`` (gamma) and ``bias`` (beta) and
    running-statistics buffers (BatchNorm1d, BatchNorm2d)."""


class Activation(Layer):
    """``y = f(x)`` elementwise (ReLU, Tanh, Step, ...): the identity rule under LFP,
    ``dL/dx = dL/dy * f'(x)`` under backprop. Subclasses give ``function(x)`` and
    ``derivative(x, y)``."""

    def forward(self, x):
        y = self.function(x)
        self._cache = (x, y)
        return y

    def feedback(self, reward, rule_for):
        self._cached()
        return reward, {}

    def backward(self, grad):
        x, y = self._cached()
        return grad * self.derivative(x, y), {}

    def function(self, x):
        raise NotImplementedError

    def derivative(self, x, y):
        raise NotImplementedError


class Container(Layer):
    """A layer made of other layers (Sequential, Residual): its passes walk its children."""


def init_uniform(rng, shape, fan_in, dtype):
    """torch's default init for Linear/Conv (kaiming_uniform with a=sqrt(5), and the bias):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
