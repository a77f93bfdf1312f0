"""Parameter names of the spiking networks, and the map from a torch SNN's state dict.

lfp_ref names a LIF's parameters after its wrapped layer, the child ``current``:
``"<i>.current.weight"`` and ``"<i>.current.bias"`` (torch layouts), ``<i>`` the LIF's index in
its :class:`~lfp_ref.snn.SpikingSequential`. lfprop's spiking models hold the same layers under
``"classifier.<i>.parameterized_layer[.module].weight"`` (``module``: its NoisyWrapper), with
MaxPool2d and Flatten at the same indices as here (lfprop's LifCNN and lfp_ref's ``snn-cnn``
agree index by index; its MLPs flatten in ``forward``, so an lfp_ref MLP on flat input
``(784,)`` has the same indices), and snntorch's ``Leaky`` adds buffers (``beta``,
``threshold``, ``graded_spikes_factor``, ``reset_mechanism_val``) that lfp_ref keeps as LIF
attributes, not state.

:func:`state_dict_from_torch` does not rely on the indices: it pairs the k-th Linear/Conv2d
weight of the torch state dict (in its order) with the k-th LIF.
"""

from __future__ import annotations

import numpy as np

from .lif import LIF

#: snntorch neuron buffers that are LIF attributes in lfp_ref (not parameters)
NEURON_BUFFERS = ("beta", "threshold", "graded_spikes_factor", "reset_mechanism_val", "mem")


def _numpy(value):
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def state_dict_from_torch(model, state):
    """An lfp_ref state dict for ``model`` from the state dict of the torch SNN it mirrors.

    The k-th weight with two or more dimensions in ``state`` (the Linear and Conv2d weights, in
    the state dict's order) and the bias beside it become the k-th LIF's ``current.weight`` and
    ``current.bias``. snntorch's neuron buffers are ignored (beta and threshold are LIF
    attributes); any other entry is an error, as are counts or shapes that do not match.

    Parameters
    ----------
    model : Layer
        The lfp_ref network (e.g. a :class:`~lfp_ref.snn.SpikingSequential`).
    state : mapping
        ``{name: tensor or array}``, e.g. ``torch_model.state_dict()`` of lfprop's
        ``SmallLifMLP`` / ``LifCNN`` or of a torch Sequential of lfprop ``SpikingLayer`` s.

    Returns
    -------
    dict
        ``{"<i>.current.weight": array, ...}``, ready for ``model.load_state_dict``.
    """
    lifs = [name for name, layer in model.named_layers() if isinstance(layer, LIF)]
    weights = [k for k, v in state.items() if k.endswith("weight") and np.ndim(_numpy(v)) >= 2]
    if len(weights) != len(lifs):
        raise ValueError(
            f"the torch state dict has {len(weights)} Linear/Conv2d weights ({weights}) but the "
            f"model has {len(lifs)} LIF layers ({lifs})"
        )
    used, out = set(), {}
    for key, lif_name in zip(weights, lifs):
        prefix = key[: -len("weight")]
        out[f"{lif_name}.current.weight"] = _numpy(state[key])
        used.add(key)
        if prefix + "bias" in state:
            out[f"{lif_name}.current.bias"] = _numpy(state[prefix + "bias"])
            used.add(prefix + "bias")
    other = [k for k in state if k not in used and k.rsplit(".", 1)[-1] not in NEURON_BUFFERS]
    if other:
        raise ValueError(f"state dict entries with no place in an lfp_ref SNN: {other}")
    own = model.state_dict()
    wrong = [
        f"{k}: {np.shape(v)} for {np.shape(own[k]) if k in own else 'no such parameter'}"
        for k, v in out.items()
        if k not in own or np.shape(v) != own[k].shape
    ]
    if wrong:
        raise ValueError(f"the torch weights do not fit the model: {wrong}")
    return out
