"""Training steps of the torch peers, in the model's dtype (float32 for the timings).

- lfprop 1.0.0, its documented training step (lfprop README, "How it works"): register
  ``LFPEpsilonComposite`` for the step, forward an input that requires grad, reward from
  ``SoftmaxLossReward``, ``torch.autograd.grad`` with the reward as grad_outputs, then
  ``param.grad = -param.feedback``, global-norm clipping and ``torch.optim.SGD``;
- plain torch autograd gradient descent: mean cross-entropy, ``backward()``, clipping, SGD.

``lfp_ref.peers`` runs the same packages in float64 for the cross-checks (and copies the model
there); the timings need the step as a user would write it, so it is written out here.
Everything imports torch lazily: :func:`available` says whether the peers can run.
"""

import warnings


def available():
    """``(True, "")`` when torch and lfprop import, else ``(False, why)``."""
    try:
        import torch  # noqa: F401

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lfprop.propagation import propagator_lxt  # noqa: F401
            from lfprop.rewards import reward_functions  # noqa: F401
    except Exception as err:  # any failure to import means: no peer columns
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def versions():
    """Installed versions of torch and lfprop (None where missing)."""
    from importlib import metadata

    out = {}
    for name in ("torch", "lfprop", "zennit", "lxt"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def set_threads(count):
    import torch

    torch.set_num_threads(count)


def as_tensors(x, y):
    import torch

    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype("int64"))


