"""Propagation rules: how a layer turns the reward at its output into the reward at its input
and the feedback of its parameters.

LFP-epsilon (spec section 2) is the default: for a layer ``z = f(x; theta)``

    rho     = r / stab(z),           stab(z) = z + eps * sgn0(z)
    F_theta = |theta| * VJP_theta(rho)
    R_x     = x * VJP_x(rho)

The other LRP rules (spec section 5) follow zennit 0.5.1, with ``x+ = max(x, 0)``,
``x- = min(x, 0)`` (the same for W and b) and ``s = stab(., stabilizer)``:

==============  ===================================================================================
rule            relevance ``R_i`` at the input of a Dense or Conv2d layer
==============  ===================================================================================
Epsilon(eps)    ``x_i sum_j w_ij R_j / s_eps(z_j)``
ZPlus           ``x+_i sum_j w+_ij R_j / s(z+_j) + x-_i sum_j w-_ij R_j / s(z+_j)``,
                ``z+ = x+ W+ + b+ + x- W-``
AlphaBeta       ``alpha [x+ (R/s(z+)) W+ + x- (R/s(z+)) W-]``
                ``- beta [x+ (R/s(z-)) W- + x- (R/s(z-)) W+]``,
                ``z- = x+ W- + b- + x- W+``, ``alpha - beta = 1``
Gamma           ``W^ = W + gamma W+``, ``Wv = W + gamma W-`` (bias likewise); outputs with z > 0
                are explained by ``z^ = x+ W^ + b^ + x- Wv``, outputs with z < 0 by
                ``zv = x+ Wv + bv + x- W^``; outputs with z == 0 pass nothing
Flat            ``sum_j R_j / s(n_j)``, ``n_j`` the number of inputs of j (conv: non-padding taps)
WSquare         ``sum_j w_ij^2 R_j / s(sum_i' w_i'j^2 + b_j^2)``
ZBox(low, high) ``(x_i w_ij - l_i w+_ij - h_i w-_ij) R_j / s(d_j)`` summed over j,
                ``d = x W + b - (l W+ + b+) - (h W- + b-)``
Norm            epsilon with a fixed stabiliser, for parameter-free layers (AvgPool2d, residual sum)
Pass            ``R_in = R_out`` (BatchNorm under the zennit composites)
==============  ===================================================================================

(``x W`` is shorthand for the layer's linear map: ``sum_i x_i w_ij`` for Dense, the convolution
for Conv2d.)

LFP with any rule (spec section 5). Every rule above is a sum of modified forward passes
("terms") ``coef * x' W'`` with a denominator per group of terms; the message along the connection
i -> j of weight ``w_ij`` is ``R_{i<-j} = sum_terms coef x'_i w'_ij R_j / s(denominator_j)``. Then

    R_i     = sum_j R_{i<-j}
    F_w_ij  = sign(w_ij) * sum_B R_{i<-j}          (summed over shared positions for Conv2d)
    F_b_j   = sign(b_j) * sum_B (the message the bias term receives, sum_terms coef b'_j R_j / s)

For Epsilon this is spec section 2 (``sign(w) w = |w|``), computed by :class:`Epsilon` exactly as
before. A zero weight gets zero feedback under every rule (``sign(0) = 0``).

Which rule a layer type takes:

- Dense and Conv2d: every rule.
- AvgPool2d and the residual sum: Epsilon or Norm (the same thing: zennit's Norm is the epsilon
  rule on a parameter-free op). The weighted rules are an error there.
- BatchNorm1d/2d: Epsilon (LFP, the full Jacobian, spec section 2) or Pass (``R_in = R_out``; its
  parameters then get zero feedback). zennit's composites give BatchNorm Pass because zennit
  expects it merged into the layer before (:func:`lfp_ref.composites.merge_batchnorm`).
- Activations, MaxPool2d, Flatten and Dropout consult no rule: identity, arg-max routing,
  reshape and mask (spec section 2).

``lfp.feedback(..., rule=ZPlus())`` applies a non-epsilon rule to the Dense and Conv2d layers and
keeps LFP-epsilon for the others (:func:`lfp_ref.engine.rule_resolver` decides);
``composite=...`` assigns rules per layer (:mod:`lfp_ref.composites`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import backend_of
from .layers.base import LinearLayer, NormalizationLayer, WeightedLayer
from .layers.containers import Residual

DEFAULT_EPS = 1e-6

#: the layer family every rule applies to (Dense, Conv2d, and any WeightedLayer)
WEIGHTED_LAYERS = (WeightedLayer,)


def _check_stabilizer(value, owner, name="stabilizer"):
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{owner}({name}) needs a finite {name} >= 0, got {value}")
    return float(value)


def _check_reward(rule, caller, layer, reward, z):
    """The reward at a layer's output (``layer``: the layer, or a description) must have the
    output's shape: the kernels index it by the output's positions."""
    # an array's own shape first: np.shape reads the same, through two Python calls
    if getattr(reward, "shape", None) != z.shape and np.shape(reward) != z.shape:
        where = layer if isinstance(layer, str) else repr(layer)
        raise ValueError(
            f"{rule!r}.{caller}: the reward must have {where}'s output shape {z.shape}, "
            f"got {np.shape(reward)}"
        )


class Rule:
    """Base class of the rules. A rule has ``propagate(layer, reward, input_reward=True) ->
    (reward_in, {param: feedback})`` for the layers it applies to (``reward_in`` may be None when
    ``input_reward`` is False), and ``check_layer(layer)``, which raises a ValueError that names
    the rules that do apply. It reads the layer through the layer protocol's public methods only:
    ``cached_input``, ``cached_output``, ``vjp``, ``own_parameters`` and, for the weighted
    layers, the matrix view (``weight_matrix``, ``input_rows``, ``to_rows``, ``output_rows``,
    ``rows_to_input``)."""

    def propagate(self, layer, reward, input_reward=True):
        raise NotImplementedError

    def propagate_sum(self, inputs, z, reward):
        raise ValueError(
            f"{self!r} has no rule for the parameter-free residual sum; give the Residual "
            "Norm() or Epsilon()"
        )

    def check_layer(self, layer):
        """Raise a ValueError if this rule cannot propagate through ``layer``."""


class Epsilon(Rule):
    """The LFP-epsilon / LRP-epsilon rule, ``R_i = x_i sum_j w_ij r_j / stab(z_j)``."""

    def __init__(self, eps=DEFAULT_EPS):
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"Epsilon(eps) needs a finite eps >= 0, got {eps}")
        self.eps = float(eps)

    def propagate(self, layer, reward, input_reward=True):
        x, z = layer.cached_input, layer.cached_output
        _check_reward(self, "propagate", layer, reward, z)
        bk = backend_of(reward, z)
        kernels = bk.elementwise
        reward = bk.contiguous(reward, dtype=z.dtype)
        rho = kernels.stabilized_ratio(reward, z, self.eps, out=bk.empty_like(z))
        reward_in, vjp_params = layer.vjp(rho, input_vjp=input_reward)
        if reward_in is not None:  # None: the layer skipped its input VJP (not needed)
            kernels.multiply(reward_in, x, out=reward_in)
        params = layer.own_parameters()
        feedback = {}  # F = |theta| * VJP, in place (a loop: no comprehension frame)
        for name, v in vjp_params.items():
            feedback[name] = kernels.multiply_abs(v, params[name], out=v)
        return reward_in, feedback

    def propagate_sum(self, inputs, z, reward):
        """A parameter-free sum ``z = a + b + ...``: ``R_a = a * r / stab(z)`` for each summand."""
        _check_reward(self, "propagate_sum", "the residual sum", reward, z)
        bk = backend_of(reward, z)
        reward = bk.contiguous(reward, dtype=z.dtype)
        rho = bk.elementwise.stabilized_ratio(reward, z, self.eps, out=bk.empty_like(z))
        return [bk.elementwise.multiply(a, rho, out=bk.empty_like(z)) for a in inputs]

    def check_layer(self, layer):
        if not isinstance(layer, (LinearLayer, Residual)):
            raise ValueError(f"{self!r} applies to linear layers and Residual, not {layer!r}")

    def __repr__(self):
        return f"Epsilon(eps={self.eps:g})"


class Norm(Epsilon):
    """zennit's Norm rule: the epsilon rule with a fixed stabiliser, for parameter-free linear
    ops (AvgPool2d, the residual sum): ``R_i = x_i sum_j m_ij r_j / stab(z_j)``. On a layer with
    parameters it is the epsilon rule, feedback included."""

    def __init__(self, stabilizer=DEFAULT_EPS):
        super().__init__(_check_stabilizer(stabilizer, "Norm"))
        self.stabilizer = self.eps

    def __repr__(self):
        return f"Norm(stabilizer={self.stabilizer:g})"


class Pass(Rule):
    """``R_in = R_out``: the reward passes unchanged through a shape-preserving layer
    (BatchNorm under the zennit composites, which expect BN merged into the layer before). The
    layer's parameters receive no reward, so their feedback is zero."""

    def propagate(self, layer, reward, input_reward=True):
        x = layer.cached_input
        if np.shape(reward) != x.shape:
            raise ValueError(
                f"Pass() needs a layer whose output has its input's shape; {layer!r} maps "
                f"{x.shape} to {np.shape(reward)}"
            )
        bk = backend_of(reward, x)
        params = layer.own_parameters()
        reward_in = bk.contiguous(reward, dtype=x.dtype) if input_reward else None
        return reward_in, {name: bk.zeros_like(value) for name, value in params.items()}

    def check_layer(self, layer):
        if not isinstance(layer, NormalizationLayer):
            raise ValueError(
                f"Pass() applies to BatchNorm (shape-preserving layers), not {layer!r}; "
                "activations pass the reward through by themselves"
            )

    def __repr__(self):
        return "Pass()"


