"""lfp_ref's layers: each has a forward, an LFP feedback and a backprop pass."""

from .activations import ACTIVATIONS, ELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Step, Tanh
from .base import (
    Activation,
    Container,
    Layer,
    LinearLayer,
    NormalizationLayer,
    PoolingLayer,
    WeightedLayer,
)
from .containers import Residual, Sequential
from .conv import Conv2d
from .dense import Dense
from .dropout import Dropout
from .noise import GaussianNoise
from .norm import BatchNorm1d, BatchNorm2d
from .pool import AvgPool2d, MaxPool2d
from .reshape import Flatten

__all__ = [
    "Activation",
    "Container",
    "NormalizationLayer",
    "PoolingLayer",
    "WeightedLayer",
    "ACTIVATIONS",
    "AvgPool2d",
    "Conv2d",
    "MaxPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "ELU",
    "Dense",
    "Flatten",
    "GaussianNoise",
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
