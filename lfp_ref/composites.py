"""Rule assignment: which rule each layer of a model uses (zennit's "composites").

A :class:`Composite` is a default rule for the weighted layers (Dense, Conv2d) plus overrides,
resolved against a model into the ``rule_for(layer)`` callable of the layer protocol. From the
most specific to the least:

1. ``names``: a dotted layer name, as in the state dict (``"0"``, ``"2.branch.0"``); a container's
   name covers every layer under it that the rule applies to, a Residual's own sum included (the
   longest matching name wins);
2. ``first``: the first layer of ``first_types`` (default Dense or Conv2d) in registration order
   (the order of ``model.named_layers()``, depth first, as torch's ``named_modules``);
3. ``layer_types``: ``{layer class (or tuple of classes): rule}``, first match in the order given;
4. the base map shared by zennit's composites: AvgPool2d and the residual sum get
   ``Norm(stabilizer)``, BatchNorm gets ``Pass()`` (zennit expects BN merged into the layer before,
   see :func:`merge_batchnorm`); activations, MaxPool2d, Flatten and Dropout consult no rule
   (identity, arg-max routing, reshape, mask);
5. ``default`` for the remaining Dense and Conv2d layers (``Epsilon()`` if not given).

The zennit 0.5.1 composites, by name (:data:`COMPOSITES`, :func:`get`):

- ``EpsilonPlus``: Conv2d ZPlus, Dense Epsilon;
- ``EpsilonAlpha2Beta1``: Conv2d AlphaBeta(2, 1), Dense Epsilon;
- ``EpsilonPlusFlat`` / ``EpsilonAlpha2Beta1Flat``: the same, and the first Dense-or-Conv2d layer
  Flat;
- ``EpsilonGammaBox(low, high)``: Conv2d Gamma, Dense Epsilon, the first Conv2d ZBox(low, high).

``epsilon`` is the Dense layers' epsilon, ``stabilizer`` that of every other rule, as in zennit.

Under LFP a Pass layer's parameters get zero feedback: to train BatchNorm under a composite, give it
``Epsilon()`` with ``layer_types={BatchNorm2d: Epsilon()}``.
"""

from __future__ import annotations

import copy

import numpy as np

from .layers.activations import Identity
from .layers.base import Container, Layer, LinearLayer, NormalizationLayer
from .layers.containers import Residual
from .layers.conv import Conv2d
from .layers.dense import Dense
from .layers.pool import AvgPool2d
from .rules import (
    DEFAULT_EPS,
    WEIGHTED_LAYERS,
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    ZBox,
    ZPlus,
)
from .rules import get as get_rule

BATCHNORMS = (NormalizationLayer,)


def uses_rule(layer):
    """Whether ``layer`` consults a rule: the linear layers (Dense, Conv2d, AvgPool2d,
    BatchNorm) and the residual sum do; activations, MaxPool2d, Flatten, Dropout and Sequential
    do not."""
    return isinstance(layer, (LinearLayer, Residual))


def _rule(value, where):
    try:
        return get_rule(value)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from err