# ------------------------------------------------------------------------ the weighted rules


@dataclass(frozen=True)
class _Term:
    """One modified forward pass ``x' W'^T + b'`` of a rule, contributing ``coef`` times its
    messages. ``input`` names the modified input (see :class:`_MatrixView`); ``group`` is the
    denominator it adds to (the terms of a group are summed before stabilising)."""

    input: str
    weight: np.ndarray  # (O, K), K = I (Dense) or C*kh*kw (Conv2d)
    bias: np.ndarray | None  # (O,) or None (no bias term)
    group: int = 0
    coef: float = 1.0


class _MatrixView:
    """A weighted layer at the input of the use being reversed, seen as the matrix product
    ``z_rows = X_rows W^T + b`` through the layer's matrix view (Dense as it is, rows = samples;
    Conv2d through its im2col column matrix, rows = output positions,
    ``W = weight.reshape(O, C*kh*kw)``).

    Modified inputs, by name, each in input space (shape of x, to multiply the outgoing reward)
    and in row space (for the GEMMs): "x", "x+", "x-", "ones", and any the rule adds with
    :meth:`add_input`. Clamping commutes with im2col (padding is 0), so "x+"/"x-" rows are the
    clamped rows of x; other inputs go through the layer's ``to_rows``.
    """

    def __init__(self, layer):
        self.layer = layer
        x, z = layer.cached_input, layer.cached_output
        self.bk = bk = backend_of(x, z)
        rows = layer.input_rows()
        self.rows_are_input = rows is x  # Dense: the rows are the samples
        if self.rows_are_input:
            x = rows = bk.contiguous(x)
        self.weight = layer.weight_matrix()  # (O, K)
        self.z_rows = layer.output_rows(z)  # (N, O)
        self.x, self.z = x, z
        self._inputs = {"x": (x, rows)}

    def output_rows(self, v):
        """An output-shaped array in row space, (N, O)."""
        return self.layer.output_rows(self.bk.contiguous(v, dtype=self.z.dtype))

    def _rows(self, a):
        return a if self.rows_are_input else self.layer.to_rows(a)

    def to_input(self, d_rows):
        """The adjoint of the row map: (N, K) -> shape of x (col2im for Conv2d)."""
        return self.layer.rows_to_input(d_rows)

    def add_input(self, name, values):
        values = self.bk.contiguous(values, dtype=self.x.dtype)
        self._inputs[name] = (values, self._rows(values))

    def _ensure(self, name):
        if name in self._inputs:
            return
        bk, (x, rows) = self.bk, self._inputs["x"]
        split_signs = bk.rules.split_signs
        if name in ("x+", "x-"):
            x_pos, x_neg = split_signs(x, bk.empty_like(x), bk.empty_like(x))
            if self.rows_are_input:
                rows_pos, rows_neg = x_pos, x_neg
            else:
                rows_pos, rows_neg = split_signs(rows, bk.empty_like(rows), bk.empty_like(rows))
            self._inputs["x+"], self._inputs["x-"] = (x_pos, rows_pos), (x_neg, rows_neg)
        elif name == "ones":
            ones = bk.ones_like(x)
            self._inputs["ones"] = (ones, self._rows(ones))
        else:
            raise KeyError(f"no modified input {name!r}")

    def input(self, name):
        self._ensure(name)
        return self._inputs[name][0]

    def input_rows(self, name):
        self._ensure(name)
        return self._inputs[name][1]


