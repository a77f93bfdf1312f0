"""lfp_ref's layers: each has a forward, an LFP feedback and a backprop pass."""

from .activations import ACTIVATIONS, ELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Step, Tanh
from .base import Layer, LinearLayer
from .containers import Residual, Sequential
from .dense import Dense
from .dropout import Dropout
from .norm import BatchNorm1d, BatchNorm2d
from .reshape import Flatten

__all__ = [
    "ACTIVATIONS",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "ELU",
    "Dense",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "LinearLayer",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SiLU",
    "Step",
    "Tanh",
]