class Composite:
    """A rule for every layer of a model; see the module docstring for the precedence.

    Parameters
    ----------
    default : Rule or rule name, for the Dense and Conv2d layers no override matches
        (default ``Epsilon()``).
    layer_types : dict ``{class or tuple of classes: rule}``, e.g. ``{Conv2d: ZPlus()}``.
    names : dict ``{dotted layer name: rule}``, e.g. ``{"0": Flat(), "4.branch": ZPlus()}``.
    first : rule for the first layer of ``first_types`` in registration order (None: no special
        first layer).
    first_types : the layer classes ``first`` may go to (default Dense and Conv2d).
    stabilizer : the stabiliser of the base map's ``Norm`` (AvgPool2d, residual sum).

    ``composite.resolve(model)`` gives the ``rule_for(layer)`` callable; ``composite.assign(model)``
    the ``{layer name: rule}`` table it uses.
    """

    def __init__(
        self,
        default=None,
        *,
        layer_types=None,
        names=None,
        first=None,
        first_types=WEIGHTED_LAYERS,
        stabilizer=DEFAULT_EPS,
    ):
        self.default = Epsilon() if default is None else _rule(default, "Composite(default)")
        self.layer_types = []
        for types, rule in (layer_types or {}).items():
            types = types if isinstance(types, tuple) else (types,)
            if not types or not all(isinstance(t, type) and issubclass(t, Layer) for t in types):
                raise TypeError(
                    f"Composite(layer_types): keys are lfp_ref layer classes (or tuples of them), "
                    f"got {types!r}"
                )
            self.layer_types.append((types, _rule(rule, f"Composite(layer_types[{types}])")))
        self.names = {}
        for name, rule in (names or {}).items():
            if not isinstance(name, str):
                raise TypeError(f"Composite(names): keys are dotted layer names, got {name!r}")
            self.names[name] = _rule(rule, f"Composite(names[{name!r}])")
        self.first = None if first is None else _rule(first, "Composite(first)")
        self.first_types = first_types if isinstance(first_types, tuple) else (first_types,)
        self.base = [(BATCHNORMS, Pass()), ((AvgPool2d, Residual), Norm(stabilizer))]

    def _by_name(self, name, layer):
        """The rule of the longest name in ``names`` that is ``name`` or a container above it.
        A leaf named exactly gets its rule (an error later if it cannot apply); a container's
        rule goes to the layers under it, the container's own residual sum included, where it
        applies."""
        for prefix in sorted(self.names, key=len, reverse=True):
            if name == prefix or name.startswith(prefix + ".") or prefix == "":
                rule = self.names[prefix]
                if name == prefix and not list(layer.children()):
                    return rule
                try:
                    rule.check_layer(layer)
                except ValueError:
                    continue
                return rule
        return None

    def assign(self, model):
        """``{layer name: rule}`` for every layer of ``model`` that consults a rule (see
        :func:`uses_rule`), in registration order. Unknown names and rules that cannot apply to
        their layer are errors that name the layer."""
        layers = list(model.named_layers())
        known = {name for name, _ in layers}
        unknown = sorted(set(self.names) - known)
        if unknown:
            listed = ", ".join(repr(n) for n, _ in layers if n)
            raise ValueError(
                f"Composite(names): no layer named {unknown} in the model; its layers are {listed}"
            )
        first_name = None
        if self.first is not None:
            first_name = next((n for n, lay in layers if isinstance(lay, self.first_types)), None)
        table = {}
        for name, layer in layers:
            rule = self._by_name(name, layer)
            if rule is None and name == first_name:
                rule = self.first
            if rule is None:
                rule = next((r for t, r in self.layer_types if isinstance(layer, t)), None)
            if rule is None:
                rule = next((r for t, r in self.base if isinstance(layer, t)), None)
            if rule is None and isinstance(layer, WEIGHTED_LAYERS):
                rule = self.default
            if not uses_rule(layer):
                leaf = not list(layer.children())
                if name in self.names and leaf and not isinstance(self.names[name], Pass):
                    raise ValueError(
                        f"layer {name!r} ({layer!r}) consults no rule: activations pass the "
                        "reward through, MaxPool2d routes it to the arg-max, Flatten and "
                        "Dropout reshape and mask it"
                    )
                continue
            try:
                rule.check_layer(layer)
            except ValueError as err:
                raise ValueError(f"layer {name!r}: {err}") from err
            table[name] = rule
        return table

    def resolve(self, model):
        """The ``rule_for(layer)`` callable for ``model`` (what ``Layer.feedback`` takes)."""
        table = self.assign(model)
        # keyed by id, holding the layer too: an id is only unique while its object lives
        by_id = {
            id(layer): (layer, table[name]) for name, layer in model.named_layers() if name in table
        }

        def rule_for(layer):
            known, rule = by_id.get(id(layer), (None, None))
            if known is not layer:
                raise ValueError(
                    f"{layer!r} is not a layer of the model this composite was resolved for"
                )
            return rule

        return rule_for

    def __repr__(self):
        parts = [f"default={self.default!r}"]
        if self.layer_types:
            types = ", ".join(
                f"{'/'.join(t.__name__ for t in ts)}: {r!r}" for ts, r in self.layer_types
            )
            parts.append(f"layer_types={{{types}}}")
        if self.names:
            parts.append(f"names={self.names!r}")
        if self.first is not None:
            kinds = "/".join(t.__name__ for t in self.first_types)
            parts.append(f"first={self.first!r} ({kinds})")
        return f"{type(self).__name__}({', '.join(parts)})"