def _signs(values):
    """``(values+, values-)``, or ``(None, None)`` for no values (a layer without bias)."""
    if values is None:
        return None, None
    bk = backend_of(values)
    return bk.rules.split_signs(values, bk.empty_like(values), bk.empty_like(values))


class _ModifiedWeightsRule(Rule):
    """A rule made of modified forward passes (see the module docstring): subclasses give
    ``_terms(view)`` and, if the reward is split between groups, ``_group_rewards``."""

    def __init__(self, stabilizer=DEFAULT_EPS):
        self.stabilizer = _check_stabilizer(stabilizer, type(self).__name__)

    def _terms(self, view):
        raise NotImplementedError

    def _group_rewards(self, view, reward_rows):
        return [reward_rows]

    def check_layer(self, layer):
        if not isinstance(layer, WEIGHTED_LAYERS):
            raise ValueError(
                f"{self!r} applies to Dense and Conv2d layers, not {layer!r}; AvgPool2d and "
                "Residual take Norm() or Epsilon(), BatchNorm Pass() or Epsilon()"
            )

    def propagate(self, layer, reward, input_reward=True):
        """``(R_x, {"weight": F_W, "bias": F_b})`` from the rule's connection messages:
        ``R_x = sum_terms coef x' * VJP_x'(rho_g; W')``, ``F_W = sign(W) * sum_terms coef W' *
        (rho_g^T X')``, ``F_b = sign(b) * sum_terms coef b' * sum rho_g``, where
        ``rho_g = R_g / stab(sum of the group's forward passes)``."""
        self.check_layer(layer)
        view = _MatrixView(layer)
        bk = view.bk
        dense, rules = bk.dense, bk.rules
        _check_reward(self, "propagate", layer, reward, view.z)
        reward_rows = view.output_rows(reward)
        terms = self._terms(view)
        group_rewards = self._group_rewards(view, reward_rows)

        # rho_g = R_g / stab(z_g), z_g the sum of the group's modified forward passes
        rhos = [None] * len(group_rewards)
        scratch = bk.empty_like(reward_rows)  # (N, O)
        for term in terms:
            rows, rho = view.input_rows(term.input), rhos[term.group]
            if rho is None:
                out = bk.empty_like(scratch)
                rhos[term.group] = dense.dense_forward(rows, term.weight, term.bias, out)
            else:
                rho += dense.dense_forward(rows, term.weight, term.bias, scratch)
        for rho, group_reward in zip(rhos, group_rewards):
            bk.elementwise.stabilized_ratio(group_reward, rho, self.stabilizer, out=rho)

        # outgoing reward: per modified input x', x' * VJP_x(sum_terms coef rho_g W'^T); the
        # coefficient goes on the (small) weight, not on the (N, K) product
        reward_in = None
        if input_reward:
            d_rows = bk.empty_like(view.input_rows("x"))  # (N, K)
            for name in dict.fromkeys(term.input for term in terms):
                total = None
                for term in terms:
                    if term.input != name:
                        continue
                    weight = term.weight if term.coef == 1 else term.weight * term.coef
                    if total is None:
                        total = dense.dense_vjp_input(
                            rhos[term.group], weight, bk.empty_like(d_rows)
                        )
                    else:
                        total += dense.dense_vjp_input(rhos[term.group], weight, d_rows)
                share = view.to_input(total)
                if reward_in is None:
                    reward_in = bk.elementwise.multiply(view.input(name), share, out=share)
                else:
                    rules.accumulate_product(view.input(name), share, reward_in)

        # parameter feedback: the signed messages, summed over the batch (and positions)
        weight_feedback = bk.zeros_like(view.weight)
        vjp = bk.empty_like(view.weight)  # (O, K)
        for term in terms:
            dense.dense_vjp_weight(view.input_rows(term.input), rhos[term.group], vjp)
            rules.accumulate_signed_product(
                view.weight, term.weight, vjp, term.coef, weight_feedback
            )
        feedback = {"weight": weight_feedback.reshape(layer.weight.shape)}
        if layer.bias is not None:
            bias_feedback = bk.zeros_like(layer.bias)
            sums = bk.empty_like(layer.bias)
            for term in terms:
                if term.bias is not None:
                    dense.bias_vjp(rhos[term.group], sums)
                    rules.accumulate_signed_product(
                        layer.bias, term.bias, sums, term.coef, bias_feedback
                    )
            feedback["bias"] = bias_feedback
        return reward_in, feedback


