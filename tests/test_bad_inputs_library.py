"""Bad input at the library level: every class of it is an exception of a stated type whose
message names the function (or file, or key) and what was wrong, never a read past an array's
end, a traceback from deep inside, or a half-done change.

- the kernels' public wrappers (``lfp_ref.kernels.cpu.*``): wrong shapes, dtypes, layouts,
  read-only outputs, bad geometry;
- the public entry points that reach kernels: a reward function of the wrong shape, rules'
  ``propagate``, layers' ``vjp`` / ``feedback`` / ``backward``, the optimizers' step, clipping;
- ``load_state_dict``: all or nothing, each bad key named with the reason;
- data files: a corrupt or missing IDX file, a bad CIFAR-10 ``batches.meta`` or missing batch.

The command line's and the trainer's bad inputs are in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import gzip
import pickle
import re

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import data
from lfp_ref.data import DatasetNotFoundError, load
from lfp_ref.data import fetch as data_fetch
from lfp_ref.kernels.cpu import conv, dense, elementwise, lif, norm, pool
from lfp_ref.kernels.cpu import rules as rule_kernels
from tests.test_data import idx_bytes, write_cifar, write_idx_set

F64, F32 = np.float64, np.float32


def raises(kind, *fragments):
    """``pytest.raises(kind)`` whose message must contain every fragment (plain text)."""
    return pytest.raises(kind, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def arr(*shape, dtype=F64, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# kernel wrappers: elementwise


ELEMENTWISE_SHAPE_CASES = {
    "stabilized_ratio-reward": (
        lambda: elementwise.stabilized_ratio(arr(64, 3), arr(64, 10), 1e-6, arr(64, 10)),
        ["stabilized_ratio", "reward", "(64, 10)", "(64, 3)"],
    ),
    "stabilized_ratio-out": (
        lambda: elementwise.stabilized_ratio(arr(8, 5), arr(8, 5), 1e-6, arr(8, 4)),
        ["stabilized_ratio", "out", "(8, 5)", "(8, 4)"],
    ),
    "stabilize-out": (
        lambda: elementwise.stabilize(arr(6), 0.1, arr(7)),
        ["stabilize", "out", "(6,)", "(7,)"],
    ),
    "multiply-b": (
        lambda: elementwise.multiply(arr(4, 3), arr(3, 4), arr(4, 3)),
        ["multiply", "b", "(4, 3)", "(3, 4)"],
    ),
    "multiply_abs-param": (
        lambda: elementwise.multiply_abs(arr(10, 4), arr(4), arr(10, 4)),
        ["multiply_abs", "param", "(10, 4)", "(4,)"],
    ),
    "sgd_update-grad": (
        lambda: elementwise.sgd_update(arr(5, 3), arr(5, 2), None, 0.1, 0.0, 0.0, 0.0, False, True),
        ["sgd_update", "grad", "(5, 3)", "(5, 2)"],
    ),
    "sgd_update-buf": (
        lambda: elementwise.sgd_update(
            arr(5, 3), arr(5, 3), arr(2), 0.1, 0.9, 0.0, 0.0, False, False
        ),
        ["sgd_update", "buf", "(5, 3)", "(2,)"],
    ),
    "sgd_update-no-buf-with-momentum": (
        lambda: elementwise.sgd_update(arr(5, 3), arr(5, 3), None, 0.1, 0.9, 0.0, 0.0, False, True),
        ["sgd_update", "momentum", "(5, 3)", "buf=None"],
    ),
}


@pytest.mark.parametrize(
    "call, fragments", ELEMENTWISE_SHAPE_CASES.values(), ids=ELEMENTWISE_SHAPE_CASES.keys()
)
def test_elementwise_wrong_shapes(call, fragments):
    with raises(ValueError, *fragments):
        call()


def test_elementwise_dtypes_layouts_and_outputs():
    z = arr(8, 5)
    with raises(TypeError, "stabilized_ratio", "reward", "float32", "float64"):
        elementwise.stabilized_ratio(arr(8, 5, dtype=F32), z, 1e-6, arr(8, 5))
    with raises(TypeError, "stabilized_ratio", "z", "float32 or float64", "int64"):
        elementwise.stabilized_ratio(z, np.ones((8, 5), np.int64), 1e-6, arr(8, 5))
    with raises(TypeError, "multiply", "a", "must be an array", "list"):
        elementwise.multiply([1.0, 2.0], arr(2), arr(2))
    with raises(ValueError, "multiply", "b", "C-contiguous"):
        elementwise.multiply(arr(5, 8), arr(8, 5).T, arr(5, 8))
    with raises(ValueError, "stabilize", "out", "read-only"):
        elementwise.stabilize(z, 0.1, read_only(z))
    with raises(TypeError, "sum_of_squares", "values", "int64"):
        elementwise.sum_of_squares(np.arange(4))
    with raises(TypeError, "all_finite", "values", "float16"):
        elementwise.all_finite(np.ones(3, np.float16))
    with raises(ValueError, "all_finite", "values", "C-contiguous"):
        elementwise.all_finite(arr(4, 6).T)
    big_endian = np.ones(4, ">f8")
    with raises(TypeError, "multiply", ">f8"):
        elementwise.multiply(big_endian, big_endian, big_endian.copy())


def test_the_shape_check_comes_before_any_write():
    # the check runs before the kernel: a rejected call leaves its output untouched
    out = np.full((64, 10), 7.0)
    with pytest.raises(ValueError):
        elementwise.stabilized_ratio(arr(64, 3), arr(64, 10), 1e-6, out)
    assert (out == 7.0).all()


# --------------------------------------------------------------------------------------------
# kernel wrappers: the rules' elementwise kernels


RULE_KERNEL_CASES = {
    "split_signs": (
        lambda: rule_kernels.split_signs(arr(3, 4), arr(3, 4), arr(4, 3)),
        ["split_signs", "negative", "(3, 4)", "(4, 3)"],
    ),
    "gamma_weights": (
        lambda: rule_kernels.gamma_weights(arr(6, 2), 0.25, arr(6, 2), arr(6)),
        ["gamma_weights", "lowered", "(6, 2)", "(6,)"],
    ),
    "split_by_output_sign": (
        lambda: rule_kernels.split_by_output_sign(arr(9, 3), arr(9, 10), arr(9, 10), arr(9, 10)),
        ["split_by_output_sign", "reward", "(9, 10)", "(9, 3)"],
    ),
    "accumulate_signed_product": (
        lambda: rule_kernels.accumulate_signed_product(
            arr(4, 5), arr(4, 5), arr(5), 1.0, arr(4, 5)
        ),
        ["accumulate_signed_product", "values", "(4, 5)", "(5,)"],
    ),
    "accumulate_product": (
        lambda: rule_kernels.accumulate_product(arr(2, 3), arr(2, 3), arr(2, 2)),
        ["accumulate_product", "a", "(2, 2)", "(2, 3)"],
    ),
}


@pytest.mark.parametrize(
    "call, fragments", RULE_KERNEL_CASES.values(), ids=RULE_KERNEL_CASES.keys()
)
def test_rule_kernels_wrong_shapes(call, fragments):
    with raises(ValueError, *fragments):
        call()


# --------------------------------------------------------------------------------------------
# kernel wrappers: dense


DENSE_CASES = {
    "forward-weight": (
        lambda: dense.dense_forward(arr(8, 5), arr(3, 4), None, arr(8, 3)),
        ValueError,
        ["dense_forward", "weight", "(3, 5)", "(3, 4)"],
    ),
    "forward-bias": (
        lambda: dense.dense_forward(arr(8, 5), arr(3, 5), arr(4), arr(8, 3)),
        ValueError,
        ["dense_forward", "bias", "(3,)", "(4,)"],
    ),
    "forward-out": (
        lambda: dense.dense_forward(arr(8, 5), arr(3, 5), arr(3), arr(3, 8)),
        ValueError,
        ["dense_forward", "out", "(8, 3)", "(3, 8)"],
    ),
    "forward-x-3d": (
        lambda: dense.dense_forward(arr(8, 1, 5), arr(3, 5), None, arr(8, 3)),
        ValueError,
        ["dense_forward", "x", "(B, I)", "(8, 1, 5)"],
    ),
    "forward-dtype": (
        lambda: dense.dense_forward(arr(8, 5), arr(3, 5, dtype=F32), None, arr(8, 3)),
        TypeError,
        ["dense_forward", "weight", "float32", "float64"],
    ),
    "forward-read-only": (
        lambda: dense.dense_forward(arr(8, 5), arr(3, 5), None, read_only(arr(8, 3))),
        ValueError,
        ["dense_forward", "out", "read-only"],
    ),
    "vjp_input-weight": (
        lambda: dense.dense_vjp_input(arr(8, 3), arr(4, 5), arr(8, 5)),
        ValueError,
        ["dense_vjp_input", "weight", "(3, 5)", "(4, 5)"],
    ),
    "vjp_input-out": (
        lambda: dense.dense_vjp_input(arr(8, 3), arr(3, 5), arr(8, 3)),
        ValueError,
        ["dense_vjp_input", "out", "(8, 5)", "(8, 3)"],
    ),
    "vjp_weight-rho": (
        lambda: dense.dense_vjp_weight(arr(8, 5), arr(7, 3), arr(3, 5)),
        ValueError,
        ["dense_vjp_weight", "rho", "(8, 3)", "(7, 3)"],
    ),
    "vjp_weight-out": (
        lambda: dense.dense_vjp_weight(arr(1, 5), arr(1, 3), arr(5, 3)),
        ValueError,
        ["dense_vjp_weight", "out", "(3, 5)", "(5, 3)"],
    ),
    "bias_vjp-out": (
        lambda: dense.bias_vjp(arr(8, 3), arr(8)),
        ValueError,
        ["bias_vjp", "out", "(3,)", "(8,)"],
    ),
}


@pytest.mark.parametrize("call, kind, fragments", DENSE_CASES.values(), ids=DENSE_CASES.keys())
def test_dense_kernels(call, kind, fragments):
    with raises(kind, *fragments):
        call()


# --------------------------------------------------------------------------------------------
# kernel wrappers: conv

GEO = ((3, 3), (1, 1), (0, 0), (1, 1))  # kernel, stride, padding, dilation: (2, 2, 6, 6) -> 4x4


CONV_CASES = {
    "im2col-out": (
        lambda: conv.im2col(arr(2, 2, 6, 6), *GEO, arr(32, 17)),
        ValueError,
        ["im2col", "out", "(32, 18)", "(32, 17)"],
    ),
    "im2col-x-3d": (
        lambda: conv.im2col(arr(2, 6, 6), *GEO, arr(32, 18)),
        ValueError,
        ["im2col", "x", "(B, C, H, W)", "(2, 6, 6)"],
    ),
    "im2col-stride-0": (
        lambda: conv.im2col(arr(2, 2, 6, 6), (3, 3), (0, 1), (0, 0), (1, 1), arr(32, 18)),
        ValueError,
        ["im2col", "stride", ">= 1", "(0, 1)"],
    ),
    "im2col-kernel-not-pair": (
        lambda: conv.im2col(arr(2, 2, 6, 6), 3, (1, 1), (0, 0), (1, 1), arr(32, 18)),
        TypeError,
        ["im2col", "kernel_size", "pair of ints", "3"],
    ),
    "im2col-too-small": (
        lambda: conv.im2col(arr(2, 2, 2, 2), *GEO, arr(1, 18)),
        ValueError,
        ["im2col", "2x2", "no output position"],
    ),
    "nchw_to_rows-out": (
        lambda: conv.nchw_to_rows(arr(2, 3, 4, 4), arr(32, 4)),
        ValueError,
        ["nchw_to_rows", "out", "(32, 3)", "(32, 4)"],
    ),
    "col2im-dcols": (
        lambda: conv.col2im(arr(30, 18), *GEO, arr(2, 2, 6, 6)),
        ValueError,
        ["col2im", "dcols", "(32, 18)", "(30, 18)"],
    ),
    "col2im-dtype": (
        lambda: conv.col2im(arr(32, 18, dtype=F32), *GEO, arr(2, 2, 6, 6)),
        TypeError,
        ["col2im", "dcols", "float32", "float64"],
    ),
    "vjp_bias-out": (
        lambda: conv.conv2d_vjp_bias(arr(2, 3, 4, 4), arr(4)),
        ValueError,
        ["conv2d_vjp_bias", "out", "(3,)", "(4,)"],
    ),
    "im2col_samples-out": (
        lambda: conv.im2col_samples(arr(2, 2, 6, 6), *GEO, arr(2, 18, 15)),
        ValueError,
        ["im2col_samples", "out", "(2, 18, 16)", "(2, 18, 15)"],
    ),
    "im2col_samples-x-layout": (
        lambda: conv.im2col_samples(arr(2, 2, 6, 7)[..., :6], *GEO, arr(2, 18, 16)),
        ValueError,
        ["im2col_samples", "x", "C-contiguous"],
    ),
    "col2im_samples-dcols": (
        lambda: conv.col2im_samples(arr(3, 18, 16), *GEO, arr(2, 2, 6, 6)),
        ValueError,
        ["col2im_samples", "dcols", "(2, 18, 16)", "(3, 18, 16)"],
    ),
    "forward_samples-channels": (
        lambda: conv.conv2d_forward_samples(
            arr(2, 2, 6, 6),
            arr(3, 1, 3, 3),
            None,
            (1, 1),
            (0, 0),
            (1, 1),
            arr(2, 9, 16),
            arr(2, 3, 4, 4),
        ),
        ValueError,
        ["conv2d_forward_samples", "(3, 1, 3, 3)", "(2, 2, 6, 6)", "input channels"],
    ),
    "forward_samples-out": (
        lambda: conv.conv2d_forward_samples(
            arr(2, 2, 6, 6),
            arr(3, 2, 3, 3),
            arr(3),
            (1, 1),
            (0, 0),
            (1, 1),
            arr(2, 18, 16),
            arr(2, 3, 5, 5),
        ),
        ValueError,
        ["conv2d_forward_samples", "out", "(2, 3, 4, 4)", "(2, 3, 5, 5)"],
    ),
    "forward_samples-cols": (
        lambda: conv.conv2d_forward_samples(
            arr(2, 2, 6, 6),
            arr(3, 2, 3, 3),
            None,
            (1, 1),
            (0, 0),
            (1, 1),
            arr(2, 18, 9),
            arr(2, 3, 4, 4),
        ),
        ValueError,
        ["conv2d_forward_samples", "cols", "(2, 18, 16)", "(2, 18, 9)"],
    ),
    "vjp_samples-v": (
        lambda: conv.conv2d_vjp_samples(
            arr(2, 2, 6, 6),
            arr(3, 2, 3, 3),
            arr(2, 3, 5, 5),
            (1, 1),
            (0, 0),
            (1, 1),
            arr(2, 18, 16),
            arr(2, 18, 16),
            arr(2, 18, 3),
            arr(3, 2, 3, 3),
            arr(2, 2, 6, 6),
        ),
        ValueError,
        ["conv2d_vjp_samples", "v", "(2, 3, 4, 4)", "(2, 3, 5, 5)"],
    ),
    "vjp_samples-partial": (
        lambda: conv.conv2d_vjp_samples(
            arr(2, 2, 6, 6),
            arr(3, 2, 3, 3),
            arr(2, 3, 4, 4),
            (1, 1),
            (0, 0),
            (1, 1),
            arr(2, 18, 16),
            arr(2, 18, 16),
            arr(2, 18, 4),
            arr(3, 2, 3, 3),
            arr(2, 2, 6, 6),
        ),
        ValueError,
        ["conv2d_vjp_samples", "partial", "(2, 18, 3)", "(2, 18, 4)"],
    ),
    "vjp_samples-input_out": (
        lambda: conv.conv2d_vjp_samples(
            arr(2, 2, 6, 6),
            arr(3, 2, 3, 3),
            arr(2, 3, 4, 4),
            (1, 1),
            (0, 0),
            (1, 1),
            arr(2, 18, 16),
            arr(2, 18, 16),
            arr(2, 18, 3),
            arr(3, 2, 3, 3),
            arr(2, 2, 6, 5),
        ),
        ValueError,
        ["conv2d_vjp_samples", "input_out", "(2, 2, 6, 6)", "(2, 2, 6, 5)"],
    ),
}


@pytest.mark.parametrize("call, kind, fragments", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_kernels(call, kind, fragments):
    with raises(kind, *fragments):
        call()


# --------------------------------------------------------------------------------------------
# kernel wrappers: BatchNorm


def c64(n):
    return np.zeros(n)


NORM_CASES = {
    "channel_stats-mean": (
        lambda: norm.channel_stats(arr(4, 3, 5), c64(2), c64(3)),
        ValueError,
        ["channel_stats", "mean", "(3,)", "(2,)"],
    ),
    "channel_stats-not-3d": (
        lambda: norm.channel_stats(arr(4, 3), c64(3), c64(3)),
        ValueError,
        ["channel_stats", "x", "(B, C, S)", "(4, 3)"],
    ),
    "channel_stats-float32-stats": (
        lambda: norm.channel_stats(arr(4, 3, 5), c64(3).astype(F32), c64(3)),
        TypeError,
        ["channel_stats", "mean", "float64", "float32"],
    ),
    "normalize_affine-out": (
        lambda: norm.normalize_affine(
            arr(4, 3, 5), c64(3), c64(3), c64(3), c64(3), arr(4, 3, 5), arr(4, 3, 4)
        ),
        ValueError,
        ["normalize_affine", "out", "(4, 3, 5)", "(4, 3, 4)"],
    ),
    "normalize_affine-shift": (
        lambda: norm.normalize_affine(
            arr(4, 3, 5), c64(3), c64(3), c64(3), c64(30), arr(4, 3, 5), arr(4, 3, 5)
        ),
        ValueError,
        ["normalize_affine", "shift", "(3,)", "(30,)"],
    ),
    "channel_vjp_sums-x": (
        lambda: norm.channel_vjp_sums(arr(4, 3, 5), arr(4, 3, 6), c64(3), c64(3), c64(3), c64(3)),
        ValueError,
        ["channel_vjp_sums", "x", "(4, 3, 5)", "(4, 3, 6)"],
    ),
    "vjp_input_train-mean_v": (
        lambda: norm.vjp_input_train(
            arr(4, 3, 5), arr(4, 3, 5), c64(3), c64(3), c64(3), c64(2), c64(3), arr(4, 3, 5)
        ),
        ValueError,
        ["vjp_input_train", "mean_v", "(3,)", "(2,)"],
    ),
    "vjp_input_eval-scale": (
        lambda: norm.vjp_input_eval(arr(4, 3, 5), c64(5), arr(4, 3, 5)),
        ValueError,
        ["vjp_input_eval", "scale", "(3,)", "(5,)"],
    ),
    "update_running_stats-var": (
        lambda: norm.update_running_stats(c64(3), c64(4), c64(3), c64(3), 10, 0.1),
        ValueError,
        ["update_running_stats", "running_var", "(3,)", "(4,)"],
    ),
}


@pytest.mark.parametrize("call, kind, fragments", NORM_CASES.values(), ids=NORM_CASES.keys())
def test_norm_kernels(call, kind, fragments):
    with raises(kind, *fragments):
        call()


# --------------------------------------------------------------------------------------------
# kernel wrappers: pooling and the LIF recursion

POOL = ((2, 2), (2, 2), (0, 0))  # 2x2 windows: (2, 3, 6, 6) -> (2, 3, 3, 3)


POOL_CASES = {
    "avgpool-out": (
        lambda: pool.avgpool2d_forward(arr(2, 3, 6, 6), *POOL, arr(2, 3, 3, 2)),
        ValueError,
        ["avgpool2d_forward", "out", "(2, 3, 3, 3)", "(2, 3, 3, 2)"],
    ),
    "avgpool-padding": (
        lambda: pool.avgpool2d_forward(arr(2, 3, 6, 6), (2, 2), (2, 2), (2, 0), arr(2, 3, 5, 3)),
        ValueError,
        ["avgpool2d_forward", "padding", "(2, 0)", "(1, 1)"],
    ),
    "avgpool_vjp-v": (
        lambda: pool.avgpool2d_vjp(arr(2, 3, 4, 4), *POOL, arr(2, 3, 6, 6)),
        ValueError,
        ["avgpool2d_vjp", "v", "(2, 3, 3, 3)", "(2, 3, 4, 4)"],
    ),
    "maxpool-argmax-dtype": (
        lambda: pool.maxpool2d_forward(
            arr(2, 3, 6, 6), *POOL, arr(2, 3, 3, 3), np.zeros((2, 3, 3, 3), np.int32)
        ),
        TypeError,
        ["maxpool2d_forward", "argmax", "int64", "int32"],
    ),
    "maxpool-out": (
        lambda: pool.maxpool2d_forward(
            arr(2, 3, 6, 6), *POOL, arr(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64)
        ),
        ValueError,
        ["maxpool2d_forward", "out", "(2, 3, 3, 3)", "(2, 3, 2, 2)"],
    ),
    "route-argmax": (
        lambda: pool.route_to_argmax(
            arr(2, 3, 3, 3), np.zeros((2, 3, 2, 2), np.int64), arr(2, 3, 6, 6)
        ),
        ValueError,
        ["route_to_argmax", "argmax", "(2, 3, 3, 3)", "(2, 3, 2, 2)"],
    ),
    "route-out-channels": (
        lambda: pool.route_to_argmax(
            arr(2, 3, 3, 3), np.zeros((2, 3, 3, 3), np.int64), arr(2, 4, 6, 6)
        ),
        ValueError,
        ["route_to_argmax", "(2, 4, 6, 6)", "(2, 3, 3, 3)"],
    ),
    "lif-membrane": (
        lambda: lif.lif_forward(arr(5, 8), 0.9, 1.0, "subtract", arr(5, 7), arr(5, 8)),
        ValueError,
        ["lif_forward", "membrane", "(5, 8)", "(5, 7)"],
    ),
}


@pytest.mark.parametrize("call, kind, fragments", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pool_and_lif_kernels(call, kind, fragments):
    with raises(kind, *fragments):
        call()


# --------------------------------------------------------------------------------------------
# public entry points that reach the kernels


def mlp(seed=0):
    rng = np.random.default_rng(seed)
    return lfp.Sequential(
        lfp.Flatten(), lfp.Dense(12, 8, rng=rng), lfp.ReLU(), lfp.Dense(8, 10, rng=rng)
    )


def batch(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3, 4)), rng.integers(0, 10, n)


def test_reward_function_of_the_wrong_shape_is_refused_every_time():
    # the symptom: the reward array read past its end (an error, 5.91, 2.57e+204, 5.91
    # from four identical calls); now each call is the same ValueError
    model, (x, y) = mlp(), batch()

    def short_reward(logits, y):
        return logits[:, :3].copy()  # (B, 3) for (B, 10) logits

    for _ in range(4):
        with raises(ValueError, "short_reward", "(6, 10)", "(6, 3)"):
            lfp.feedback(model, x, y, reward=short_reward)
        with raises(ValueError, "(6, 10)", "(6, 3)"):
            lfp.feedback(model, x, y, reward=np.ones((6, 3)))


@pytest.mark.parametrize(
    "rule", [lfp.rules.Epsilon(), lfp.rules.ZPlus(), lfp.rules.Gamma()], ids=repr
)
def test_rule_propagate_with_a_wrong_reward_shape(rule):
    model, (x, _) = mlp(), batch()
    model(x)
    layer = model[3]  # Dense(8, 10): output (6, 10)
    with raises(ValueError, f"{rule!r}.propagate", "Dense(8, 10)", "(6, 10)", "(10, 6)"):
        rule.propagate(layer, np.ones((10, 6)), input_reward=True)


def test_residual_sum_with_a_wrong_reward_shape():
    rng = np.random.default_rng(0)
    block = lfp.Residual(lfp.Sequential(lfp.Dense(4, 4, rng=rng), lfp.ReLU()))
    block(rng.normal(size=(3, 4)))
    rule = lfp.rules.Epsilon()
    with raises(ValueError, "propagate_sum", "residual sum", "(3, 4)", "(3, 5)"):
        block.feedback(np.ones((3, 5)), lambda layer: rule)


def test_dense_vjp_and_backward_with_a_wrong_shape():
    model, (x, _) = mlp(), batch()
    model(x)
    layer = model[1]  # Dense(12, 8)
    with raises(ValueError, "Dense(12, 8).vjp", "(6, 8)", "(6, 7)"):
        layer.vjp(np.ones((6, 7)))
    with raises(ValueError, "Dense(12, 8).vjp", "(6, 8)", "(8, 6)"):
        layer.backward(np.ones((8, 6)))


def test_conv_avgpool_maxpool_batchnorm_dropout_with_a_wrong_shape():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 6, 6))
    conv_layer = lfp.Conv2d(1, 2, 3, rng=rng)
    z = conv_layer(x)  # (2, 2, 4, 4)
    with raises(ValueError, "Conv2d(1, 2, kernel_size=3).vjp", "(2, 2, 4, 4)", "(2, 2, 4, 3)"):
        conv_layer.vjp(np.ones((2, 2, 4, 3)))
    avg = lfp.AvgPool2d(2)
    avg(z)  # (2, 2, 2, 2)
    with raises(ValueError, "AvgPool2d", "(2, 2, 2, 2)", "(2, 2, 2, 1)"):
        avg.vjp(np.ones((2, 2, 2, 1)))
    with raises(ValueError, "AvgPool2d", "(2, 2, 2, 2)", "(2, 2, 2, 1)"):
        avg.feedback(np.ones((2, 2, 2, 1)), lambda layer: lfp.rules.Epsilon())
    mx = lfp.MaxPool2d(2)
    mx(z)
    with raises(ValueError, "MaxPool2d", "reward", "(2, 2, 2, 2)", "(2, 2, 1, 2)"):
        mx.feedback(np.ones((2, 2, 1, 2)), None)
    with raises(ValueError, "MaxPool2d", "gradient", "(2, 2, 2, 2)", "(2, 2, 1, 2)"):
        mx.backward(np.ones((2, 2, 1, 2)))
    bn = lfp.BatchNorm2d(2)
    bn(z)
    with raises(ValueError, "BatchNorm2d", "vjp", "(2, 2, 4, 4)", "(2, 3, 4, 4)"):
        bn.vjp(np.ones((2, 3, 4, 4)))
    drop = lfp.Dropout(0.5, rng=0)
    drop(z)
    with raises(ValueError, "Dropout", "(2, 2, 4, 4)", "(2, 2, 4, 5)"):
        drop.feedback(np.ones((2, 2, 4, 5)), None)


def test_flatten_refuses_a_reward_of_the_right_size_but_the_wrong_shape():
    # (B, 12) and (12, B) have the same size: a plain reshape would scramble the reward silently
    flat = lfp.Flatten()
    flat(np.ones((6, 3, 4)))
    with raises(ValueError, "Flatten.feedback", "(6, 12)", "(12, 6)"):
        flat.feedback(np.ones((12, 6)), None)
    with raises(ValueError, "Flatten.backward", "(6, 12)", "(6, 11)"):
        flat.backward(np.ones((6, 11)))


def test_optimizer_step_and_clipping_with_bad_gradients():
    model = mlp()
    opt = lfp.optim.SGD(model, lr=0.1, momentum=0.9)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    grads = {name: np.zeros_like(p) for name, p in model.named_parameters()}
    with raises(ValueError, "SGD.step", "1.weight", "(8, 12)", "(12, 8)"):
        opt.step({**grads, "1.weight": np.zeros((12, 8))})
    with raises(ValueError, "Adam.step", "3.bias", "float32", "float64"):
        lfp.optim.Adam(model).step({"3.bias": np.zeros(10, F32)})
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])  # a refused step changes nothing
    with raises(ValueError, "clip_grad_norm", "grads[0]", "int64"):
        lfp.optim.clip_grad_norm([np.arange(3)], 1.0)
    with raises(TypeError, "clip_coefficient", "list"):
        lfp.optim.clip_coefficient([1.0, 2.0], 1.0)


# --------------------------------------------------------------------------------------------
# load_state_dict: all or nothing


def test_load_state_dict_with_an_unconvertible_value_changes_nothing():
    model = mlp()
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}  # every value new ...
    # ... and the last one of the right shape but unconvertible (the loader used to write the
    # keys before it, then fail on this one with NumPy's message, which does not name the key)
    state["3.bias"] = np.array(["ten"] * 10)
    with raises(ValueError, "load_state_dict", "3.bias", "<U3", "float64", "nothing was loaded"):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])  # no key was written


@pytest.mark.parametrize(
    "value, fragments",
    [
        ([None] * 8, ["object", "list"]),
        ("eight", ["<U5", "str"]),
        ([[1.0, 2.0], [3.0]], ["cannot be converted"]),
        (np.full(8, 1 + 2j), ["complex128"]),
    ],
    ids=["nones", "string", "ragged", "complex"],
)
def test_load_state_dict_names_the_key_and_the_reason(value, fragments):
    model = mlp()
    state = model.state_dict()
    state["1.bias"] = value
    with raises(ValueError, "load_state_dict", "1.bias", *fragments):
        model.load_state_dict(state)


def test_load_state_dict_integer_buffers_overflow_and_read_only():
    rng = np.random.default_rng(0)
    model = lfp.Sequential(lfp.Dense(3, 4, rng=rng), lfp.BatchNorm1d(4))
    state = model.state_dict()
    with raises(ValueError, "1.num_batches_tracked", "non-integer", "int64"):
        model.load_state_dict({**state, "1.num_batches_tracked": np.array(2.5)})
    model.load_state_dict({**state, "1.num_batches_tracked": np.array(3.0)})  # integral: fine
    assert int(model[1].num_batches_tracked) == 3
    small = lfp.Sequential(lfp.Dense(3, 4, rng=rng, dtype=F32))
    with raises(ValueError, "0.weight", "overflow float32", "1e+300"):
        small.load_state_dict({**small.state_dict(), "0.weight": np.full((4, 3), 1e300)})
    small[0].weight = read_only(small[0].weight)
    with raises(ValueError, "0.weight", "read-only"):
        small.load_state_dict(small.state_dict())


def test_load_state_dict_lists_every_bad_key_at_once():
    model = mlp()
    state = model.state_dict()
    state["1.weight"] = np.zeros((2, 2))
    state["3.weight"] = "x"
    del state["3.bias"]
    with raises(ValueError, "missing keys ['3.bias']", "1.weight: expected (8, 12)", "3.weight"):
        model.load_state_dict(state)


# --------------------------------------------------------------------------------------------
# data files


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    monkeypatch.delenv("LFP_REF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data_fetch, "SYSTEM_DIRS", {})


def test_corrupt_idx_file_says_to_delete_and_download_it_again(tmp_path, no_system_data):
    folder = tmp_path / "m"
    write_idx_set(folder)  # not the standard MNIST bytes: the checksum fails
    path = folder / "train-images-idx3-ubyte.gz"
    with pytest.raises(ValueError) as info:
        load("mnist", root=folder)
    first_line = str(info.value).splitlines()[0]  # what the command line shows
    for fragment in (str(path), "sha256", f"delete {path}", "--download", "download=True"):
        assert fragment in first_line, (fragment, first_line)


@pytest.mark.parametrize("damage", ["truncated", "bad-gzip"])
def test_damaged_idx_file_names_it_and_says_what_to_do(tmp_path, no_system_data, damage):
    folder = tmp_path / "m"
    write_idx_set(folder)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1]) if damage == "truncated" else path.read_bytes()[:-12])
    with raises(ValueError, str(path), f"delete {path}", "--download"):
        load("mnist", root=folder, verify=False)


def test_missing_idx_file_is_named(tmp_path, no_system_data):
    folder = tmp_path / "m"
    write_idx_set(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist", root=folder, verify=False)
    first_line = str(info.value).splitlines()[0]
    assert str(folder) in first_line and "t10k-labels-idx1-ubyte" in first_line, first_line
    assert "train-images" not in first_line  # only what is missing


@pytest.mark.parametrize(
    "meta, fragment",
    [
        ({b"label_names": 10}, "int"),
        ({b"label_names": list(range(10))}, "entries of type int"),
        ({b"label_names": [b"a"] * 9}, "9 entries"),
        ({b"num_vis": 3072}, "no label_names"),
        ([b"airplane"] * 10, "got a list"),
    ],
    ids=["int", "ints", "nine", "no-names", "list"],
)
def test_cifar_meta_with_wrong_types_names_the_file(tmp_path, no_system_data, meta, fragment):
    folder = tmp_path / data.CIFAR10_FOLDER
    write_cifar(folder, meta=False)
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    with raises(ValueError, str(folder / "batches.meta"), "label_names", fragment):
        load("cifar10", root=folder)


def test_missing_cifar_batch_is_named(tmp_path, no_system_data):
    folder = tmp_path / "c" / data.CIFAR10_FOLDER
    write_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load("cifar10", root=folder.parent)
    first_line = str(info.value).splitlines()[0]
    assert f"{data.CIFAR10_FOLDER}/data_batch_3" in first_line, first_line


def test_idx_helpers_still_round_trip():
    # the fixtures this file borrows from tests/test_data.py are what they claim to be
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(array)), array)
