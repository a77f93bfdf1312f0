"""Spiking networks: LIF layers trained by LFP without surrogate gradients (lfp-spec.md
section 6), and the surrogate-gradient baseline.

::

    import lfp_ref as lfp

    net = lfp.snn.SpikingSequential(
        lfp.Flatten(),
        lfp.snn.LIF(lfp.Dense(784, 1000)),
        lfp.snn.LIF(lfp.Dense(1000, 10)),
        timesteps=15,
    )
    spikes = net(x)                                   # (T, B, 10)
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded")
    fb.params["1.current.weight"]                     # F of the first LIF's Dense
    g = lfp.gradients(net, x, y, loss="snn_ce_rate")  # surrogate BPTT (atan, alpha 2)
    lfp.snn.predict(spikes)                           # argmax of the spike counts

The zoo builds the paper's two spiking models: ``zoo.build("snn-mlp", ...)`` and
``zoo.build("snn-cnn", ...)``. Training: ``TrainConfig(model="snn-mlp", method="lfp")`` (the
reward defaults to the network's ``"snn_rate_coded"``) or ``method="surrogate"`` (surrogate BPTT,
registered by :mod:`lfp_ref.snn.methods`); the trainer logs and evaluates the spike counts and
the rate-coded cross-entropy (:mod:`lfp_ref.train.outputs`). Where the reward goes at each time
step of a LIF layer: :meth:`LIF.lfp_accounts`.
"""

from .lif import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_THRESHOLD,
    LIF,
    RESETS,
    SURROGATES,
    check_lif_options,
    check_timesteps,
)
from .naming import state_dict_from_torch
from .sequential import ALLOWED_LAYERS, SpikingSequential, predict, spike_counts

__all__ = [
    "ALLOWED_LAYERS",
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "DEFAULT_THRESHOLD",
    "LIF",
    "RESETS",
    "SURROGATES",
    "SpikingSequential",
    "check_lif_options",
    "check_timesteps",
    "predict",
    "spike_counts",
    "state_dict_from_torch",
]