class ZPlus(_ModifiedWeightsRule):
    """LRP z+ (zennit's ZPlus, alpha=1 beta=0 with negative inputs allowed):

        z+  = x+ W+ + b+ + x- W-
        R_i = x+_i sum_j w+_ij R_j / s(z+_j) + x-_i sum_j w-_ij R_j / s(z+_j)

    As an LFP rule, a weight learns only from the inputs whose sign makes its contribution
    positive: after a ReLU (x- = 0) negative weights get zero feedback.
    """

    def _terms(self, view):
        w_pos, w_neg = _signs(view.weight)
        b_pos, _ = _signs(view.layer.bias)
        return [_Term("x+", w_pos, b_pos), _Term("x-", w_neg, None)]

    def __repr__(self):
        return f"ZPlus(stabilizer={self.stabilizer:g})"


class AlphaBeta(_ModifiedWeightsRule):
    """LRP alpha-beta (zennit's AlphaBeta), ``alpha - beta = 1``, ``alpha, beta >= 0``:

    z+ = x+ W+ + b+ + x- W-,    z- = x+ W- + b- + x- W+
    R  = alpha [x+ (R/s(z+)) W+^T + x- (R/s(z+)) W-^T]
         - beta [x+ (R/s(z-)) W-^T + x- (R/s(z-)) W+^T]
    """

    def __init__(self, alpha=2.0, beta=1.0, stabilizer=DEFAULT_EPS):
        super().__init__(stabilizer)
        if not (np.isfinite(alpha) and np.isfinite(beta)) or alpha < 0 or beta < 0:
            raise ValueError(f"AlphaBeta needs alpha, beta >= 0, got alpha={alpha}, beta={beta}")
        if abs(alpha - beta - 1.0) > 1e-12:
            raise ValueError(
                f"AlphaBeta needs alpha - beta = 1 (relevance conservation), got alpha={alpha}, "
                f"beta={beta}; e.g. AlphaBeta(2, 1) or AlphaBeta(1, 0)"
            )
        self.alpha, self.beta = float(alpha), float(beta)

    def _terms(self, view):
        w_pos, w_neg = _signs(view.weight)
        b_pos, b_neg = _signs(view.layer.bias)
        terms = [
            _Term("x+", w_pos, b_pos, group=0, coef=self.alpha),
            _Term("x-", w_neg, None, group=0, coef=self.alpha),
        ]
        if self.beta != 0:
            terms += [
                _Term("x+", w_neg, b_neg, group=1, coef=-self.beta),
                _Term("x-", w_pos, None, group=1, coef=-self.beta),
            ]
        return terms

    def _group_rewards(self, view, reward_rows):
        return [reward_rows, reward_rows] if self.beta != 0 else [reward_rows]

    def __repr__(self):
        return (
            f"AlphaBeta(alpha={self.alpha:g}, beta={self.beta:g}, stabilizer={self.stabilizer:g})"
        )


