"""BatchNorm1d / BatchNorm2d with torch's names, buffers and semantics.

Given the statistics, ``z = gamma * (x - mean) / sqrt(var + eps) + beta`` per channel. In training
mode (or without running statistics) mean and var are the batch's (biased variance); in eval mode
they are the running statistics. The layer is a :class:`LinearLayer`; its ``vjp`` applies the FULL
Jacobian of the map that ran (docs/numerical-contract.md section 2.2, BatchNorm rows): in training
mode the batch statistics depend on x, so

    J^T v = gamma * inv_std * (v - mean(v) - xhat * mean(v * xhat))     means per channel

and in eval mode ``J^T v = gamma * inv_std * v``. The parameter VJPs are ``sum v * xhat`` (gamma)
and ``sum v`` (beta). Through :class:`lfp_ref.rules.Epsilon` this gives
``F_gamma = |gamma| * sum rho * xhat``, ``F_beta = |beta| * sum rho``, ``R_x = x * J^T rho``, and
backprop gives torch's BatchNorm gradients.

The per-channel statistics are computed and kept in float64 for float32 input too (as torch's CPU
kernel accumulates them in double); see ``lfp_ref.kernels.cpu.norm``.
"""

import numpy as np

from ..kernels import backend_of
from .base import FLOAT_DTYPES, NormalizationLayer, check_dtype


