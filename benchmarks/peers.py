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


def lfprop_step(model, lr, momentum, clip_norm, eps=1e-6):
    """A function ``step(x, y)`` doing one lfprop LFP training step on ``model`` (in place)."""
    import torch
    from lfprop.propagation import propagator_lxt
    from lfprop.rewards import reward_functions

    composite = propagator_lxt.LFPEpsilonComposite(epsilon=eps)
    reward_fn = reward_functions.SoftmaxLossReward(device="cpu")
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
