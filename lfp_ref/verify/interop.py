"""Convert between ``torch.nn`` modules and lfp_ref models, with identical weights and names.

    model = from_torch(torch_sequential)            # float64 lfp_ref model, same state-dict names
    twin = to_torch(model)                          # torch.nn.Module in the model's dtype

Supported torch modules (and the lfp_ref layer each becomes): ``Sequential`` (nested too; its
children must have torch's positional names "0", "1", ...), ``Linear`` (Dense), ``Conv2d``,
``AvgPool2d``, ``MaxPool2d``, ``BatchNorm1d``/``BatchNorm2d``, ``Dropout``, ``Flatten``, ``ReLU``,
``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``SiLU``, ``ELU``, ``Identity``, and
:class:`TorchResidual` (lfp_ref's :class:`~lfp_ref.layers.containers.Residual`,
``z = branch(x) + shortcut(x)``). Each module's train/eval mode is carried over, both ways.

The residual addition is an explicit module, :class:`TorchSum` (``forward(a, b) = a + b``), so
that the rule-based peers can attach a rule to it: ``lfp_ref.peers`` swaps it for lfprop's
``Sum`` (lfprop 1.0.0 applies its LFP-epsilon rule only to ``lfprop.model.custom_resnet.Sum``)
or for zennit's ``Sum`` layer (zennit's composites give ``zennit.layer.Sum`` the Norm rule);
plain torch autograd just adds.

Both directions dispatch through one registry, :data:`CONVERSIONS` (lfp_ref layer class ->
:class:`Conversion`, filled by :func:`register`): :func:`to_torch` looks a layer's class up along
its MRO, :func:`from_torch` a module's exact torch class. Supporting a new layer type is one
``register(...)`` call.

torch is imported lazily: this module imports without it, and the functions raise an ImportError
that says how to install it.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..layers.activations import ELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh
from ..layers.base import check_dtype
from ..layers.containers import Residual, Sequential
from ..layers.conv import Conv2d
from ..layers.dense import Dense
from ..layers.dropout import Dropout
from ..layers.norm import BatchNorm1d, BatchNorm2d
from ..layers.pool import AvgPool2d, MaxPool2d
from ..layers.reshape import Flatten

INSTALL_HINT = "install the crosscheck extra: make crosscheck"


def import_torch():
    """``torch``, or an ImportError saying how to install it.

    The one place lfp_ref imports torch. When torch is not loaded yet and ``OMP_WAIT_POLICY`` is
    unset, it sets ``OMP_WAIT_POLICY=PASSIVE`` first: torch's OpenMP workers otherwise spin
    while idle and take the cores from Numba's and OpenBLAS's threads, slowing lfp_ref's steps
    in the same process up to 2x (benchmarks/RESULTS.md). The OpenMP runtime reads the variable
    once, when torch loads it: a process that imported torch before lfp_ref keeps torch's
    default (set the variable before starting Python; README, "Performance").
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"lfp_ref.interop needs torch; {INSTALL_HINT}") from err
    return torch


@functools.lru_cache(maxsize=1)
def _torch_modules():
    """The torch-side classes, defined on first use (torch is optional)."""
    torch = import_torch()

    class TorchSum(torch.nn.Module):
        """``forward(a, b) = a + b``: the residual addition as a module a rule can hook."""

        def forward(self, a, b):
            return a + b

    class TorchResidual(torch.nn.Module):
        """``z = branch(x) + shortcut(x)`` (shortcut None: the identity); children ``branch``,
        ``shortcut`` (if given) and ``sum``, so state-dict names match lfp_ref's Residual."""

        def __init__(self, branch, shortcut=None):
            super().__init__()
            self.branch = branch
            self.shortcut = shortcut
            self.sum = TorchSum()

        def forward(self, x):
            identity = x if self.shortcut is None else self.shortcut(x)
            return self.sum(self.branch(x), identity)

    # module-level names, so that pickling (torch.save) finds them through __getattr__ below
    for cls in (TorchSum, TorchResidual):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return types.SimpleNamespace(TorchSum=TorchSum, TorchResidual=TorchResidual)