class _BatchNorm(NormalizationLayer):
    """Shared implementation; subclasses say which input shapes they take."""

    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        *,
        dtype=np.float64,
    ):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or int(num_features) != num_features or num_features < 1:
            raise ValueError(f"{name} needs a positive integer num_features, got {num_features!r}")
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"{name} needs a finite eps >= 0, got {eps!r}")
        if momentum is not None and not (0.0 <= momentum <= 1.0):
            raise ValueError(
                f"{name} needs momentum in [0, 1] (or None for a cumulative average), "
                f"got {momentum!r}"
            )
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = check_dtype(dtype)
        shape = (self.num_features,)
        self.weight = np.ones(shape, dtype=dtype) if self.affine else None
        self.bias = np.zeros(shape, dtype=dtype) if self.affine else None
        if self.track_running_stats:
            self.running_mean = np.zeros(shape, dtype=dtype)
            self.running_var = np.ones(shape, dtype=dtype)
            self.num_batches_tracked = np.array(0, dtype=np.int64)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    # -- torch's initialisation ------------------------------------------------------------

    def reset_running_stats(self):
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (as torch)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = np.array(0, dtype=np.int64)

    def _init_parameters(self, rng):
        # torch's BatchNorm.reset_parameters: no random draws, gamma = 1, beta = 0
        self.reset_running_stats()
        if self.affine:
            self.weight[...] = 1
            self.bias[...] = 0

    # -- validation ------------------------------------------------------------------------

    def _check_shape(self, x):
        raise NotImplementedError

    def _state_dtype(self):
        for value in (self.weight, self.running_mean):
            if value is not None:
                return value.dtype
        return None  # no parameters, no buffers: any float dtype goes

    def _check_input(self, x):
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{self!r} expects float32 or float64 input, got dtype {x.dtype}")
        dtype = self._state_dtype()
        if dtype is not None and x.dtype != dtype:
            raise TypeError(
                f"{self!r} computes in {dtype} but got {x.dtype} input; convert with "
                f"x.astype(np.{dtype.name}) or the layer with layer.to(np.{x.dtype.name})"
            )
        self._check_shape(x)
        return backend_of(x).contiguous(x)

    # -- the passes ------------------------------------------------------------------------

    def forward(self, x):
        x = self._check_input(x)
        bk = backend_of(x, self.weight, self.running_mean)
        kernels = bk.norm
        batch, channels = x.shape[:2]
        x3 = x.reshape(batch, channels, -1)  # (B, C, S)
        n = x3.shape[0] * x3.shape[2]
        batch_stats = self.training or self.running_mean is None
        if batch_stats:
            if n == 1:
                raise ValueError(
                    f"{self!r}: Expected more than 1 value per channel when training, got input "
                    f"size {x.shape}; use a batch of at least 2, or layer.eval() to normalise "
                    "with the running statistics"
                )
            mean, var_sum = kernels.channel_stats(
                x3, bk.empty(channels, np.float64), bk.empty(channels, np.float64)
            )
            var = var_sum / n  # biased: what the normalisation uses
            if self.running_mean is not None:  # batch statistics with buffers: training mode
                self.num_batches_tracked += 1
                factor = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                kernels.update_running_stats(
                    self.running_mean, self.running_var, mean, var_sum, n, factor
                )
        else:
            mean = self.running_mean.astype(np.float64)
            var = self.running_var.astype(np.float64)
        inv_std = 1.0 / bk.xp.sqrt(var + self.eps)  # (C,) float64
        if self.affine:
            scale, shift = self.weight.astype(np.float64), self.bias.astype(np.float64)
        else:
            scale, shift = bk.ones(channels, np.float64), bk.zeros(channels, np.float64)
        xhat, z = bk.empty_like(x), bk.empty_like(x)
        kernels.normalize_affine(
            x3, mean, inv_std, scale, shift, xhat.reshape(x3.shape), z.reshape(x3.shape)
        )
        # the mode is cached with the statistics: vjp differentiates the map that actually ran.
        # xhat is kept for inspection and other rules; vjp recomputes it in float64 from x.
        self.save((x, z, xhat, inv_std, mean, batch_stats))
        return z

    def vjp(self, v, input_vjp=True):
        """``(J^T v, {"weight": sum v * xhat, "bias": sum v})`` with the full Jacobian of the
        forward pass that ran (training mode: batch statistics; eval: running statistics)."""
        x, z, _, inv_std, mean, batch_stats = self.saved()
        if np.shape(v) != z.shape:
            raise ValueError(
                f"{self!r}.vjp: expected an array of shape {z.shape}, got {np.shape(v)}"
            )
        bk = backend_of(v, x)
        kernels = bk.norm
        v = bk.contiguous(v, dtype=z.dtype)
        batch, channels = x.shape[:2]
        v3 = v.reshape(batch, channels, -1)  # (B, C, S)
        x3 = x.reshape(v3.shape)
        n = v3.shape[0] * v3.shape[2]
        gamma = self.weight.astype(np.float64) if self.affine else bk.ones(channels, np.float64)
        scale = gamma * inv_std  # (C,) float64
        grads = {}
        if batch_stats or self.affine:
            sum_v, sum_v_xhat = kernels.channel_vjp_sums(
                v3,
                x3,
                mean,
                inv_std,
                bk.empty(channels, np.float64),
                bk.empty(channels, np.float64),
            )
            if self.affine:
                grads["weight"] = sum_v_xhat.astype(self.weight.dtype)
                grads["bias"] = sum_v.astype(self.bias.dtype)
        if not input_vjp:
            return None, grads
        out = bk.empty_like(x)
        if batch_stats:
            kernels.vjp_input_train(
                v3, x3, mean, inv_std, scale, sum_v / n, sum_v_xhat / n, out.reshape(v3.shape)
            )
        else:
            kernels.vjp_input_eval(v3, scale, out.reshape(v3.shape))
        return out, grads

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (B, C) or (B, C, L) input, per channel C (torch.nn.BatchNorm1d).

    Parameters ``weight`` (gamma, init 1) and ``bias`` (beta, init 0), shape (C,), if ``affine``;
    buffers ``running_mean`` (0), ``running_var`` (1), ``num_batches_tracked`` (int64, 0-d) if
    ``track_running_stats``. Training mode normalises with the batch mean and biased variance and
    updates ``running = momentum * batch + (1 - momentum) * running`` with the unbiased variance
    (``momentum=None``: cumulative average); eval mode normalises with the running statistics.
    """

    def _check_shape(self, x):
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            hint = "; use BatchNorm2d for NCHW input" if x.ndim == 4 else ""
            raise ValueError(
                f"{self!r} expects input of shape (B, {self.num_features}) or "
                f"(B, {self.num_features}, L), got {x.shape}{hint}"
            )


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over NCHW input, per channel C, statistics over (B, H, W)
    (torch.nn.BatchNorm2d). Parameters, buffers and modes as :class:`BatchNorm1d`."""

    def _check_shape(self, x):
        if x.ndim != 4 or x.shape[1] != self.num_features:
            hint = "; use BatchNorm1d for (B, C) input" if x.ndim == 2 else ""
            raise ValueError(
                f"{self!r} expects NCHW input of shape (B, {self.num_features}, H, W), "
                f"got {x.shape}{hint}"
            )