class Gamma(_ModifiedWeightsRule):
    """LRP gamma, zennit 0.5.1's generalised version (correct for inputs of either sign):

        W^ = W + gamma W+,  Wv = W + gamma W-     (bias: b^ = b + gamma b+, bv = b + gamma b-)
        z^ = x+ W^ + b^ + x- Wv,   zv = x+ Wv + bv + x- W^
        R  = x+ (R [z>0] / s(z^)) W^^T + x- (R [z>0] / s(z^)) Wv^T
           + x+ (R [z<0] / s(zv)) Wv^T + x- (R [z<0] / s(zv)) W^^T

    Outputs with ``z > 0`` are explained with the raised weights, outputs with ``z < 0`` with the
    lowered ones, outputs with ``z == 0`` pass nothing. ``gamma = 0`` is the epsilon rule with
    ``stabilizer`` (up to the outputs with z == 0).

    This is NOT lfprop 1.0.0's ``LFPGamma``, which is broken (docs/numerical-contract.md
    sections 5.4 and 7): an operator-precedence slip makes its outgoing reward the 0/1 mask
    ``[z>0]`` / ``[z<0]``, independent of the incoming reward. lfp_ref implements the
    zennit-correct rule above, for attribution and as an LFP rule.
    """

    def __init__(self, gamma=0.25, stabilizer=DEFAULT_EPS):
        super().__init__(stabilizer)
        if not np.isfinite(gamma) or gamma < 0:
            raise ValueError(f"Gamma(gamma) needs a finite gamma >= 0, got {gamma}")
        self.gamma = float(gamma)

    def _terms(self, view):
        bk, w = view.bk, view.weight
        gamma_weights = bk.rules.gamma_weights
        w_up, w_down = gamma_weights(w, self.gamma, bk.empty_like(w), bk.empty_like(w))
        b = view.layer.bias
        b_up, b_down = (None, None)
        if b is not None:
            b_up, b_down = gamma_weights(b, self.gamma, bk.empty_like(b), bk.empty_like(b))
        return [
            _Term("x+", w_up, b_up, group=0),
            _Term("x-", w_down, None, group=0),
            _Term("x+", w_down, b_down, group=1),
            _Term("x-", w_up, None, group=1),
        ]

    def _group_rewards(self, view, reward_rows):
        bk = view.bk
        positive, negative = bk.empty_like(reward_rows), bk.empty_like(reward_rows)
        return list(bk.rules.split_by_output_sign(reward_rows, view.z_rows, positive, negative))

    def __repr__(self):
        return f"Gamma(gamma={self.gamma:g}, stabilizer={self.stabilizer:g})"


