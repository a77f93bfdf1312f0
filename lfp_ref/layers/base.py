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

from ..kernels import BACKENDS, backend_of, get_backend

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def as_rng(rng):
    """A ``numpy.random.Generator`` from a seed, a Generator, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _is_device_name(target):
    """Whether ``Layer.to``'s argument names a device ("cpu", "cuda") rather than a dtype."""
    return isinstance(target, str) and target.strip().lower() in BACKENDS


def _device_backend(device):
    """The backend of a device name, or a ValueError listing the known ones."""
    if not isinstance(device, str) or device.strip().lower() not in BACKENDS:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(BACKENDS)}")
    return get_backend(device.strip().lower())


def check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"lfp_ref computes in float32 or float64, got dtype {dtype}")
    return dtype


class _MisshapedError(ValueError):
    """A state dict value of the wrong shape (listed apart by ``load_state_dict``)."""


def _state_value(value, target):
    """``value`` converted to a NumPy array of ``target``'s shape and dtype (a copy), or a
    ValueError that says why it cannot be (:class:`_MisshapedError` for a wrong shape)."""
    if _has_shape(value) and tuple(value.shape) != target.shape:
        raise _MisshapedError(f"expected {target.shape}, got {np.shape(value)}")
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged lists, torch tensors that require grad, ...
        raise ValueError(
            f"cannot be converted to an array ({type(value).__name__}: {err})"
        ) from err
    kind = array.dtype.kind
    if kind not in "biuf":
        raise ValueError(
            f"holds {array.dtype} values ({type(value).__name__}), expected numbers for a "
            f"{target.dtype} array"
        )
    if array.shape != target.shape:
        raise _MisshapedError(f"expected {target.shape}, got {array.shape}")
    if target.dtype.kind in "iu" and kind == "f":
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise ValueError(f"holds non-integer values for an integer ({target.dtype}) buffer")
    if target.ndim and not getattr(target.flags, "writeable", True):  # 0-d ones are replaced
        raise ValueError("the model's array is read-only")
    try:
        with np.errstate(over="raise", invalid="raise"):
            return np.array(array, dtype=target.dtype, copy=True)
    except (FloatingPointError, OverflowError) as err:
        raise ValueError(
            f"values overflow {target.dtype} (largest magnitude {np.abs(array).max():.6g}): {err}"
        ) from err