class EpsilonPlus(Composite):
    """zennit's EpsilonPlus: Conv2d ``ZPlus(stabilizer)``, Dense ``Epsilon(epsilon)``."""

    def __init__(self, epsilon=DEFAULT_EPS, stabilizer=DEFAULT_EPS):
        super().__init__(
            Epsilon(epsilon), layer_types={Conv2d: ZPlus(stabilizer)}, stabilizer=stabilizer
        )


class EpsilonAlpha2Beta1(Composite):
    """zennit's EpsilonAlpha2Beta1: Conv2d ``AlphaBeta(2, 1)``, Dense ``Epsilon(epsilon)``."""

    def __init__(self, epsilon=DEFAULT_EPS, stabilizer=DEFAULT_EPS):
        super().__init__(
            Epsilon(epsilon),
            layer_types={Conv2d: AlphaBeta(2.0, 1.0, stabilizer)},
            stabilizer=stabilizer,
        )


class EpsilonPlusFlat(Composite):
    """zennit's EpsilonPlusFlat: EpsilonPlus, and the first Dense-or-Conv2d layer Flat."""

    def __init__(self, epsilon=DEFAULT_EPS, stabilizer=DEFAULT_EPS):
        super().__init__(
            Epsilon(epsilon),
            layer_types={Conv2d: ZPlus(stabilizer)},
            first=Flat(stabilizer),
            first_types=WEIGHTED_LAYERS,
            stabilizer=stabilizer,
        )


class EpsilonAlpha2Beta1Flat(Composite):
    """zennit's EpsilonAlpha2Beta1Flat: EpsilonAlpha2Beta1, and the first Dense-or-Conv2d layer
    Flat."""

    def __init__(self, epsilon=DEFAULT_EPS, stabilizer=DEFAULT_EPS):
        super().__init__(
            Epsilon(epsilon),
            layer_types={Conv2d: AlphaBeta(2.0, 1.0, stabilizer)},
            first=Flat(stabilizer),
            first_types=WEIGHTED_LAYERS,
            stabilizer=stabilizer,
        )


class EpsilonGammaBox(Composite):
    """zennit's EpsilonGammaBox: Conv2d ``Gamma(gamma)``, Dense ``Epsilon(epsilon)``, and the
    first Conv2d ``ZBox(low, high)`` (the input bounds: floats or arrays broadcastable to the
    input, e.g. (1, C, 1, 1))."""

    def __init__(self, low, high, epsilon=DEFAULT_EPS, gamma=0.25, stabilizer=DEFAULT_EPS):
        super().__init__(
            Epsilon(epsilon),
            layer_types={Conv2d: Gamma(gamma, stabilizer)},
            first=ZBox(low, high, stabilizer),
            first_types=(Conv2d,),
            stabilizer=stabilizer,
        )


#: the zennit 0.5.1 composites by name
COMPOSITES = {
    "EpsilonPlus": EpsilonPlus,
    "EpsilonAlpha2Beta1": EpsilonAlpha2Beta1,
    "EpsilonPlusFlat": EpsilonPlusFlat,
    "EpsilonAlpha2Beta1Flat": EpsilonAlpha2Beta1Flat,
    "EpsilonGammaBox": EpsilonGammaBox,
}

# zennit's registry names: "epsilon_plus", "epsilon_alpha2_beta1", ...
_ALIASES = {name.lower(): name for name in COMPOSITES}


def get(spec, **params):
    """A composite from a name in :data:`COMPOSITES` (zennit's class name, or its registry name
    such as ``"epsilon_plus_flat"``; ``params`` go to the constructor, e.g.
    ``get("EpsilonGammaBox", low=0, high=1)``) or a :class:`Composite` (returned as is)."""
    if isinstance(spec, Composite):
        if params:
            raise ValueError(f"parameters {sorted(params)} are for a composite given by name")
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"a composite is a name from {list(COMPOSITES)} or a Composite object, got {spec!r}"
        )
    name = _ALIASES.get(spec.replace("_", "").lower())
    if name is None:
        raise ValueError(f"unknown composite {spec!r}; known composites: {', '.join(COMPOSITES)}")
    if name == "EpsilonGammaBox" and not {"low", "high"} <= set(params):
        raise ValueError(
            "EpsilonGammaBox needs the input bounds for its ZBox rule: pass low= and high= "
            "(e.g. composite_kwargs low=0.0, high=1.0 for images in [0, 1]) or "
            "lfp_ref.composites.EpsilonGammaBox(low, high)"
        )
    try:
        return COMPOSITES[name](**params)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from err