def lfprop_step(model, lr, momentum, clip_norm, eps=1e-6, device="cpu"):
    """A function ``step(x, y)`` doing one lfprop LFP training step on ``model`` (in place);
    ``device``: where lfprop's reward is built (the model's and the batch's device). The
    additions of residual blocks become lfprop's own Sum, the only one its rule splits."""
    import torch
    from lfprop.model.custom_resnet import Sum as LfpropSum
    from lfprop.propagation import propagator_lxt
    from lfprop.rewards import reward_functions

    from lfp_ref.verify.peers import _replace_sums

    _replace_sums(model, LfpropSum)

    composite = propagator_lxt.LFPEpsilonComposite(epsilon=eps)
    reward_fn = reward_functions.SoftmaxLossReward(device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(x, y):
        optimizer.zero_grad()
        with warnings.catch_warnings():
            # lxt's Composite.remove() warns "not yet fully tested" on every exit
            warnings.simplefilter("ignore")
            with composite.context(model) as modified:
                inputs = x.detach().requires_grad_(True)
                outputs = modified(inputs)
                reward = reward_fn(outputs.detach(), y)
                torch.autograd.grad((outputs,), (inputs,), grad_outputs=(reward,))
        for param in model.parameters():
            param.grad = -param.feedback
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()

    return step


def torch_gd_step(model, lr, momentum, clip_norm):
    """A function ``step(x, y)`` doing one plain autograd gradient-descent step on ``model``."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(x, y):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()

    return step


def torch_forward(model):
    """A function ``forward(x)``: the model's forward pass without autograd."""
    import torch

    def forward(x):
        with torch.no_grad():
            return model(x)

    return forward


# ------------------------------------------------------------------------------------------
# spiking networks: lfprop's SNN LFP step and snntorch's BPTT step
#
# The torch twin of an lfp_ref SpikingSequential is built as tests/test_snn_crosscheck.py builds
# it: a torch Sequential mirroring the lfp_ref net index by index, each LIF an lfprop
# ``SpikingLayer(Linear or Conv2d, snntorch.Leaky)`` (hidden Leaky with ``init_hidden=True``, the
# last with ``output=True``, returning ``(spikes, membrane)``), MaxPool2d and Flatten as they
# are, the lfp_ref weights copied. The model is called once per step on the static input; the
# membranes are reset before every batch (each twin's own Leaky modules: ``reset_mem()``).


def snn_available():
    """``(True, "")`` when torch, snntorch and lfprop's SNN modules import, else
    ``(False, why)``."""
    try:
        import snntorch  # noqa: F401

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lfprop.model.spiking_networks import SpikingLayer  # noqa: F401
            from lfprop.propagation import propagator_snn  # noqa: F401
    except Exception as err:  # any failure to import means: no SNN peer columns
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def snn_twin(net, spike_grad):
    """The torch twin of the lfp_ref SpikingSequential ``net`` (LIF, MaxPool2d, Flatten) in
    ``net``'s dtype with its weights; ``spike_grad``: "step" (lfprop's Step: the spike of its
    minimal SNN example, for LFP) or "atan" (snntorch's ``surrogate.atan()``, for BPTT)."""
    import snntorch
    import torch
    from lfprop.model.activations import Step
    from lfprop.model.spiking_networks import SpikingLayer

    from lfp_ref.layers.dense import Dense
    from lfp_ref.layers.pool import MaxPool2d
    from lfp_ref.snn import LIF

    dtype = getattr(torch, str(net.dtype))
    grads = {"step": Step, "atan": snntorch.surrogate.atan}
    modules, last = [], len(net) - 1
    for i, layer in enumerate(net):
        if isinstance(layer, LIF):
            p = layer.current
            if isinstance(p, Dense):
                module = torch.nn.Linear(p.in_features, p.out_features, dtype=dtype)
            else:
                out_ch, in_ch = p.weight.shape[:2]
                module = torch.nn.Conv2d(
                    in_ch,
                    out_ch,
                    p.weight.shape[2:],
                    stride=p.stride,
                    padding=p.padding,
                    dtype=dtype,
                )
            leaky = snntorch.Leaky(
                beta=torch.tensor(layer.beta, dtype=dtype),
                threshold=torch.tensor(layer.threshold, dtype=dtype),
                spike_grad=grads[spike_grad](),
                init_hidden=True,
                reset_mechanism=layer.reset,
                output=i == last,
            )
            modules.append(SpikingLayer(module, leaky))
        elif isinstance(layer, MaxPool2d):
            modules.append(torch.nn.MaxPool2d(layer.kernel_size))
        else:
            modules.append(torch.nn.Flatten())
    model = torch.nn.Sequential(*modules)
    with torch.no_grad():
        for key, value in net.state_dict().items():
            index, _, name = key.split(".")
            getattr(model[int(index)].parameterized_layer, name).copy_(torch.from_numpy(value))
    return model


def _reset_snn(model):
    import snntorch

    for module in model.modules():
        if isinstance(module, snntorch.Leaky):
            module.reset_mem()


def lfprop_snn_step(model, steps, lr, momentum, clip_norm, eps=1e-6):
    """A function ``step(x, y)`` doing one lfprop SNN LFP training step on the twin ``model`` (in
    place), as lfprop's minimal SNN example does: ``LFPSNNEpsilonComposite``, the input requiring
    grad, T calls of the model, the rate-coded reward divided by T as the ``grad_outputs`` of
    ``torch.autograd.grad``, ``param.grad = -param.feedback``, clipping, ``torch.optim.SGD``."""
    import torch
    from lfprop.propagation.propagator_snn import LFPSNNEpsilonComposite
    from lfprop.rewards.reward_functions import SnnCorrectClassRewardSpikesRateCoded

    composite = LFPSNNEpsilonComposite(epsilon=eps)
    reward_fn = SnnCorrectClassRewardSpikesRateCoded(torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(x, y):
        _reset_snn(model)
        optimizer.zero_grad()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lxt's composite warns on every use
            with composite.context(model) as modified:
                inputs = x.detach().requires_grad_(True)
                spikes = torch.stack([modified(inputs)[0] for _ in range(steps)])
                reward = reward_fn(spikes=spikes, labels=y).detach() / steps
                torch.autograd.grad((spikes,), (inputs,), grad_outputs=(reward,))
        for param in model.parameters():
            param.grad = -param.feedback
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()

    return step


def snntorch_bptt_step(model, steps, lr, momentum, clip_norm):
    """A function ``step(x, y)`` doing one surrogate-gradient BPTT step on the twin ``model``
    (built with ``spike_grad="atan"``): T calls of the model, snntorch's ``ce_rate_loss``,
    ``backward()``, clipping, ``torch.optim.SGD``."""
    import torch
    from snntorch import functional

    loss_fn = functional.ce_rate_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(x, y):
        _reset_snn(model)
        optimizer.zero_grad()
        spikes = torch.stack([model(x)[0] for _ in range(steps)])
        loss_fn(spikes, y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()

    return step
