"""Trace one LFP step layer by layer: where the reward goes and why each weight moves.

:func:`trace` runs the forward pass, the LFP feedback pass and (for comparison) the backprop pass
itself, layer by layer, with each layer's own ``forward``/``feedback``/``backward`` and the
engine's rule resolution, and keeps what every layer saw::

    t = lfp_ref.trace.trace(model, x, y, reward="softmax_loss")
    print(t.to_table())
    t.records[0].reward_leaving          # the reward handed to the input
    t.feedback["0.weight"]               # == lfp_ref.feedback(model, x, y).params["0.weight"]

Containers are descended into: a :class:`~lfp_ref.layers.containers.Sequential` contributes its
children, a :class:`~lfp_ref.layers.containers.Residual` its branch (and shortcut) layers under
their state-dict names (``"3.branch.0"``) followed by one record for the residual sum
(``"3.sum"``, kind ``"Sum"``). Any other layer is one record.

Where the reward goes (conservation, docs/numerical-contract.md section 5.5). Under the
LFP-epsilon rule a layer ``z = x W^T + b`` receives ``r`` at its output, forms
``rho = r / stab(z)`` and hands ``R_x = x * (rho W)`` to its input. Summed over everything, with
``stab(z) = z + eps * sgn0(z)``:

    sum r = sum rho * stab(z) = sum R_x  +  sum rho * b  +  sum rho * eps * sgn0(z)
            (arriving)          (leaving)   (bias share)    (stabiliser share)

because ``sum R_x = sum rho * (z - b)``. The bias share is the reward that flowed through the
bias, ``sum sign(b) * F_b`` (spec section 5: ``F_b = sign(b) * message``). BatchNorm has one more
offset, its normalisation: in eval mode ``z = gamma * inv_std * x + (beta - gamma * inv_std *
mean)``, so ``-sum rho * gamma * inv_std * mean`` is absorbed there; in training mode ``z`` hardly
changes when x is scaled (only BN's own eps breaks the invariance), so nearly all of
``sum rho * (z - beta)`` is absorbed there (see :func:`_normalization_share`).

What is left, ``other = arriving - leaving - bias - stabiliser - normalisation``, is rounding for
every layer under LFP-epsilon; it is Dropout's ``1/(1-p)`` rescaling in training mode, and for
other rules (whose stabiliser share is not decomposed here) it holds the stabiliser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import engine
from .. import losses as _losses
from .. import rewards as _rewards
from ..kernels import backend_of
from ..layers.base import Container, LinearLayer, NormalizationLayer
from ..layers.containers import Residual, observe
from ..rules import DEFAULT_EPS, Epsilon

__all__ = ["LayerRecord", "Trace", "trace"]


@dataclass
class LayerRecord:
    """What one layer saw during one LFP step (and under backprop, for comparison).

    Attributes
    ----------
    name : str
        The layer's dotted state-dict prefix (``"0"``, ``"3.branch.0"``); a residual sum is
        ``"<block>.sum"``.
    kind : str
        The layer's class name (``"Dense"``, ``"ReLU"``, ...) or ``"Sum"``.
    input : ndarray, or a tuple (branch output, shortcut output) for a Sum
    output : ndarray, the layer's output ``z``.
    reward_arriving : ndarray
        The reward ``r`` at the layer's output (shape of ``z``).
    rho : ndarray or None
        ``r / stab(z)`` for layers under the LFP-epsilon rule (linear layers and sums); None for
        layers without a rule (activations, MaxPool, Flatten, Dropout) and for other rules.
    reward_leaving : ndarray, or a tuple (to the branch, to the shortcut) for a Sum
        The reward the layer hands to its input.
    feedback : dict
        Parameter feedback ``F`` by full state-dict name (``"0.weight"``).
    params : dict
        Copies of the parameter values the step started from, by full state-dict name.
    gradient : dict or None
        ``dL/dtheta`` by full name, ``L`` the SUMMED cross-entropy (None without labels).
    grad_arriving : ndarray or None
        ``dL/dz`` at the layer's output under backprop.
    sum_arriving, sum_leaving : float
        ``sum r`` and ``sum R_x`` (over the batch and every position).
    bias_share : float
        Reward absorbed by the bias, ``sum sign(b) * F_b`` (0 without a bias).
    stabilizer_share : float
        Reward absorbed by the stabiliser, ``sum rho * eps * sgn0(z)`` (NaN under rules other
        than LFP-epsilon, whose stabiliser this module does not decompose).
    normalization_share : float
        Reward absorbed by BatchNorm's normalisation (0 for every other layer).
    other : float
        ``sum_arriving - sum_leaving - bias_share - stabilizer_share - normalization_share``
        (stabiliser counted as 0 where NaN): rounding under LFP-epsilon; see the module docstring.
    steps : dict or None
        A LIF layer's per-time-step accounts, ``{account: array (T,)}`` from
        :meth:`lfp_ref.snn.LIF.lfp_accounts` (arriving, from_next, to_below, bias, to_previous,
        normaliser, stabiliser, other); None for every other layer. For a LIF the record's
        ``stabilizer_share`` and ``normalization_share`` are their sums over the steps (the
        normaliser's absolute values: reward NOT passed on), so ``other`` is rounding.
    identity_error : float or None
        ``max |F + |theta| * dL/dtheta| / max |F|`` over the layer's parameters: the implicit
        weight scaling ``F = -|theta| * dL/dtheta`` (spec section 5) holds for ReLU networks
        under softmax_loss up to ``~eps/|z|``. None for layers without parameters.
    """

    name: str
    kind: str
    input: np.ndarray | tuple
    output: np.ndarray
    reward_arriving: np.ndarray | None = None
    rho: np.ndarray | None = None
    reward_leaving: np.ndarray | tuple | None = None
    feedback: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    gradient: dict | None = None
    grad_arriving: np.ndarray | None = None
    sum_arriving: float = float("nan")
    sum_leaving: float = float("nan")
    bias_share: float = 0.0
    stabilizer_share: float = 0.0
    normalization_share: float = 0.0
    other: float = float("nan")
    steps: dict | None = None
    identity_error: float | None = None
    layer: object = field(default=None, repr=False)

    def reward_through(self, name):
        """The reward that flowed through parameter ``name`` (full state-dict name), summed over
        the batch and over shared positions: ``sign(theta) * F`` (spec section 5,
        ``F_w_ij = sign(w_ij) * sum_B R_{i<-j}``). For a Dense weight, entry ``[j, i]`` is the
        connection message ``sum_B R_{i<-j}`` from output j to input i."""
        return np.sign(self.params[name]) * self.feedback[name]

    @property
    def input_shape(self):
        if isinstance(self.input, tuple):
            return tuple(a.shape for a in self.input)
        return self.input.shape


@dataclass
class Trace:
    """One LFP step, layer by layer.

    Attributes
    ----------
    records : list of LayerRecord, in forward order.
    logits : ndarray, the network's output.
    reward : ndarray, the reward at the output.
    input_reward : ndarray, the reward handed to the input x.
    loss : float or None, the summed cross-entropy (None without labels).
    rule : str, the rule used (repr).
    """

    records: list
    logits: np.ndarray
    reward: np.ndarray
    input_reward: np.ndarray
    loss: float | None
    rule: str
    reward_name: str
    aliases: dict = field(default_factory=dict)  # other name of a shared parameter -> first
    batch_size: int = 0  # samples in the batch (the logits of a spiking net are (T, B, C))

    def __getitem__(self, name):
        """The record of the layer called ``name`` (``trace["0"]``, ``trace["3.sum"]``)."""
        for record in self.records:
            if record.name == name:
                return record
        raise KeyError(f"no layer {name!r} in the trace; layers: {[r.name for r in self.records]}")

    def _total(self, per_record):
        # a layer used more than once has one record per use: its values are summed under the
        # parameter's first name, as lfp_ref.feedback does
        total = {}
        for record in self.records:
            for name, value in (per_record(record) or {}).items():
                name = self.aliases.get(name, name)
                total[name] = total[name] + value if name in total else value
        return total

    @property
    def feedback(self):
        """Parameter feedback of every layer by full state-dict name, in forward order (the same
        arrays as in the records; summed over the uses of a layer used more than once)."""
        return self._total(lambda record: record.feedback)

    @property
    def gradients(self):
        """``dL/dtheta`` (summed cross-entropy) by full state-dict name; empty without labels."""
        return self._total(lambda record: record.gradient)

    def to_table(self):
        """The trace as a fixed-width text table: one row per layer, output layer last."""
        with_norm = any(rec.normalization_share != 0 for rec in self.records)
        header = ["layer", "kind", "input -> output", "R arriving", "R leaving", "bias"]
        header += ["stabiliser", *(["normalisation"] if with_norm else []), "other"]
        rows = [[*header, "max|F|", "id. error"]]
        for rec in self.records:
            if isinstance(rec.input, tuple):
                shape_in = " + ".join(_shape(a.shape) for a in rec.input)
            else:
                shape_in = _shape(rec.input.shape)
            # layers without a rule (activations, pooling by routing, reshapes) have no shares
            has_rule = isinstance(rec.layer, (LinearLayer, Residual)) or rec.steps is not None
            shares = [rec.bias_share, rec.stabilizer_share]
            shares += [rec.normalization_share] if with_norm else []
            max_f = [float(np.abs(f).max(initial=0.0)) for f in rec.feedback.values()]
            rows.append(
                [
                    rec.name,
                    rec.kind,
                    f"{shape_in} -> {_shape(rec.output.shape)}",
                    _num(rec.sum_arriving),
                    _num(rec.sum_leaving),
                    *[_num(v) if has_rule else "" for v in shares],
                    _num(rec.other),
                    f"{max(max_f):.3e}" if max_f else "",
                    "" if rec.identity_error is None else f"{rec.identity_error:.1e}",
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                cell.ljust(w) if i < 3 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths))
            ).rstrip()
            for row in rows
        ]
        lines.insert(1, "-" * max(len(line) for line in lines))
        loss = "" if self.loss is None else f"; summed cross-entropy {self.loss:.6g}"
        title = (
            f"LFP trace: reward {self.reward_name}, rule {self.rule}, batch {self.batch_size}{loss}"
        )
        notes = [
            "R arriving: sum of the reward at the layer's output; R leaving: sum handed to its "
            "input.",
            "R arriving = R leaving + bias + stabiliser"
            + (" + normalisation" if with_norm else "")
            + " + other (other: rounding; Dropout's rescaling).",
            "id. error = max|F + |theta| dL/dtheta| / max|F| (L: summed cross-entropy): the "
            "implicit weight",
            "scaling F = -|theta| dL/dtheta, exact up to ~eps/|z| for ReLU nets under "
            "softmax_loss.",
        ]
        if any(rec.steps is not None for rec in self.records):
            notes += [
                "LIF: its normaliser sums absolute values and the reset receives nothing, so the "
                "rule is not",
                "conservative: 'normalisation' is the reward it does not pass on (with the "
                "stabiliser); per step: step_table(name).",
            ]
        if any(rec.kind == "Dropout" and rec.layer.training for rec in self.records):
            notes += [
                "Dropout in training mode multiplies the reward of kept units by 1/(1-p) (spec "
                "section 2), as",
                "backprop does the gradient; below k such layers F = -|theta| dL/dtheta / "
                "(1-p)^k: id. error 1-(1-p)^k.",
            ]
        return "\n".join([title, "", *lines, "", *notes])

    def step_table(self, name):
        """A LIF layer's per-time-step accounts (:attr:`LayerRecord.steps`) as a text table:
        one row per step t, what arrives (from above, from step t+1), where it goes (below, the
        bias, step t-1) and what is not passed on (normaliser, stabiliser)."""
        rec = self[name]
        if rec.steps is None:
            raise ValueError(f"layer {name!r} ({rec.kind}) has no per-step accounts (LIF only)")
        keys = ("arriving", "from_next", "to_below", "bias", "to_previous", "normaliser",
                "stabiliser", "other")  # fmt: skip
        rows = [["t", *keys]]
        for t in range(len(rec.steps["arriving"])):
            rows.append([str(t), *[_num(float(rec.steps[k][t])) for k in keys]])
        rows.append(["sum", *[_num(float(rec.steps[k].sum())) for k in keys]])
        widths = [max(len(row[i]) for row in rows) for i in range(len(keys) + 1)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join([f"LIF {name}: where the reward goes at each time step", "", *lines])

    def __str__(self):
        return self.to_table()


def _shape(shape):
    return "(" + ",".join(str(s) for s in shape) + ")"


def _num(value):
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:+.4e}"


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


class _Recorder:
    """The observer the containers' walk calls (:func:`lfp_ref.layers.containers.observe`): one
    record per leaf use (and per residual sum) in forward order, filled in by the reverse
    passes, which visit the uses of a name in reverse order."""

    def __init__(self, rule_for):
        self.rule_for = rule_for
        self.records = []
        self._uses = {}  # full name -> its records in forward order
        self._reverse = {}  # (pass, full name) -> index of the next record that pass visits

    def __call__(self, prefix, container, name, child, kind, value_in, out):
        if isinstance(child, Container):
            return  # its own children report themselves
        full = _join(prefix, name)
        if kind == "forward":
            if child is None:  # a residual sum: inputs (branch output, shortcut output)
                rec = LayerRecord(full, "Sum", value_in, out, layer=container)
            else:
                # the leaf's own parameters and those of a layer it wraps (a LIF's current)
                params = {_join(full, k): v.copy() for k, v in child.named_parameters()}
                kind_name = type(child).__name__
                rec = LayerRecord(full, kind_name, value_in, out, params=params, layer=child)
            self.records.append(rec)
            self._uses.setdefault(full, []).append(rec)
            return
        uses = self._uses[full]
        index = self._reverse.get((kind, full), len(uses) - 1)
        self._reverse[(kind, full)] = (index - 1) % len(uses)
        rec = uses[index]
        if kind == "feedback":
            self._feedback(rec, container, child, value_in, out)
        else:
            self._backward(rec, child, value_in, out)

    def _feedback(self, rec, container, child, reward, out):
        rec.reward_arriving = reward
        if child is None:  # residual sum
            reward_a, reward_b = out
            rec.reward_leaving = (reward_a, reward_b)
            eps = _epsilon_of(self.rule_for(container), "propagate_sum")
            _account(rec, float(reward_a.sum() + reward_b.sum()), eps)
            return
        reward_in, own = out
        rec.reward_leaving = reward_in
        rec.feedback = {_join(rec.name, k): v for k, v in own.items()}
        linear = isinstance(child, LinearLayer)
        eps = _epsilon_of(self.rule_for(child), "propagate") if linear else None
        _account(rec, float(reward_in.sum()), eps)
        accounts = getattr(child, "lfp_accounts", None)  # a LIF: its own rule, step by step
        if callable(accounts):
            rec.steps = accounts(reward, self.rule_for, reward_leaving=reward_in)
            rec.stabilizer_share = float(rec.steps["stabiliser"].sum())
            rec.normalization_share = float(rec.steps["normaliser"].sum())
            rec.other = (
                rec.sum_arriving
                - rec.sum_leaving
                - rec.bias_share
                - rec.stabilizer_share
                - rec.normalization_share
            )

    def _backward(self, rec, child, grad, out):
        rec.grad_arriving = grad
        if child is None:
            return
        _, own = out
        rec.gradient = {_join(rec.name, k): v for k, v in own.items()}
        if rec.feedback:
            deviation = max(
                float(np.abs(rec.feedback[k] + np.abs(rec.params[k]) * rec.gradient[k]).max())
                for k in rec.feedback
            )
            scale = max(float(np.abs(f).max()) for f in rec.feedback.values())
            rec.identity_error = deviation / scale if scale > 0 else deviation


def _epsilon_of(rule, method):
    """``rule.eps`` if ``rule`` computes ``method`` as the LFP-epsilon rule does, else None."""
    if isinstance(rule, Epsilon) and getattr(type(rule), method) is getattr(Epsilon, method):
        return rule.eps
    return None


def _account(rec, sum_leaving, eps):
    """Sums and shares of one record (module docstring): ``rho`` and the stabiliser share are
    computed with the one stabiliser (kernels/<backend>/elementwise.py) when the rule is
    LFP-epsilon."""
    z, r = rec.output, rec.reward_arriving
    rec.sum_arriving, rec.sum_leaving = float(r.sum()), sum_leaving
    rec.stabilizer_share = 0.0
    if eps is not None:
        kernels = backend_of(z).elementwise
        rec.rho = kernels.stabilized_ratio(r, z, eps, out=np.empty_like(z))
        # stab(z) - z = eps * sgn0(z), up to the rounding of z + eps
        offset = kernels.stabilize(z, eps, out=np.empty_like(z)) - z
        rec.stabilizer_share = float((rec.rho * offset).sum())
    elif isinstance(rec.layer, (LinearLayer, Residual)):
        rec.stabilizer_share = float("nan")  # another rule: not decomposed here
    for name in rec.feedback:
        if name.rsplit(".", 1)[-1] == "bias":  # the layer's bias, or its wrapped layer's
            rec.bias_share += float((np.sign(rec.params[name]) * rec.feedback[name]).sum())
    if isinstance(rec.layer, NormalizationLayer) and rec.rho is not None:
        rec.normalization_share = _normalization_share(rec)
    stabilizer = 0.0 if np.isnan(rec.stabilizer_share) else rec.stabilizer_share
    rec.other = (
        rec.sum_arriving - rec.sum_leaving - rec.bias_share - stabilizer - rec.normalization_share
    )


def _normalization_share(rec):
    """Reward absorbed by BatchNorm's normalisation, ``sum rho * (offset - beta)`` with the offset
    ``z - J x`` of the map that ran, per channel (statistics over batch and positions):

    - running statistics: ``J x = gamma * inv_std * x``, offset ``beta - gamma * inv_std * mean``;
    - batch statistics: scaling x scales ``x - mean`` and ``sqrt(var)`` alike, so only BN's eps
      lets x through: ``J x = gamma * xhat * eps_bn / (var + eps_bn)`` and the offset is
      ``beta + gamma * xhat * var / (var + eps_bn)``.
    """
    layer, rho, x = rec.layer, rec.rho, rec.input
    channels = x.shape[1]
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    axes = (0, *range(2, x.ndim))
    gamma = rec.params.get(_join(rec.name, "weight"), np.ones(channels)).astype(np.float64)
    if layer.training or layer.running_mean is None:
        mean = x.mean(axis=axes, dtype=np.float64)
        var = ((x - mean.reshape(per_channel)) ** 2).mean(axis=axes, dtype=np.float64)
        xhat = (x - mean.reshape(per_channel)) / np.sqrt(var + layer.eps).reshape(per_channel)
        kept = gamma * var / (var + layer.eps)  # (C,)
        return float((rho * xhat * kept.reshape(per_channel)).sum())
    inv_std = 1.0 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
    rho_c = rho.sum(axis=axes)  # (C,)
    return float(-(rho_c * gamma * inv_std * layer.running_mean).sum())


def trace(model, x, y=None, reward="softmax_loss", rule=None, eps=DEFAULT_EPS, composite=None):
    """Run one LFP step (and backprop, for comparison) layer by layer and keep every number.

    For each layer, in forward order: input, output ``z``, reward arriving ``r``,
    ``rho = r / stab(z)`` (LFP-epsilon), reward leaving ``R_x``, parameter feedback
    ``F_theta = |theta| * VJP_theta(rho)``, the sums ``sum r`` and ``sum R_x`` and the shares of
    the difference absorbed by the bias and the stabiliser (``sum r = sum R_x + sum rho * b +
    sum rho * eps * sgn0(z)``, spec section 5), and the backprop gradient ``dL/dtheta`` of the
    SUMMED cross-entropy, so that ``F = -|theta| * dL/dtheta`` can be checked per layer.

    Parameters
    ----------
    model : Layer
        Runs in its current mode (train/eval); the forward pass runs once (BatchNorm running
        statistics are updated once, Dropout draws one mask), and feedback and backprop share it.
    x : ndarray, the input batch, in the model's dtype.
    y : ndarray of int, optional
        Labels for the reward and for the cross-entropy gradient (no gradient without them).
    reward : callable ``(logits, y) -> r``, a name from ``lfp_ref.rewards.REWARDS``, or the reward
        array itself, as for :func:`lfp_ref.engine.feedback`.
    rule : anything :func:`lfp_ref.engine.rule_resolver` accepts (default ``Epsilon(eps)``).
    eps : float, the stabiliser of the default rule.
    composite : optional, a per-layer rule assignment, as for :func:`lfp_ref.engine.feedback`
        (needs an lfp_ref with ``lfp_ref.composites``).

    Returns
    -------
    Trace
        Its ``feedback`` equals ``lfp_ref.feedback(model, x, y, reward, eps, rule=rule,
        composite=composite).params`` exactly (same layers, same kernels, same order).
    """
    rule_for = engine.rule_resolver(rule, eps, composite=composite, model=model)
    if composite is None:
        rule_name = repr(rule if rule is not None else Epsilon(eps))
    else:
        rule_name = f"composite {composite!r}"
    recorder = _Recorder(rule_for)
    root = not isinstance(model, Container)  # a single layer: record its own calls
    with observe(model, recorder):
        x, logits = engine.forward(model, x)
        if root:
            recorder("", None, "", model, "forward", x, logits)
        r = engine.resolve_reward(reward, logits, y)
        out = model.feedback(r, rule_for)
        if root:
            recorder("", None, "", model, "feedback", r, out)
        loss = None
        if y is not None and logits.shape[-1] > 1:
            # the summed cross-entropy; for spikes (T, B, C) its rate-coded form
            loss_fn = _losses.cross_entropy if logits.ndim == 2 else _losses.snn_ce_rate
            loss, grad = loss_fn(logits, y, reduction="sum")
            grad = backend_of(logits).contiguous(grad, dtype=logits.dtype)
            out_grad = model.backward(grad)
            if root:
                recorder("", None, "", model, "backward", grad, out_grad)
    return Trace(
        recorder.records,
        logits,
        r,
        out[0],
        loss,
        rule_name,
        _rewards.name_of(reward),
        model.parameter_aliases(),
        x.shape[0],
    )
