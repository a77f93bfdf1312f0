"""Containers: Sequential and the residual block. Names follow torch (children "0", "1", ...;
``Residual`` has children "branch" and, if given, "shortcut")."""

from contextlib import contextmanager

from .base import Container, Layer


class Sequential(Container):
    """Layers applied in order. Feedback and backprop walk them in reverse."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential item {i} is {layer!r}, not an lfp_ref layer")
        self.layers = list(layers)

    def children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def feedback(self, reward, rule_for):
        params = {}
        for name, layer in reversed(self.children()):
            if reward is None:  # the layers below have no parameters: see input_vjp_skipped
                break
            reward, own = layer.feedback(reward, rule_for)
            params.update({f"{name}.{k}": v for k, v in own.items()})
        return reward, params

    def backward(self, grad):
        params = {}
        for name, layer in reversed(self.children()):
            if grad is None:
                break
            grad, own = layer.backward(grad)
            params.update({f"{name}.{k}": v for k, v in own.items()})
        return grad, params

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(
            f"\n  ({n}): {'  '.join(repr(c).splitlines(True))}" for n, c in self.children()
        )
        return f"Sequential({inner}\n)"


class Residual(Container):
    """``z = branch(x) + shortcut(x)`` (shortcut None: the identity).

    LFP splits the reward at the sum in proportion to the two summands (spec section 2,
    residual Sum): ``rho = r / stab(z)``, ``R_branch = a * rho``, ``R_shortcut = b * rho``; the
    reward at x is the sum of what each path hands down.
    """

    def __init__(self, branch, shortcut=None):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut

    def children(self):
        pairs = [("branch", self.branch)]
        if self.shortcut is not None:
            pairs.append(("shortcut", self.shortcut))
        return pairs

    def forward(self, x):
        a = self.branch.forward(x)
        b = x if self.shortcut is None else self.shortcut.forward(x)
        if a.shape != b.shape:
            raise ValueError(
                f"Residual: branch output {a.shape} and shortcut output {b.shape} differ; "
                "give a shortcut that maps the input to the branch's output shape"
            )
        z = a + b
        self._cache = (a, b, z)
        return z

    def feedback(self, reward, rule_for):
        a, b, z = self._cached()
        reward_a, reward_b = rule_for(self).propagate_sum((a, b), z, reward)
        reward_x, params = self.branch.feedback(reward_a, rule_for)
        params = {f"branch.{k}": v for k, v in params.items()}
        if self.shortcut is None:
            return reward_x + reward_b, params
        reward_s, own = self.shortcut.feedback(reward_b, rule_for)
        params.update({f"shortcut.{k}": v for k, v in own.items()})
        return reward_x + reward_s, params

    def backward(self, grad):
        self._cached()
        grad_x, params = self.branch.backward(grad)
        params = {f"branch.{k}": v for k, v in params.items()}
        if self.shortcut is None:
            return grad_x + grad, params
        grad_s, own = self.shortcut.backward(grad)
        params.update({f"shortcut.{k}": v for k, v in own.items()})
        return grad_x + grad_s, params

    def __repr__(self):
        return f"Residual(branch={self.branch!r}, shortcut={self.shortcut!r})"


def entry_layer(model):
    """The layer that computes the reward (or gradient) at ``model``'s input for nothing but the
    input itself: the first layer with parameters when only parameter-free layers (Flatten,
    activations, pools, Dropout) precede it, descending into nested Sequentials. None when that
    layer cannot skip its input VJP (a Residual, a layer without ``input_vjp``)."""
    while isinstance(model, Sequential):
        weighted = [layer for layer in model.layers if any(True for _ in layer.named_parameters())]
        if not weighted:
            return None
        model = weighted[0]
    return model if hasattr(type(model), "input_vjp") else None


@contextmanager
def input_vjp_skipped(model, skip=True):
    """Inside the block, ``model.feedback`` and ``model.backward`` do not compute the reward or
    gradient at the model's input and return None for it. Training needs only the parameters'
    feedback, and the input VJP of the first layer is a full GEMM (a transposed convolution)
    spent on nothing. The parameters' feedback and gradients are unchanged.

    The :func:`entry_layer` gets ``input_vjp = False`` for the block (restored afterwards); the
    parameter-free layers before it are not visited. With ``skip=False``, or when no layer can
    skip, the block runs as usual.
    """
    layer = entry_layer(model) if skip else None
    if layer is None:
        yield model
        return
    layer.input_vjp = False
    try:
        yield model
    finally:
        del layer.input_vjp  # back to the class default