class Flat(_ModifiedWeightsRule):
    """LRP flat: every input of an output gets the same share, ``R_i = sum_j R_j / s(n_j)`` with
    ``n_j`` the number of inputs of j (for Conv2d the non-padding taps); not multiplied by x, no
    bias. As an LFP rule ``F_w = sign(w) * sum_B R_j / s(n_j)`` over the connections of w."""

    def _terms(self, view):
        return [_Term("ones", view.bk.ones_like(view.weight), None)]

    def __repr__(self):
        return f"Flat(stabilizer={self.stabilizer:g})"


class WSquare(_ModifiedWeightsRule):
    """LRP w^2: ``R_i = sum_j w_ij^2 R_j / s(sum_i' w_i'j^2 + b_j^2)`` (zennit squares the bias
    too); not multiplied by x."""

    def _terms(self, view):
        bk, w = view.bk, view.weight
        w_squared = bk.elementwise.multiply(w, w, bk.empty_like(w))
        b = view.layer.bias
        b_squared = None if b is None else bk.elementwise.multiply(b, b, bk.empty_like(b))
        return [_Term("ones", w_squared, b_squared)]

    def __repr__(self):
        return f"WSquare(stabilizer={self.stabilizer:g})"


class ZBox(_ModifiedWeightsRule):
    """LRP z^B for inputs bounded by ``low <= x <= high`` (floats, or arrays that broadcast to the
    layer's input, e.g. shape (1, C, 1, 1) per channel):

        d   = (x W + b) - (l W+ + b+) - (h W- + b-)
        R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) R_j / s(d_j)

    The bias cancels from d (``b - b+ - b- = 0``), so it gets zero feedback as an LFP rule.
    zennit's EpsilonGammaBox composite uses it on the first convolution.
    """

    def __init__(self, low, high, stabilizer=DEFAULT_EPS):
        super().__init__(stabilizer)
        low_arr, high_arr = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if not (np.isfinite(low_arr).all() and np.isfinite(high_arr).all()):
            raise ValueError("ZBox(low, high) needs finite bounds")
        try:
            np.broadcast_shapes(low_arr.shape, high_arr.shape)
        except ValueError as err:
            raise ValueError(
                f"ZBox: low {low_arr.shape} and high {high_arr.shape} must broadcast together"
            ) from err
        if np.any(low_arr > high_arr):
            raise ValueError("ZBox(low, high) needs low <= high everywhere")
        self.low, self.high = low, high

    def _bound(self, view, value, name):
        value = np.asarray(value, view.x.dtype)
        try:
            return np.broadcast_to(value, view.x.shape)
        except ValueError as err:
            raise ValueError(
                f"ZBox: {name} of shape {value.shape} does not broadcast to the input "
                f"{view.x.shape} of {view.layer!r}; give a float or an array like (1, C, 1, 1)"
            ) from err

    def _terms(self, view):
        # -l and -h as inputs: the denominator and the messages are then plain sums
        view.add_input("-low", np.negative(self._bound(view, self.low, "low")))
        view.add_input("-high", np.negative(self._bound(view, self.high, "high")))
        w_pos, w_neg = _signs(view.weight)
        b = view.layer.bias
        b_pos, b_neg = _signs(b)
        if b is not None:
            b_pos, b_neg = np.negative(b_pos), np.negative(b_neg)
        return [
            _Term("x", view.weight, b),
            _Term("-low", w_pos, b_pos),
            _Term("-high", w_neg, b_neg),
        ]

    def __repr__(self):
        def fmt(v):
            return f"{float(v):g}" if np.ndim(v) == 0 else f"array{np.shape(v)}"

        return f"ZBox(low={fmt(self.low)}, high={fmt(self.high)}, stabilizer={self.stabilizer:g})"


