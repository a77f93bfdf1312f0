"""lfp_ref.theory: the paper's claims (spec section 5) hold numerically, and each check can fail."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import theory

SEEDS = [0, 1, 2]


def assert_passes(check):
    assert check.passed, (
        f"{check.name}: error {check.error:.3g} > {check.tolerance:g} ({check.detail})"
    )


# --------------------------------------------------------------------------- every claim holds


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bias", [False, True], ids=["bias-free", "bias"])
def test_conservation_per_layer(seed, bias):
    assert_passes(theory.conservation(seed, bias=bias))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("activation", ["relu", "leakyrelu"])
def test_implicit_weight_scaling(seed, activation):
    assert_passes(theory.implicit_weight_scaling(seed, activation))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("activation", list(theory.SECANT_ACTIVATIONS))
def test_secant_slope(seed, activation):
    assert_passes(theory.secant_slope(seed, activation))


@pytest.mark.parametrize("seed", SEEDS)
def test_update_sparsity(seed):
    check = theory.update_sparsity(seed)
    assert_passes(check)
    assert check.error == 0.0  # exactly, not to rounding


@pytest.mark.parametrize("seed", SEEDS)
def test_descent(seed):
    assert_passes(theory.descent_monotone(seed))
    assert_passes(theory.descent_preconditioned(seed))


def test_run_all_and_the_table():
    checks = theory.run_all(0)
    assert len(checks) == 12 and all(c.passed for c in checks)
    name, error, tolerance, passed = checks[0]  # unpacks as (name, error, tolerance, passed)
    assert isinstance(name, str) and error <= tolerance and passed
    table = theory.to_table(checks)
    assert table.splitlines()[-1] == "12 checks, 0 failed: PASS"
    assert all(c.name in table for c in checks)
    assert theory.to_table(checks, "markdown").startswith("| check | measured error |")


# --------------------------------------------------------------------------- each can fail


def test_weight_scaling_and_secant_checks_see_a_finite_eps(monkeypatch):
    """The identities hold only as eps -> 0: with eps = 1e-2 the measured error is far above
    the tolerance, so the checks discriminate."""
    monkeypatch.setattr(theory, "EPS_TO_ZERO", 1e-2)
    for check in (theory.implicit_weight_scaling(0), theory.secant_slope(0, "tanh")):
        assert not check.passed and check.error > 1e-6, check


def test_secant_identity_is_not_the_gradient_identity():
    """For a Tanh net, LFP is not -|theta| dL/dtheta; the true derivative in place of the secant
    would fail the check."""
    rng = np.random.default_rng(0)
    model = lfp.Sequential(lfp.Dense(4, 6, rng=rng), lfp.Tanh(), lfp.Dense(6, 3, rng=rng))
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    fb = lfp.feedback(model, x, y, eps=theory.EPS_TO_ZERO)
    secant = theory.secant_backprop(model, -fb.reward / fb.logits)
    grads = lfp.gradients(model, x, y, reduction="sum")
    w = model[0].weight
    assert np.allclose(fb.params["0.weight"], -np.abs(w) * secant["0.weight"], rtol=1e-10)
    assert not np.allclose(fb.params["0.weight"], -np.abs(w) * grads.params["0.weight"], rtol=1e-3)


@pytest.mark.parametrize("bias", [False, True], ids=["bias-free", "bias"])
def test_conservation_sees_a_leaking_rule(monkeypatch, bias):
    """A rule that hands down 1e-6 more reward than it received fails the check."""
    from lfp_ref import rules

    original = rules.Epsilon.propagate

    def leaking(self, layer, reward, input_reward=True):
        reward_in, params = original(self, layer, reward, input_reward)
        return reward_in * (1 + 1e-6), params

    monkeypatch.setattr(rules.Epsilon, "propagate", leaking)
    check = theory.conservation(0, bias=bias)
    assert not check.passed and check.error > 1e-8


def test_descent_check_sees_an_increase():
    check = theory.descent_monotone(0, steps=10, lr=50.0)
    assert not check.passed and check.error > 0


def test_update_sparsity_is_exact(monkeypatch):
    """A stabiliser that leaks (eps added to rho everywhere) breaks exact zeros."""
    from lfp_ref import rules

    original = rules.Epsilon.propagate

    def leaky(self, layer, reward, input_reward=True):
        reward_in, params = original(self, layer, reward, input_reward)
        return reward_in, {k: v + 1e-30 for k, v in params.items()}

    monkeypatch.setattr(rules.Epsilon, "propagate", leaky)
    check = theory.update_sparsity(0)
    assert not check.passed and check.error > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="relu"):
        theory.implicit_weight_scaling(0, "tanh")
    with pytest.raises(ValueError, match="sigmoid"):
        theory.secant_slope(0, "relu")
    with pytest.raises(TypeError, match="flat Sequential"):
        model = lfp.Sequential(lfp.Dense(2, 2), lfp.MaxPool2d(2))
        theory.secant_backprop(model, np.ones((1, 2)))


# --------------------------------------------------------------------------- the command


def test_verify_command_prints_the_table():
    script = Path(sys.executable).parent / "lfp-ref"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lfp_ref.cli"]
    out = subprocess.run(
        [*command, "verify", "--seed", "1"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["check", "measured", "error"]
    assert lines[-1] == "12 checks, 0 failed: PASS"
    assert sum(" pass " in line for line in lines) == 12
