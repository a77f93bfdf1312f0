"""Containers: Sequential and the residual block. Names follow torch (children "0", "1", ...;
``Residual`` has children "branch" and, if given, "shortcut").

The containers hold the one walk over a model: forward in order, feedback and backprop in
reverse. Each child call goes through :meth:`Container._forward_child` /
:meth:`Container._reverse_child`, which select the child's use (``begin_reverse``) and tell an
observer, if one is installed (:func:`observe`, which :func:`lfp_ref.trace` uses to record every
layer), what went in and out.
"""

from contextlib import contextmanager

from .base import Container, Layer

#: the children's names of a Sequential, "0", "1", ..., extended as longer ones come
_INDEX_NAMES = [str(i) for i in range(64)]


def has_parameters(layer):
    children = layer.children()
    if not children:  # a leaf: one look at its own parameters, no generator walk
        return any(getattr(layer, name) is not None for name in layer.param_names)
    return any(has_parameters(child) for _, child in children) or bool(layer.own_parameters())


def accumulate(params, prefix, own):
    """Add a child's ``{name: array}`` to ``params`` under ``prefix.name``; a name seen before
    (a layer used again) is summed, in place into the first array."""
    for name, value in own.items():
        key = f"{prefix}.{name}"
        if key in params:
            params[key] += value
        else:
            params[key] = value


class Sequential(Container):
    """Layers applied in order. Feedback and backprop walk them in reverse."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential item {i} is {layer!r}, not an lfp_ref layer")
        self.layers = list(layers)

    def children(self):
        layers = self.layers
        if len(layers) > len(_INDEX_NAMES):
            _INDEX_NAMES.extend(str(i) for i in range(len(_INDEX_NAMES), len(layers)))
        # the names "0", "1", ... made once: the walks ask for the children several times a step
        return list(zip(_INDEX_NAMES, layers))

    def forward(self, x):
        for name, layer in self.children():
            x = self._forward_child(name, layer, x)
        return x

    def _reverse(self, value, rule_for, needed):
        # the value at a child's input is needed when the caller needs it or a layer below has
        # parameters; the parameter-free layers below the first one with parameters are not
        # visited when nobody needs what they would hand down (training: the input's reward)
        children = self.children()
        below = [needed] * len(children)
        for i in range(1, len(children)):
            below[i] = below[i - 1] or has_parameters(children[i - 1][1])
        params = {}
        for (name, layer), need in zip(reversed(children), reversed(below)):
            if not need and not has_parameters(layer):
                return None, params
            value, own = self._reverse_child(name, layer, value, rule_for, need)
            accumulate(params, name, own)
        return value, params

    def feedback(self, reward, rule_for, input_reward=True):
        return self._reverse(reward, rule_for, input_reward)

    def backward(self, grad, input_grad=True):
        return self._reverse(grad, None, input_grad)

    def set_child(self, name, layer):
        """Put ``layer`` in place of the child called ``name`` ("0", "1", ...)."""
        self.layers[int(name)] = layer

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
        a = self._forward_child("branch", self.branch, x)
        b = x if self.shortcut is None else self._forward_child("shortcut", self.shortcut, x)
        if a.shape != b.shape:
            raise ValueError(
                f"Residual: branch output {a.shape} and shortcut output {b.shape} differ; "
                "give a shortcut that maps the input to the branch's output shape"
            )
        z = a + b
        self.save((a, b, z))
        self._notify("sum", "forward", (a, b), z)
        return z

    def _join_paths(self, value_a, value_b, rule_for, needed):
        value_x, params = self._reverse_child("branch", self.branch, value_a, rule_for, needed)
        params = {f"branch.{k}": v for k, v in params.items()}
        if self.shortcut is None:
            return (value_x + value_b if needed else None), params
        value_s, own = self._reverse_child("shortcut", self.shortcut, value_b, rule_for, needed)
        accumulate(params, "shortcut", own)
        return (value_x + value_s if needed else None), params

    def feedback(self, reward, rule_for, input_reward=True):
        a, b, z = self.saved()
        reward_a, reward_b = rule_for(self).propagate_sum((a, b), z, reward)
        self._notify("sum", "feedback", reward, (reward_a, reward_b))
        return self._join_paths(reward_a, reward_b, rule_for, input_reward)

    def backward(self, grad, input_grad=True):
        self.saved()
        self._notify("sum", "backward", grad, (grad, grad))
        return self._join_paths(grad, grad, None, input_grad)

    def set_child(self, name, layer):
        """Put ``layer`` in place of the child called ``name`` ("branch" or "shortcut")."""
        if name not in ("branch", "shortcut"):
            raise KeyError(f"Residual has the children 'branch' and 'shortcut', not {name!r}")
        setattr(self, name, layer)

    def __repr__(self):
        return f"Residual(branch={self.branch!r}, shortcut={self.shortcut!r})"


@contextmanager
def observe(model, observer):
    """Inside the block, every container of ``model`` calls
    ``observer(prefix, container, name, child, pass, value_in, out)`` after each child call
    (``pass`` is "forward", "feedback" or "backward"; ``prefix`` the container's dotted name) and
    after a residual sum (``name`` "sum", ``child`` None)."""
    containers = [(p, c) for p, c in model.named_layers() if isinstance(c, Container)]
    for prefix, container in containers:
        container.observer = lambda *args, _p=prefix: observer(_p, *args)
    try:
        yield model
    finally:
        for _, container in containers:
            del container.observer  # back to the class default