# ---------------------------------------------------------------------------- names


def _alpha2beta1(**params):
    return AlphaBeta(alpha=2.0, beta=1.0, **params)


def _zbox(**params):
    if "low" not in params or "high" not in params:
        raise ValueError(
            "the zbox rule needs the input bounds: lfp_ref.rules.get('zbox', low=..., high=...) "
            "or lfp_ref.rules.ZBox(low, high)"
        )
    return ZBox(**params)


#: rule names accepted by :func:`get`, and what they build
RULES = {
    "epsilon": Epsilon,
    "zplus": ZPlus,
    "alpha2beta1": _alpha2beta1,
    "alphabeta": AlphaBeta,
    "gamma": Gamma,
    "flat": Flat,
    "wsquare": WSquare,
    "zbox": _zbox,
    "norm": Norm,
    "pass": Pass,
}


def get(spec, **params):
    """A rule from a name in :data:`RULES` (case, '-' and '_' ignored; ``params`` go to the
    constructor, e.g. ``get("epsilon", eps=0.1)``, ``get("zbox", low=0, high=1)``) or a rule
    object (returned as is)."""
    if isinstance(spec, Rule):
        if params:
            raise ValueError(f"parameters {sorted(params)} are for a rule given by name")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a rule is a name from {sorted(RULES)} or a Rule object, got {spec!r}")
    key = spec.lower().replace("-", "").replace("_", "")
    if key not in RULES:
        raise ValueError(f"unknown rule {spec!r}; known rules: {', '.join(RULES)}")
    return RULES[key](**params)