def _has_shape(value):
    """Whether ``value`` reports a shape without conversion (arrays, tensors)."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


class Layer:
    """Base class. Subclasses list their parameters in ``param_names`` (torch names, torch
    layouts) and non-trainable state in ``buffer_names``."""

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()
    #: True for a layer whose feedback is LFP-epsilon whatever rule it is handed (a LIF): the
    #: engine refuses a modified-weights rule for a model holding one, rather than ignore it
    epsilon_only: bool = False

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
        for _, layer in self._layer_list():
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

    def _layer_list(self):
        """``list(self.named_layers())``, walked without a generator per layer when no layer
        overrides the walk (the per-step paths call this; nothing is cached, so the list is
        always the model's current structure)."""
        cls = type(self)
        if cls.named_layers is Layer.named_layers and cls._named_layers is Layer._named_layers:
            found = {}
            if _walk(self, "", found):
                return list(found.values())
        return list(self.named_layers())

    def _parameter_dict(self):
        """``dict(self.named_parameters())`` (the live arrays), built from :meth:`_layer_list`
        with each leaf's parameters read in place rather than through a dict per layer, unless
        a class overrides ``named_parameters`` or ``own_parameters``."""
        if type(self).named_parameters is not Layer.named_parameters:
            return dict(self.named_parameters())
        params = {}
        for prefix, layer in self._layer_list():
            if type(layer).own_parameters is Layer.own_parameters:
                for name in layer.param_names:
                    value = getattr(layer, name)
                    if value is not None:
                        params[f"{prefix}.{name}" if prefix else name] = value
            else:
                for name, value in layer.own_parameters().items():
                    params[f"{prefix}.{name}" if prefix else name] = value
        return params

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
        return self._parameter_dict()

    @property
    def dtype(self):
        """The dtype of the parameters (None for a network without parameters)."""
        for _, value in self.named_parameters():  # lazy: stops at the first parameter
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
                    value = entries[name]  # a host copy: checkpoints and torch read NumPy
                    state[f"{prefix}.{name}" if prefix else name] = np.array(
                        backend_of(value).to_numpy(value)
                    )
        return state

    def load_state_dict(self, state):
        """Copy arrays from a state dict (e.g. a torch one converted with
        ``{k: v.numpy() for k, v in sd.items()}``) into the parameters and buffers, in place,
        cast to each parameter's dtype.

        All or nothing: every value is converted and checked first, and only then is anything
        written, so a bad state dict leaves the model as it was. Missing, unexpected, mis-shaped
        or unconvertible entries (not numbers, a float for an integer buffer, values that
        overflow the parameter's dtype, a read-only parameter) are one ValueError that lists
        them all, each with its key and the reason."""
        targets = {}  # key -> (layer, attribute name, live array)
        for prefix, layer in self.named_layers():
            entries = {**layer.own_parameters(), **layer.own_buffers()}
            for name in (*layer.param_names, *layer.buffer_names):
                if name in entries:
                    targets[_join(prefix, name)] = (layer, name, entries[name])
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        misshaped, unconvertible, converted = [], [], {}
        for key, (_, _, target) in targets.items():
            if key not in state:
                continue
            try:
                converted[key] = _state_value(state[key], target)
            except _MisshapedError as err:
                misshaped.append(f"{key}: {err}")
            except ValueError as err:
                unconvertible.append(f"{key}: {err}")
        if missing or unexpected or misshaped or unconvertible:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            if misshaped:
                parts.append(f"mis-shaped {misshaped}")
            if unconvertible:
                parts.append(f"unconvertible {unconvertible}")
            raise ValueError(
                "load_state_dict: " + "; ".join(parts) + "; nothing was loaded (the model is "
                "unchanged)"
            )
        for key, (layer, name, target) in targets.items():
            value = converted[key]
            if not isinstance(target, np.ndarray):  # a device array: copy the host value over
                value = backend_of(target).contiguous(value.reshape(-1)).reshape(target.shape)
            if target.ndim == 0:
                setattr(layer, name, value)
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

    def to(self, target=None, *, device=None, dtype=None):
        """Move the parameters and buffers to a device, or cast them to a dtype, in place::

            model.to("cuda")        # CuPy arrays (simulated device arrays under the simulator)
            model.to("cpu")         # back to NumPy
            model.to(np.float32)    # float parameters and buffers to float32
            model.to(device="cuda", dtype=np.float64)

        ``target`` is a device (a backend name: "cpu", "cuda") or a dtype (float32 or float64).
        Integer buffers (BatchNorm's ``num_batches_tracked``) move but keep their dtype. The
        layer's arrays are rebound (an optimizer built before must be rebuilt); the caches of
        the current pass are dropped. Dropout keeps drawing its masks on the host from its
        Generator, so the same seed gives the same masks on every device.

        Raises
        ------
        ValueError
            An unknown device or dtype.
        lfp_ref.kernels.cuda.CudaUnavailableError
            "cuda" without CuPy, numba-cuda or a device (the message says how to install them),
            unless the Numba CUDA simulator is on.
        """
        if target is not None:
            if _is_device_name(target):
                if device is not None:
                    raise ValueError(f"to({target!r}, device={device!r}): give the device once")
                device = target
            else:
                if dtype is not None:
                    raise ValueError(f"to({target!r}, dtype={dtype!r}): give the dtype once")
                dtype = target
        if dtype is not None:
            dtype = check_dtype(dtype)
        backend = None if device is None else _device_backend(device)
        for _, layer in self.named_layers():
            for name, value in {**layer.own_parameters(), **layer.own_buffers()}.items():
                cast = dtype if dtype is not None and value.dtype.kind == "f" else None
                if backend is not None:
                    setattr(layer, name, backend.asarray(value, dtype=cast))
                elif cast is not None:
                    setattr(layer, name, backend_of(value).contiguous(value, dtype=cast))
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


def _walk(layer, prefix, found):
    """:meth:`Layer._named_layers` (duplicates removed) into ``found``, ``id -> (prefix,
    layer)`` in the same order, with one call per layer that has children instead of a
    generator per layer. False (``found`` incomplete) when some layer overrides the walk."""
    found[id(layer)] = (prefix, layer)
    for name, child in layer.children():
        key = id(child)
        if key in found:
            continue
        path = f"{prefix}.{name}" if prefix else name
        cls = type(child)
        if cls._named_layers is not _NAMED_LAYERS:
            return False
        if cls.children is _NO_CHILDREN:  # a leaf: no call
            found[key] = (path, child)
        elif not _walk(child, path, found):
            return False
    return True


_NAMED_LAYERS = Layer._named_layers
_NO_CHILDREN = Layer.children


def init_uniform(rng, shape, fan_in, dtype):
    """torch's default init for Linear/Conv (kaiming_uniform with a=sqrt(5), and the bias):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
