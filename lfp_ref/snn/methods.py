"""The training method ``"surrogate"``: surrogate-gradient BPTT of a spiking network, the baseline
LFP is compared with (lfp-spec.md section 6).

One step is :func:`lfp_ref.engine.gd_step` with the rate-coded cross-entropy ``"snn_ce_rate"``
(snntorch's ``ce_rate_loss``: the cross-entropy of each step's output spikes, averaged over the
T steps and the batch), i.e. ``lfp.gradients(net, x, y, loss="snn_ce_rate")`` then the
configured clipping and optimizer step. The spike's derivative is each LIF's own surrogate (a
property of the neuron, see :class:`lfp_ref.snn.LIF`): snntorch's atan with ``alpha = 2`` unless
the model was built otherwise (``model_options`` ``surrogate``/``alpha``).

Options (``method_options``):

``surrogate``
    None (default): keep each LIF's surrogate; ``"atan"`` or ``"heaviside"`` (the step's true
    derivative, 0: nothing is learned through the spikes, the control) sets it on every LIF of
    the model when the method is built.
``alpha``
    None (default): keep each LIF's; a number > 0 sets the atan sharpness of every LIF.

The method holds no state: the surrogate is set again from the configuration when a run is
resumed. A model without LIF layers is refused (train it with ``"gd"``). ``"lfp"`` trains the
same models with the rate-coded reward (``TrainConfig.reward`` None picks the model's default,
``"snn_rate_coded"``; lfprop's minimal example divides it by T: ``"snn_rate_coded_mean"``).

Registered in :mod:`lfp_ref.methods` (imported at its end), so ``TrainConfig(method=
"surrogate")``, :func:`lfp_ref.train.fit` and ``lfp-ref train --method surrogate`` find it.
"""

from __future__ import annotations

from ..engine import gd_step
from ..methods import Method, StepResult, register_method
from .lif import LIF, SURROGATES, check_lif_options

#: the loss surrogate BPTT descends (lfp_ref.losses.LOSSES)
LOSS = "snn_ce_rate"


def lif_layers(model):
    """Every LIF layer of ``model``, in the order of ``model.named_layers()``."""
    return [layer for _, layer in model.named_layers() if isinstance(layer, LIF)]


@register_method("surrogate")
class SurrogateGradients(Method):
    """Surrogate-gradient BPTT of the rate-coded cross-entropy (module docstring)."""

    options = {"surrogate": None, "alpha": None}

    def __init__(self, config, model):
        super().__init__(config, model)
        lifs = lif_layers(model)
        if not lifs:
            raise ValueError(
                "surrogate-gradient BPTT trains spiking networks (LIF layers, e.g. the zoo's "
                "snn-mlp and snn-cnn); this model has none: train it with method 'gd'"
            )
        surrogate, alpha = self.settings["surrogate"], self.settings["alpha"]
        if surrogate is not None and surrogate not in SURROGATES:
            raise ValueError(
                f"method option surrogate must be one of {', '.join(SURROGATES)} (or unset: "
                f"each LIF's own), got {surrogate!r}"
            )
        if alpha is not None:
            check_lif_options(alpha=alpha, owner="method 'surrogate'")
        if surrogate is not None or alpha is not None:
            for layer in lifs:
                layer.set_surrogate(layer.surrogate if surrogate is None else surrogate, alpha)

    def step(self, model, optimizer, x, y):
        g = gd_step(model, optimizer, x, y, loss=LOSS, reduction="mean", clip_norm=self.config.clip)
        return StepResult(g.logits, self.reward(g.logits, y))


__all__ = ["LOSS", "SurrogateGradients", "lif_layers"]