# ------------------------------------------------------------------------ BatchNorm merging


def _leaves(model):
    """``(name, layer)`` of the layers without children, in registration order."""
    return [(n, lay) for n, lay in model.named_layers() if not list(lay.children())]


def _replace(model, name, new):
    """Put ``new`` in place of the layer called ``name`` (a child of a Sequential or Residual)."""
    parent_name, _, child = name.rpartition(".")
    parent = dict(model.named_layers())[parent_name]
    if not isinstance(parent, Container):  # pragma: no cover - names come from named_layers
        raise TypeError(f"cannot replace a child of {parent!r}")
    parent.set_child(child, new)


def _with_bias(layer):
    """``layer`` itself if it has a bias, else a copy of it with a zero bias."""
    if layer.bias is not None:
        return layer
    dtype = layer.weight.dtype
    if isinstance(layer, Dense):
        new = Dense(layer.in_features, layer.out_features, dtype=dtype, rng=0)
    else:
        new = Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            dtype=dtype,
            rng=0,
        )
    new.weight[...] = layer.weight
    new.bias[...] = 0
    new.training = layer.training
    return new


def merge_batchnorm(model, keep_bn_eps=False):
    """A copy of ``model`` with every BatchNorm that directly follows a Dense or Conv2d (in the
    order of the leaf layers, as zennit's ``SequentialMergeBatchNorm``) folded into it, using the
    running statistics (eval mode):

        scale = gamma / sqrt(running_var + eps_bn)
        W'    = W * scale (per output channel),    b' = (b - running_mean) * scale + beta

    A layer without bias gets one. The BatchNorm is replaced by ``Identity()``, or, with
    ``keep_bn_eps=True``, by an eval-mode BatchNorm with mean 0, var 1, gamma 1, beta 0 and the
    same eps, which is what zennit 0.5.1's canonizer leaves behind: its forward then divides by
    ``sqrt(1 + eps_bn)`` (docs/numerical-contract.md section 5.2). Use ``keep_bn_eps=True`` to
    compare with zennit's ``SequentialMergeBatchNorm``; the composites give that BatchNorm
    ``Pass()``, as zennit does. Layer names are unchanged. The input model is not modified.
    """
    # a copy carries no forward caches (Layer.__getstate__): they would be stale for the merged
    # layers
    merged = copy.deepcopy(model)
    leaves = _leaves(merged)
    for (prev_name, prev), (name, bn) in zip(leaves, leaves[1:]):
        if not (isinstance(prev, WEIGHTED_LAYERS) and isinstance(bn, BATCHNORMS)):
            continue
        if bn.running_mean is None:
            raise ValueError(
                f"merge_batchnorm: {name!r} ({bn!r}) has no running statistics to fold; build it "
                "with track_running_stats=True"
            )
        if bn.num_features != prev.weight.shape[0]:
            raise ValueError(
                f"merge_batchnorm: {name!r} has {bn.num_features} channels but {prev_name!r} "
                f"has {prev.weight.shape[0]} outputs"
            )
        dtype = prev.weight.dtype
        mean = bn.running_mean.astype(np.float64)
        gamma = np.ones(bn.num_features) if bn.weight is None else bn.weight.astype(np.float64)
        beta = np.zeros(bn.num_features) if bn.bias is None else bn.bias.astype(np.float64)
        scale = gamma / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)  # (O,)
        target = _with_bias(prev)
        shape = (-1,) + (1,) * (target.weight.ndim - 1)
        target.weight[...] = (target.weight.astype(np.float64) * scale.reshape(shape)).astype(dtype)
        target.bias[...] = ((target.bias.astype(np.float64) - mean) * scale + beta).astype(dtype)
        if target is not prev:
            _replace(merged, prev_name, target)
        if keep_bn_eps:
            replacement = type(bn)(bn.num_features, eps=bn.eps, affine=bn.affine, dtype=dtype)
            replacement.eval()
        else:
            replacement = Identity()
        _replace(merged, name, replacement)
    return merged


__all__ = [
    "COMPOSITES",
    "Composite",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "get",
    "merge_batchnorm",
    "uses_rule",
]
