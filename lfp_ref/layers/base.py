"""The layer protocol every lfp_ref layer follows.

A layer has three passes, each with its own kernels:

- ``forward(x)``: computes ``z`` and saves what the other two passes need (``self.save(...)``);
- ``feedback(reward, rule_for, input_reward=True)``: LFP; takes the reward at the layer's output
  and returns ``(reward at the input, {parameter name: parameter feedback})``;
- ``backward(grad, input_grad=True)``: backprop; returns ``(dL/dx, {parameter name: dL/dp})``.

``input_reward=False`` / ``input_grad=False`` say that nobody needs the reward or gradient at the
layer's input (training needs only the parameters'): the layer may return None for it and skip
that VJP.

Layers that are linear in their input given their parameters (Dense, Conv2d, AvgPool2d,
BatchNorm) subclass :class:`LinearLayer`: they only provide ``vjp(v, input_vjp=True)``, and the
rule (by default LFP-epsilon, :class:`lfp_ref.rules.Epsilon`) turns it into feedback. Backprop is
then ``vjp(grad)``.

A layer can be used many times in one pass (a layer that appears twice in a model, or a spiking
layer run at each of T time steps). Every forward call pushes its cache onto the layer's stack of
uses; the containers' reverse walks visit the uses in reverse order (``begin_reverse()`` selects
the next one, and ``saved()`` returns the selected use inside the layer's reverse call). The uses
stay until the next pass starts (``model(x)``, or ``clear_caches()``), so that one forward can be
followed by several reverse passes (feedback, then backprop). The parameters' feedback and
gradients are summed over the uses.

Layer families (base classes below): code above the layers dispatches on them, never on concrete
layer classes, so that a new layer type touches only its own file.
"""

from __future__ import annotations

import numpy as np

