"""lfp_ref's layers: each has a forward, an LFP feedback and a backprop pass."""

from .activations import ACTIVATIONS, ELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Step, Tanh
from .base import Layer, LinearLayer
from .containers import Residual, Sequential
from .dense import Dense
from .reshape import Flatten

__all__ = [
    "ACTIVATIONS",
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