def __getattr__(name):
    # ``lfp_ref.interop.TorchResidual`` and ``.TorchSum`` exist once torch is importable
    if name in ("TorchResidual", "TorchSum"):
        return getattr(_torch_modules(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Conversion:
    """How one lfp_ref layer class and its torch counterpart convert into each other.

    Attributes
    ----------
    layer_cls : type
        The lfp_ref layer class (subclasses convert the same way: :func:`to_torch` looks a
        layer's class up along its MRO).
    torch_name : str
        The torch class: an attribute of ``torch.nn`` or of this module (``TorchResidual``).
        :func:`from_torch` converts modules of exactly this class (a torch subclass may override
        ``forward``, so it is refused rather than converted by its base class).
    to_torch : callable
        ``(layer, nn, convert) -> torch.nn.Module``, without weights (``to_torch`` loads the
        state dict); ``convert(sublayer)`` converts a child.
    from_torch : callable
        ``(module, ctx) -> lfp_ref layer``, without weights; ``ctx`` is a :class:`_FromTorch`.
    """

    layer_cls: type
    torch_name: str
    to_torch: Callable
    from_torch: Callable


#: lfp_ref layer class -> :class:`Conversion`, in the order the error messages list them
CONVERSIONS = {}


def register(layer_cls, torch_name, *, to_torch, from_torch):
    """Register the conversion between ``layer_cls`` and torch class ``torch_name`` (see
    :class:`Conversion`); adding a layer type to interop is this one call."""
    for other in CONVERSIONS.values():
        if other.torch_name == torch_name and other.layer_cls is not layer_cls:
            raise ValueError(
                f"torch class {torch_name!r} already converts to {other.layer_cls.__name__}; "
                f"from_torch needs one lfp_ref class per torch class"
            )
    CONVERSIONS[layer_cls] = Conversion(layer_cls, torch_name, to_torch, from_torch)
    _from_torch_classes.cache_clear()


def _conversion_of_layer(layer):
    """The registered conversion of ``layer``'s class or its nearest registered base class."""
    for cls in type(layer).__mro__:
        conversion = CONVERSIONS.get(cls)
        if conversion is not None:
            return conversion
    return None


def _torch_class(torch_name):
    if torch_name == "TorchResidual":
        return _torch_modules().TorchResidual
    return getattr(import_torch().nn, torch_name)


@functools.lru_cache(maxsize=1)
def _from_torch_classes():
    """torch class -> :class:`Conversion`, built on first use (torch is optional)."""
    return {_torch_class(c.torch_name): c for c in CONVERSIONS.values()}


def supported_torch():
    """The torch class names :func:`from_torch` converts, in registration order."""
    return tuple(c.torch_name for c in CONVERSIONS.values())


def supported_layers():
    """The lfp_ref layer class names :func:`to_torch` converts, in registration order."""
    return tuple(cls.__name__ for cls in CONVERSIONS)


class _FromTorch:
    """What a ``from_torch`` converter needs besides the module: its dotted ``path`` (for error
    messages), the target ``dtype``, the Dropout ``rng``, and :meth:`child` to convert a
    sub-module."""

    def __init__(self, path, dtype, rng):
        self.path, self.dtype, self.rng = path, dtype, rng

    def child(self, module, name):
        return _convert(module, f"{self.path}.{name}" if self.path else name, self.dtype, self.rng)

    def unsupported(self, module, detail=None):
        return _unsupported(self.path, module, detail)

    def require(self, module, **expected):
        _require(self.path, module, **expected)


# --------------------------------------------------------------------------- torch -> lfp_ref


def _unsupported(path, module, detail=None):
    where = f"module {path!r}" if path else "the model"
    what = f"{type(module).__name__}({module.extra_repr()})"
    if detail is not None:
        return ValueError(f"from_torch: {where} is {what}: {detail}")
    return TypeError(
        f"from_torch: {where} is {what}, which lfp_ref has no layer for; supported: "
        f"{', '.join(supported_torch())} (lfp_ref.interop.TorchResidual for residual blocks)"
    )


def _require(path, module, **expected):
    """Each ``attribute=value`` pair must hold on the module, else a ValueError naming it."""
    for attribute, value in expected.items():
        actual = getattr(module, attribute)
        if actual != value:
            raise _unsupported(
                path, module, f"lfp_ref supports only {attribute}={value!r}, got {actual!r}"
            )


def _convert(module, path, dtype, rng):
    conversion = _from_torch_classes().get(type(module))
    if conversion is None:
        raise _unsupported(path, module)
    return conversion.from_torch(module, _FromTorch(path, dtype, rng))


def _torch_modes(module):
    """``{dotted name: training}`` for the module tree, with TorchResidual's ``sum`` left out
    (lfp_ref's Residual does the addition itself)."""
    residual_cls = _torch_modules().TorchResidual
    modes = {}
    for name, sub in module.named_modules():
        parent, _, leaf = name.rpartition(".")
        if leaf == "sum" and isinstance(module.get_submodule(parent), residual_cls):
            continue
        modes[name] = sub.training
    return modes


def from_torch(module, dtype=np.float64, rng=None):
    """An lfp_ref model equal to a ``torch.nn`` module: same layers, weights, buffers, state-dict
    names and train/eval modes.

    Parameters
    ----------
    module : torch.nn.Module
        A ``Sequential`` (nested ones too) of the modules listed in :data:`SUPPORTED_TORCH`, one
        such module, or a :class:`TorchResidual`.
    dtype : float64 (default) or float32
        The lfp_ref model's dtype; parameters and buffers are cast to it.
    rng : seed or numpy Generator for the Dropout masks (torch's own masks cannot be reproduced).

    Returns
    -------
    lfp_ref.layers.base.Layer
        With ``model.state_dict()[k] == module.state_dict()[k]`` for every key, after the cast.

    Raises
    ------
    TypeError
        A module lfp_ref has no layer for (the message names it and lists what is supported).
    ValueError
        A supported module with an option lfp_ref does not implement (e.g. Conv2d groups=2).
    """
    torch = import_torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    dtype = check_dtype(dtype)
    model = _convert(module, "", dtype, rng)
    model.load_state_dict({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    modes = _torch_modes(module)
    for name, layer in model.named_layers():
        layer.training = modes[name]
    return model


# --------------------------------------------------------------------------- lfp_ref -> torch


def _build_torch(layer):
    conversion = _conversion_of_layer(layer)
    if conversion is None:
        raise TypeError(
            f"to_torch: {layer!r} has no torch counterpart in lfp_ref.interop; supported: "
            f"{', '.join(supported_layers())}"
        )
    return conversion.to_torch(layer, import_torch().nn, _build_torch)


def to_torch(model):
    """A ``torch.nn`` module equal to an lfp_ref model: same structure, weights, buffers,
    state-dict names and train/eval modes, in the model's dtype (float64 when it has no
    parameters). Residual blocks become :class:`TorchResidual`.

    ``from_torch(to_torch(model))`` reproduces the model's state dict bitwise.
    """
    torch = import_torch()
    torch_dtype = {np.float32: torch.float32, np.float64: torch.float64}[
        (model.dtype or np.dtype(np.float64)).type
    ]
    module = _build_torch(model).to(torch_dtype)
    state = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    module.load_state_dict(state, strict=True)
    modes = {name: layer.training for name, layer in model.named_layers()}
    for name, sub in module.named_modules():
        # set each module's own flag (Module.train would recurse); TorchResidual's sum follows
        # its block
        sub.training = modes[name] if name in modes else modes[name.rpartition(".")[0]]
    return module


# --------------------------------------------------------------------------- the conversions


def _sequential_from_torch(module, ctx):
    names = [name for name, _ in module.named_children()]
    if names != [str(i) for i in range(len(names))]:
        raise ctx.unsupported(
            module,
            f"its children are named {names}; lfp_ref names them by position "
            "('0', '1', ...), so build it with nn.Sequential(*layers)",
        )
    return Sequential(*(ctx.child(sub, name) for name, sub in module.named_children()))


register(
    Sequential,
    "Sequential",
    to_torch=lambda layer, nn, convert: nn.Sequential(*(convert(sub) for sub in layer)),
    from_torch=_sequential_from_torch,
)
register(
    Dense,
    "Linear",
    to_torch=lambda layer, nn, convert: nn.Linear(
        layer.in_features, layer.out_features, bias=layer.bias is not None
    ),
    from_torch=lambda module, ctx: Dense(
        module.in_features, module.out_features, module.bias is not None, dtype=ctx.dtype, rng=0
    ),
)


def _conv2d_from_torch(module, ctx):
    ctx.require(module, groups=1, padding_mode="zeros")
    if isinstance(module.padding, str):
        raise ctx.unsupported(module, f"padding={module.padding!r}; give the padding as int(s)")
    return Conv2d(
        module.in_channels,
        module.out_channels,
        tuple(module.kernel_size),
        stride=tuple(module.stride),
        padding=tuple(module.padding),
        dilation=tuple(module.dilation),
        bias=module.bias is not None,
        dtype=ctx.dtype,
        rng=0,
    )


register(
    Conv2d,
    "Conv2d",
    to_torch=lambda layer, nn, convert: nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        bias=layer.bias is not None,
    ),
    from_torch=_conv2d_from_torch,
)


def _avgpool2d_from_torch(module, ctx):
    ctx.require(module, ceil_mode=False, count_include_pad=True, divisor_override=None)
    return AvgPool2d(module.kernel_size, module.stride, module.padding)


def _maxpool2d_from_torch(module, ctx):
    ctx.require(module, ceil_mode=False, return_indices=False)
    if module.dilation not in (1, (1, 1)):
        raise ctx.unsupported(module, f"lfp_ref supports only dilation=1, got {module.dilation!r}")
    return MaxPool2d(module.kernel_size, module.stride, module.padding)


register(
    AvgPool2d,
    "AvgPool2d",
    to_torch=lambda layer, nn, convert: nn.AvgPool2d(
        layer.kernel_size, layer.stride, layer.padding
    ),
    from_torch=_avgpool2d_from_torch,
)
register(
    MaxPool2d,
    "MaxPool2d",
    to_torch=lambda layer, nn, convert: nn.MaxPool2d(
        layer.kernel_size, layer.stride, layer.padding
    ),
    from_torch=_maxpool2d_from_torch,
)


def _batchnorm_converters(layer_cls, torch_name):
    def to_torch(layer, nn, convert):
        return getattr(nn, torch_name)(
            layer.num_features,
            eps=layer.eps,
            momentum=layer.momentum,
            affine=layer.affine,
            track_running_stats=layer.track_running_stats,
        )

    def from_torch(module, ctx):
        if module.affine and module.bias is None:
            raise ctx.unsupported(
                module, "bias=False (gamma without beta); lfp_ref's BatchNorm has both"
            )
        return layer_cls(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            dtype=ctx.dtype,
        )

    return {"to_torch": to_torch, "from_torch": from_torch}


register(BatchNorm1d, "BatchNorm1d", **_batchnorm_converters(BatchNorm1d, "BatchNorm1d"))
register(BatchNorm2d, "BatchNorm2d", **_batchnorm_converters(BatchNorm2d, "BatchNorm2d"))
register(
    Dropout,
    "Dropout",
    to_torch=lambda layer, nn, convert: nn.Dropout(layer.p),
    from_torch=lambda module, ctx: Dropout(module.p, rng=ctx.rng),
)


def _flatten_from_torch(module, ctx):
    ctx.require(module, start_dim=1, end_dim=-1)
    return Flatten()


register(
    Flatten,
    "Flatten",
    to_torch=lambda layer, nn, convert: nn.Flatten(),
    from_torch=_flatten_from_torch,
)
register(
    ReLU,
    "ReLU",
    to_torch=lambda layer, nn, convert: nn.ReLU(),
    from_torch=lambda module, ctx: ReLU(),
)
register(
    LeakyReLU,
    "LeakyReLU",
    to_torch=lambda layer, nn, convert: nn.LeakyReLU(layer.negative_slope),
    from_torch=lambda module, ctx: LeakyReLU(module.negative_slope),
)
register(
    Tanh,
    "Tanh",
    to_torch=lambda layer, nn, convert: nn.Tanh(),
    from_torch=lambda module, ctx: Tanh(),
)
register(
    Sigmoid,
    "Sigmoid",
    to_torch=lambda layer, nn, convert: nn.Sigmoid(),
    from_torch=lambda module, ctx: Sigmoid(),
)
register(
    SiLU,
    "SiLU",
    to_torch=lambda layer, nn, convert: nn.SiLU(),
    from_torch=lambda module, ctx: SiLU(),
)
register(
    ELU,
    "ELU",
    to_torch=lambda layer, nn, convert: nn.ELU(layer.alpha),
    from_torch=lambda module, ctx: ELU(module.alpha),
)
register(
    Identity,
    "Identity",
    to_torch=lambda layer, nn, convert: nn.Identity(),
    from_torch=lambda module, ctx: Identity(),
)


def _residual_to_torch(layer, nn, convert):
    shortcut = None if layer.shortcut is None else convert(layer.shortcut)
    return _torch_modules().TorchResidual(convert(layer.branch), shortcut)


def _residual_from_torch(module, ctx):
    shortcut = None if module.shortcut is None else ctx.child(module.shortcut, "shortcut")
    return Residual(ctx.child(module.branch, "branch"), shortcut)


register(Residual, "TorchResidual", to_torch=_residual_to_torch, from_torch=_residual_from_torch)

#: torch module class names :func:`from_torch` converts (TorchResidual is this module's)
SUPPORTED_TORCH = supported_torch()


__all__ = ["CONVERSIONS", "SUPPORTED_TORCH", "Conversion", "from_torch", "register", "to_torch"]