from ..kernels import backend_of

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


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
        self._uses = []  # the caches of this pass's forward calls, oldest first
        self._next = -1  # index into _uses of the use the next reverse call reads
        self._active = None  # the use the running reverse call reads (saved())

    # -- the three passes ------------------------------------------------------------------

    def forward(self, x):
        raise NotImplementedError

    def feedback(self, reward, rule_for, input_reward=True):
        raise NotImplementedError

    def backward(self, grad, input_grad=True):
        raise NotImplementedError

    def __call__(self, x):
        """Validated forward that starts a new pass: x must be a finite float array in the
        model's dtype; the caches of earlier passes are dropped."""
        from .._checks import check_array

        x = check_array(x, "x", self.dtype)
        self.clear_caches()
        return self.forward(x)

    # -- per-use caches ----------------------------------------------------------------------

    def save(self, cache):
        """Push the cache of one forward call (any object; the layer's own passes read it back
        with :meth:`saved`)."""
        self._uses.append(cache)
        self._next = len(self._uses) - 1
        self._active = cache

    def saved(self):
        """The cache of the use being reversed (after a forward call: that call's)."""
        if self._active is None:
            raise RuntimeError(
                f"{self!r}: feedback/backward needs the forward pass first; call the model on "
                "the input (lfp_ref.feedback and lfp_ref.gradients do this for you)"
            )
        return self._active

    def begin_reverse(self):
        """Select the use the next reverse call (feedback or backward) reads: the uses in
        reverse order of their forward calls, starting again from the last one after the first
        (so that backprop can follow feedback). Containers call this before each child's
        reverse call; a layer called directly reads its last use."""
        if self._uses:
            self._active = self._uses[self._next]
            self._next = (self._next - 1) % len(self._uses)

    @property
    def uses(self):
        """How many forward calls this pass has made of this layer."""
        return len(self._uses)

    def clear_caches(self):
        """Drop the saved uses of this layer and every layer below it (a new pass starts)."""
        for _, layer in self.named_layers():
            layer._uses = []
            layer._next = -1
            layer._active = None

    def __getstate__(self):
        # copies and pickles carry the layer, not the arrays of its last pass
        state = dict(self.__dict__)
        state.update(_uses=[], _next=-1, _active=None)
        return state

    # -- structure ---------------------------------------------------------------------------

    def children(self):
        """``(name, layer)`` pairs of sub-layers; leaves have none."""
        return ()

    def named_layers(self, prefix="", remove_duplicate=True):
        """Every layer in the tree, depth first, with its dotted name ("" for the root). A layer
        that appears more than once is listed under its first name only (as torch's
        ``named_modules``), unless ``remove_duplicate=False``."""
        seen = set() if remove_duplicate else None
        yield from self._named_layers(prefix, seen)

    def _named_layers(self, prefix, seen):
        if seen is not None:
            if id(self) in seen:
                return
            seen.add(id(self))
        yield prefix, self
        for name, child in self.children():
            yield from child._named_layers(f"{prefix}.{name}" if prefix else name, seen)

    def parameter_aliases(self):
        """``{other name: first name}`` for the parameters of layers used more than once: the
        feedback and gradients of every use are summed under the first name."""
        first, aliases = {}, {}
        for prefix, layer in self.named_layers(remove_duplicate=False):
            canonical = first.setdefault(id(layer), prefix)
            if canonical != prefix:
                for name in layer.own_parameters():
                    aliases[_join(prefix, name)] = _join(canonical, name)
        return aliases

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
        self.clear_caches()
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

    Subclasses implement ``forward`` (saving ``self.save((x, z, ...))``) and
    ``vjp(v, input_vjp=True)`` returning ``(VJP_x(v), {name: VJP_theta(v)})``, each summed over
    the batch and over shared positions (``VJP_x`` None when ``input_vjp`` is False). The rule
    decides how a reward becomes ``rho`` and how VJPs become feedback.
    """

    def vjp(self, v, input_vjp=True):
        raise NotImplementedError

    def feedback(self, reward, rule_for, input_reward=True):
        return rule_for(self).propagate(self, reward, input_reward)

    def backward(self, grad, input_grad=True):
        self.saved()
        return self.vjp(backend_of(grad).contiguous(grad), input_vjp=input_grad)

    @property
    def cached_input(self):
        """The input x of the use being reversed."""
        return self.saved()[0]

    @property
    def cached_output(self):
        """The output z of the use being reversed."""
        return self.saved()[1]


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
        self.save((x, y))
        return y

    def feedback(self, reward, rule_for, input_reward=True):
        self.saved()
        return reward, {}

    def backward(self, grad, input_grad=True):
        x, y = self.saved()
        return grad * self.derivative(x, y), {}

    def function(self, x):
        raise NotImplementedError

    def derivative(self, x, y):
        raise NotImplementedError


class Container(Layer):
    """A layer made of other layers (Sequential, Residual): its passes walk its children, each
    child call through :meth:`_forward_child` / :meth:`_reverse_child`, which select the child's
    use (``begin_reverse``) and tell an observer, if one is installed
    (:func:`lfp_ref.layers.containers.observe`), what went in and out."""

    observer = None  # set by observe(): observer(container, name, child, pass, value_in, out)

    def set_child(self, name, layer):
        """Put ``layer`` in place of the child called ``name``."""
        raise NotImplementedError

    def _forward_child(self, name, child, x):
        z = child.forward(x)
        if self.observer is not None:
            self.observer(self, name, child, "forward", x, z)
        return z

    def _reverse_child(self, name, child, value, rule_for, needed):
        """``child.feedback(value, rule_for, needed)`` (or ``child.backward(value, needed)`` when
        ``rule_for`` is None) on the child's next use in reverse order."""
        child.begin_reverse()
        if rule_for is None:
            out = child.backward(value, needed)
            kind = "backward"
        else:
            out = child.feedback(value, rule_for, needed)
            kind = "feedback"
        if self.observer is not None:
            self.observer(self, name, child, kind, value, out)
        return out

    def _notify(self, name, kind, value_in, out):
        if self.observer is not None:
            self.observer(self, name, None, kind, value_in, out)


def init_uniform(rng, shape, fan_in, dtype):
    """torch's default init for Linear/Conv (kaiming_uniform with a=sqrt(5), and the bias):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
