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

torch is imported lazily: this module imports without it, and the functions raise an ImportError
that says how to install it.
"""

from __future__ import annotations

import functools
import types

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

#: torch module class names :func:`from_torch` converts (TorchResidual is this module's)
SUPPORTED_TORCH = (
    "Sequential",
    "Linear",
    "Conv2d",
    "AvgPool2d",
    "MaxPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Flatten",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "SiLU",
    "ELU",
    "Identity",
    "TorchResidual",
)


def import_torch():
    """``torch``, or an ImportError saying how to install it."""
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


# --------------------------------------------------------------------------- torch -> lfp_ref


def _unsupported(path, module, detail=None):
    where = f"module {path!r}" if path else "the model"
    what = f"{type(module).__name__}({module.extra_repr()})"
    if detail is not None:
        return ValueError(f"from_torch: {where} is {what}: {detail}")
    return TypeError(
        f"from_torch: {where} is {what}, which lfp_ref has no layer for; supported: "
        f"{', '.join(SUPPORTED_TORCH)} (lfp_ref.interop.TorchResidual for residual blocks)"
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
    torch = import_torch()
    nn = torch.nn
    residual_cls = _torch_modules().TorchResidual
    kind = type(module)

    def child(sub, name):
        return _convert(sub, f"{path}.{name}" if path else name, dtype, rng)

    if kind is nn.Sequential:
        names = [name for name, _ in module.named_children()]
        if names != [str(i) for i in range(len(names))]:
            raise _unsupported(
                path,
                module,
                f"its children are named {names}; lfp_ref names them by position "
                "('0', '1', ...), so build it with nn.Sequential(*layers)",
            )
        return Sequential(*(child(sub, name) for name, sub in module.named_children()))
    if kind is residual_cls:
        shortcut = None if module.shortcut is None else child(module.shortcut, "shortcut")
        return Residual(child(module.branch, "branch"), shortcut)
    if kind is nn.Linear:
        return Dense(
            module.in_features, module.out_features, module.bias is not None, dtype=dtype, rng=0
        )
    if kind is nn.Conv2d:
        _require(path, module, groups=1, padding_mode="zeros")
        if isinstance(module.padding, str):
            raise _unsupported(
                path, module, f"padding={module.padding!r}; give the padding as int(s)"
            )
        return Conv2d(
            module.in_channels,
            module.out_channels,
            tuple(module.kernel_size),
            stride=tuple(module.stride),
            padding=tuple(module.padding),
            dilation=tuple(module.dilation),
            bias=module.bias is not None,
            dtype=dtype,
            rng=0,
        )
    if kind is nn.AvgPool2d:
        _require(path, module, ceil_mode=False, count_include_pad=True, divisor_override=None)
        return AvgPool2d(module.kernel_size, module.stride, module.padding)
    if kind is nn.MaxPool2d:
        _require(path, module, ceil_mode=False, return_indices=False)
        if module.dilation not in (1, (1, 1)):
            raise _unsupported(
                path, module, f"lfp_ref supports only dilation=1, got {module.dilation!r}"
            )
        return MaxPool2d(module.kernel_size, module.stride, module.padding)
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        if module.affine and module.bias is None:
            raise _unsupported(
                path, module, "bias=False (gamma without beta); lfp_ref's BatchNorm has both"
            )
        layer_cls = BatchNorm1d if kind is nn.BatchNorm1d else BatchNorm2d
        return layer_cls(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            dtype=dtype,
        )
    if kind is nn.Dropout:
        return Dropout(module.p, rng=rng)
    if kind is nn.Flatten:
        _require(path, module, start_dim=1, end_dim=-1)
        return Flatten()
    if kind is nn.LeakyReLU:
        return LeakyReLU(module.negative_slope)
    if kind is nn.ELU:
        return ELU(module.alpha)
    simple = {
        nn.ReLU: ReLU,
        nn.Tanh: Tanh,
        nn.Sigmoid: Sigmoid,
        nn.SiLU: SiLU,
        nn.Identity: Identity,
    }
    if kind in simple:
        return simple[kind]()
    raise _unsupported(path, module)


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
    torch = import_torch()
    nn = torch.nn
    if isinstance(layer, Sequential):
        return nn.Sequential(*(_build_torch(sub) for sub in layer))
    if isinstance(layer, Residual):
        shortcut = None if layer.shortcut is None else _build_torch(layer.shortcut)
        return _torch_modules().TorchResidual(_build_torch(layer.branch), shortcut)
    if isinstance(layer, Dense):
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if isinstance(layer, Conv2d):
        return nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            bias=layer.bias is not None,
        )
    if isinstance(layer, AvgPool2d):
        return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, MaxPool2d):
        return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
        cls = nn.BatchNorm1d if isinstance(layer, BatchNorm1d) else nn.BatchNorm2d
        return cls(
            layer.num_features,
            eps=layer.eps,
            momentum=layer.momentum,
            affine=layer.affine,
            track_running_stats=layer.track_running_stats,
        )
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, LeakyReLU):
        return nn.LeakyReLU(layer.negative_slope)
    if isinstance(layer, ELU):
        return nn.ELU(layer.alpha)
    simple = {
        ReLU: nn.ReLU,
        Tanh: nn.Tanh,
        Sigmoid: nn.Sigmoid,
        SiLU: nn.SiLU,
        Identity: nn.Identity,
    }
    if type(layer) in simple:
        return simple[type(layer)]()
    supported = "Sequential, Residual, Dense, Conv2d, AvgPool2d, MaxPool2d, BatchNorm1d, "
    supported += (
        "BatchNorm2d, Dropout, Flatten, ReLU, LeakyReLU, Tanh, Sigmoid, SiLU, ELU, Identity"
    )
    raise TypeError(
        f"to_torch: {layer!r} has no torch counterpart in lfp_ref.interop; supported: {supported}"
    )


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


__all__ = ["SUPPORTED_TORCH", "from_torch", "to_torch"]
