"""lfp_ref.optim against float64 oracles written out from torch.optim's documented algorithms.

torch is not a dependency, so each oracle below is a literal transcription of the algorithm box
in torch's documentation (SGD, Adam, AdamW), of ``clip_grad_norm_`` and of the phase table and
annealing expressions in ``torch/optim/lr_scheduler.py`` (StepLR, OneCycleLR). The oracles use
the textbook expressions (``beta1 * m + (1 - beta1) * g``, ``sqrt(v / bc2)``), not the
implementation's torch-ordered ones (``lerp``, ``sqrt(v) / sqrt(bc2)``), so agreement to
rtol 1e-12 checks the algorithm rather than re-running the same code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfp_ref.kernels import CPU
from lfp_ref.kernels.cpu import elementwise
from lfp_ref.optim import (
    SGD,
    Adam,
    AdamW,
    OneCycleLR,
    Optimizer,
    StepLR,
    clip_grad_norm,
)

# float64 implementation vs float64 oracle, over a handful of steps
RTOL = 1e-12
# float32 parameters vs the float64 oracle started from the same (float32) values
RTOL32, ATOL32 = 2e-5, 2e-6

N_STEPS = 7
SKIP_STEP, SKIP_NAME = 2, "0.bias"  # one step without this gradient (torch: p.grad is None)


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


class TinyModel:
    """A fake model: three parameters with torch-style names, held as attributes."""

    def __init__(self, rng, dtype=np.float64):
        self.w0 = rng.standard_normal((4, 3)).astype(dtype)
        self.b0 = rng.standard_normal(4).astype(dtype)
        self.w2 = rng.standard_normal((2, 4)).astype(dtype)

    def named_parameters(self):
        yield "0.weight", self.w0
        yield "0.bias", self.b0
        yield "2.weight", self.w2

    def snapshot(self):
        return {name: p.copy() for name, p in self.named_parameters()}


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"seed={s}")
def rng(request):
    return np.random.default_rng(request.param)


def make_grads(rng, model, steps=N_STEPS, skip=True):
    """Gradients whose overall scale changes from step to step (so AMSGrad's max matters)."""
    sequence = []
    for t in range(steps):
        scale = rng.uniform(0.05, 3.0)
        grads = {
            name: (scale * rng.standard_normal(p.shape)).astype(p.dtype)
            for name, p in model.named_parameters()
        }
        if skip and t == SKIP_STEP:
            del grads[SKIP_NAME]
        sequence.append(grads)
    return sequence


def run(opt, model, grads_sequence, scheduler=None):
    """Step the optimizer (and scheduler) through the gradients; parameters after each step."""
    trajectory = []
    for grads in grads_sequence:
        opt.step(grads)
        if scheduler is not None:
            scheduler.step()
        trajectory.append(model.snapshot())
    return trajectory


def assert_trajectory_close(actual, expected, rtol=RTOL, atol=0.0):
    assert len(actual) == len(expected)
    for t, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_allclose(
                got[name], want[name], rtol=rtol, atol=atol, err_msg=f"step {t}, {name}"
            )


def assert_moved(trajectory, initial):
    """Guard against a vacuous pass: every parameter must have changed."""
    for name, p0 in initial.items():
        assert not np.allclose(trajectory[-1][name], p0), name


def as_float64(params):
    return {name: np.array(p, dtype=np.float64) for name, p in params.items()}


# --------------------------------------------------------------------------------------------
# oracles: literal transcriptions of torch's documented algorithms, float64
# --------------------------------------------------------------------------------------------


def sgd_oracle(params, grads_sequence, lr, momentum, dampening, nesterov, weight_decay, hyper=None):
    """torch.optim.SGD, documentation algorithm. ``hyper[t] = (lr, momentum)`` overrides."""
    theta = as_float64(params)
    buffers = {}
    trajectory = []
    for t, grads in enumerate(grads_sequence):
        lr_t, mu = hyper[t] if hyper is not None else (lr, momentum)
        for name, grad in grads.items():
            g = np.array(grad, dtype=np.float64)
            if weight_decay != 0:
                g = g + weight_decay * theta[name]
            if mu != 0:
                if name in buffers:  # t > 1 for this parameter
                    buffers[name] = mu * buffers[name] + (1 - dampening) * g
                else:
                    buffers[name] = g
                g = g + mu * buffers[name] if nesterov else buffers[name]
            theta[name] = theta[name] - lr_t * g
        trajectory.append({name: p.copy() for name, p in theta.items()})
    return trajectory


def adam_oracle(
    params, grads_sequence, lr, betas, eps, weight_decay, amsgrad, decoupled, hyper=None
):
    """torch.optim.Adam / AdamW, documentation algorithm. ``hyper[t] = (lr, beta1)`` overrides.

    AMSGrad keeps the running max of the raw second moment v and bias-corrects it afterwards,
    which is what torch's code does.
    """
    theta = as_float64(params)
    m, v, v_max, steps = {}, {}, {}, {}
    trajectory = []
    for t, grads in enumerate(grads_sequence):
        lr_t, beta1 = hyper[t] if hyper is not None else (lr, betas[0])
        beta2 = betas[1]
        for name, grad in grads.items():
            g = np.array(grad, dtype=np.float64)
            steps[name] = k = steps.get(name, 0) + 1
            m.setdefault(name, np.zeros_like(g))
            v.setdefault(name, np.zeros_like(g))
            v_max.setdefault(name, np.zeros_like(g))
            if weight_decay != 0:
                if decoupled:
                    theta[name] = theta[name] - lr_t * weight_decay * theta[name]
                else:
                    g = g + weight_decay * theta[name]
            m[name] = beta1 * m[name] + (1 - beta1) * g
            v[name] = beta2 * v[name] + (1 - beta2) * g * g
            m_hat = m[name] / (1 - beta1**k)
            if amsgrad:
                v_max[name] = np.maximum(v_max[name], v[name])
                v_hat = v_max[name] / (1 - beta2**k)
            else:
                v_hat = v[name] / (1 - beta2**k)
            theta[name] = theta[name] - lr_t * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append({name: p.copy() for name, p in theta.items()})
    return trajectory


def one_cycle_oracle(
    total_steps,
    max_lr,
    pct_start=0.3,
    anneal_strategy="cos",
    three_phase=False,
    base_momentum=0.85,
    max_momentum=0.95,
    div_factor=25.0,
    final_div_factor=1e4,
):
    """(lr, momentum) at scheduler steps 0..total_steps, torch's lr_scheduler.OneCycleLR.

    Phase table and annealing expressions as in torch/optim/lr_scheduler.py.
    """
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    up_end = float(pct_start * total_steps) - 1
    down_end = float(2 * pct_start * total_steps) - 2  # three_phase only
    if three_phase:
        phases = [
            (up_end, initial_lr, max_lr, max_momentum, base_momentum),
            (down_end, max_lr, initial_lr, base_momentum, max_momentum),
            (total_steps - 1, initial_lr, min_lr, max_momentum, max_momentum),
        ]
    else:
        phases = [
            (up_end, initial_lr, max_lr, max_momentum, base_momentum),
            (total_steps - 1, max_lr, min_lr, base_momentum, max_momentum),
        ]

    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    values = []
    for step in range(total_steps + 1):
        start_step = 0.0
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                values.append((anneal(lr0, lr1, pct), anneal(m0, m1, pct)))
                break
            start_step = end_step
    return values


# --------------------------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------------------------

SGD_CONFIGS = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "momentum-dampening": dict(lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "weight-decay": dict(lr=0.1, weight_decay=0.01),
    "momentum-dampening-wd": dict(lr=0.03, momentum=0.8, dampening=0.5, weight_decay=5e-3),
    "nesterov-wd": dict(lr=0.03, momentum=0.95, nesterov=True, weight_decay=1e-2),
}


def sgd_defaults(config):
    return dict(dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0), **config)


@pytest.mark.parametrize("config", SGD_CONFIGS.values(), ids=SGD_CONFIGS.keys())
def test_sgd_matches_oracle(rng, config):
    model = TinyModel(rng)
    initial = model.snapshot()
    grads = make_grads(rng, model)
    trajectory = run(SGD(model, **config), model, grads)
    expected = sgd_oracle(initial, grads, **sgd_defaults(config))
    assert_trajectory_close(trajectory, expected)
    assert_moved(trajectory, initial)


@pytest.mark.parametrize("config", SGD_CONFIGS.values(), ids=SGD_CONFIGS.keys())
def test_sgd_float32(rng, config):
    model = TinyModel(rng, dtype=np.float32)
    initial = model.snapshot()
    grads = make_grads(rng, model)
    opt = SGD(model, **config)
    trajectory = run(opt, model, grads)
    expected = sgd_oracle(initial, grads, **sgd_defaults(config))
    assert_trajectory_close(trajectory, expected, rtol=RTOL32, atol=ATOL32)
    assert all(p.dtype == np.float32 for _, p in model.named_parameters())
    for state in opt.state.values():
        assert all(v.dtype == np.float32 for v in state.values())


def numpy_sgd_update(param, grad, state, lr, momentum, dampening, nesterov, weight_decay):
    """torch's SGD in NumPy's array arithmetic, one operation at a time (the unfused update
    that the fused kernel must reproduce bit for bit)."""
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if "buf" not in state:
            state["buf"] = grad.copy()
        else:
            state["buf"] *= momentum
            state["buf"] += (1 - dampening) * grad
        grad = grad + momentum * state["buf"] if nesterov else state["buf"]
    param += (-lr) * grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("config", SGD_CONFIGS.values(), ids=SGD_CONFIGS.keys())
def test_sgd_fused_update_is_bitwise_the_numpy_update(rng, config, dtype):
    # the fused one-pass kernel rounds every operation as NumPy does (weak scalars cast to the
    # parameter's dtype, no fused multiply-add), so the trajectories are identical
    model = TinyModel(rng, dtype=dtype)
    initial = model.snapshot()
    reference = model.snapshot()
    states = {name: {} for name in reference}
    opt = SGD(model, **config)
    settings = sgd_defaults(config)
    for grads in make_grads(rng, model, skip=False):
        grads = {name: g.astype(dtype) for name, g in grads.items()}
        opt.step(grads)
        for name, g in grads.items():
            numpy_sgd_update(reference[name], g, states[name], **settings)
        for name, p in model.named_parameters():
            np.testing.assert_array_equal(p, reference[name], err_msg=name)
    assert_moved([model.snapshot()], initial)


def test_sgd_non_contiguous_gradients_take_the_numpy_path(rng):
    # a transposed view cannot be flattened in place: the unfused update handles it, same result
    model = TinyModel(rng)
    twin = TinyModel(rng)
    for (_, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        q[...] = p
    opt, opt_twin = SGD(model, lr=0.1, momentum=0.9), SGD(twin, lr=0.1, momentum=0.9)
    for _ in range(3):
        g = rng.standard_normal((3, 4)).T  # (4, 3), F-ordered
        opt.step({"0.weight": g})
        opt_twin.step({"0.weight": np.ascontiguousarray(g)})
    np.testing.assert_array_equal(model.w0, twin.w0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_sgd_rejects_non_finite_gradients_of_either_dtype(rng, dtype, bad):
    model = TinyModel(rng, dtype=dtype)
    before = model.snapshot()
    grads = {name: np.ones_like(p) for name, p in model.named_parameters()}
    grads["2.weight"][1, 3] = bad
    with pytest.raises(ValueError, match=r"'2.weight' has 1 non-finite entries"):
        SGD(model, lr=0.1).step(grads)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p, before[name])


# --------------------------------------------------------------------------------------------
# Adam / AdamW
# --------------------------------------------------------------------------------------------

ADAM_CONFIGS = {
    "defaults": dict(lr=1e-2),
    # a short beta2 memory lets v shrink between steps, so AMSGrad's running max matters
    "amsgrad": dict(lr=1e-2, betas=(0.9, 0.7), amsgrad=True),
    "weight-decay": dict(lr=1e-2, weight_decay=0.1),
    "weight-decay-amsgrad": dict(lr=1e-2, betas=(0.85, 0.6), weight_decay=0.1, amsgrad=True),
    # 1 - beta1 >= 0.5 takes the other branch of torch's lerp
    "low-beta1-eps": dict(lr=3e-2, betas=(0.3, 0.9), eps=1e-3),
}


def adam_defaults(config, cls):
    defaults = dict(
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2 if cls is AdamW else 0.0,
        amsgrad=False,
    )
    return dict(defaults, **config, decoupled=cls is AdamW)


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("config", ADAM_CONFIGS.values(), ids=ADAM_CONFIGS.keys())
def test_adam_matches_oracle(rng, cls, config):
    model = TinyModel(rng)
    initial = model.snapshot()
    grads = make_grads(rng, model)
    opt = cls(model, **config)
    trajectory = run(opt, model, grads)
    expected = adam_oracle(initial, grads, **adam_defaults(config, cls))
    assert_trajectory_close(trajectory, expected)
    assert_moved(trajectory, initial)
    assert opt.state[SKIP_NAME]["step"] == N_STEPS - 1
    assert opt.state["0.weight"]["step"] == N_STEPS


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
def test_amsgrad_max_is_exercised(rng, cls):
    """Gradient scales vary and beta2 is short, so the running max departs from v."""
    model = TinyModel(rng)
    initial = model.snapshot()
    grads = make_grads(rng, model)
    opt = cls(model, lr=1e-2, betas=(0.9, 0.7), amsgrad=True)
    with_max = run(opt, model, grads)
    assert any(
        np.any(state["max_exp_avg_sq"] > state["exp_avg_sq"]) for state in opt.state.values()
    )
    config = dict(lr=1e-2, betas=(0.9, 0.7))
    without_max = adam_oracle(initial, grads, **adam_defaults(config, cls))
    assert not np.allclose(with_max[-1]["0.weight"], without_max[-1]["0.weight"], rtol=1e-9)


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("amsgrad", [False, True], ids=["plain", "amsgrad"])
def test_adam_float32(rng, cls, amsgrad):
    model = TinyModel(rng, dtype=np.float32)
    initial = model.snapshot()
    grads = make_grads(rng, model)
    config = dict(lr=1e-2, betas=(0.9, 0.7), weight_decay=0.05, amsgrad=amsgrad)
    opt = cls(model, **config)
    trajectory = run(opt, model, grads)
    expected = adam_oracle(initial, grads, **adam_defaults(config, cls))
    assert_trajectory_close(trajectory, expected, rtol=RTOL32, atol=ATOL32)
    assert all(p.dtype == np.float32 for _, p in model.named_parameters())
    for state in opt.state.values():
        arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
        assert len(arrays) == (3 if amsgrad else 2)
        assert all(a.dtype == np.float32 for a in arrays)


def test_adamw_defaults_match_torch():
    params = {"w": np.zeros(3)}
    adam, adamw = Adam(params), AdamW(params)
    assert (adam.lr, adam.betas, adam.eps, adam.weight_decay, adam.amsgrad) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0.0,
        False,
    )
    assert adamw.weight_decay == 1e-2


# --------------------------------------------------------------------------------------------
# the optimizer interface
# --------------------------------------------------------------------------------------------


def test_updates_live_arrays_in_place(rng):
    model = TinyModel(rng)
    arrays = dict(model.named_parameters())
    opt = Adam(model, lr=0.1)
    opt.step(make_grads(rng, model, steps=1)[0])
    for name, p in model.named_parameters():
        assert p is arrays[name]
        assert opt.parameters[name] is p


def test_step_leaves_grads_untouched(rng):
    model = TinyModel(rng)
    grads = make_grads(rng, model, steps=3, skip=False)
    copies = [{n: g.copy() for n, g in step.items()} for step in grads]
    for opt in (SGD(model, momentum=0.9, weight_decay=0.1), AdamW(model, lr=0.1)):
        run(opt, model, grads)
    for step, copy in zip(grads, copies, strict=True):
        for name in copy:
            np.testing.assert_array_equal(step[name], copy[name])


@pytest.mark.parametrize("form", ["model", "dict", "pairs"])
def test_accepts_model_dict_or_pairs(rng, form):
    reference_model = TinyModel(rng)
    model = TinyModel(np.random.default_rng(0))
    for (_, p), (_, q) in zip(
        model.named_parameters(), reference_model.named_parameters(), strict=True
    ):
        p[...] = q
    grads = make_grads(rng, model)
    params = {
        "model": model,
        "dict": dict(model.named_parameters()),
        "pairs": list(model.named_parameters()),
    }[form]
    got = run(SGD(params, lr=0.1, momentum=0.9), model, grads)
    want = run(SGD(reference_model, lr=0.1, momentum=0.9), reference_model, grads)
    assert_trajectory_close(got, want, rtol=0.0)


def test_momentum_switched_on_later_creates_buffer(rng):
    """torch creates the buffer at the first step with momentum != 0 (e.g. set by a scheduler)."""
    model = TinyModel(rng)
    initial = model.snapshot()
    grads = make_grads(rng, model, skip=False)
    opt = SGD(model, lr=0.1)
    hyper = [(0.1, 0.0)] * 3 + [(0.1, 0.9)] * (N_STEPS - 3)
    trajectory = []
    for t, g in enumerate(grads):
        opt.lr, opt.momentum = hyper[t]
        opt.step(g)
        trajectory.append(model.snapshot())
    expected = sgd_oracle(initial, grads, 0.1, 0.0, 0.0, False, 0.0, hyper=hyper)
    assert_trajectory_close(trajectory, expected)


# --------------------------------------------------------------------------------------------
# clip_grad_norm
# --------------------------------------------------------------------------------------------


def total_norm_oracle(grads):
    return math.sqrt(math.fsum(float(x) ** 2 for g in grads.values() for x in g.ravel()))


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 3.0, 1e6], ids=lambda m: f"max_norm={m:g}")
def test_clip_grad_norm_matches_oracle(rng, max_norm):
    model = TinyModel(rng)
    grads = make_grads(rng, model, steps=1, skip=False)[0]
    before = {n: g.copy() for n, g in grads.items()}
    norm = total_norm_oracle(before)
    returned = clip_grad_norm(grads, max_norm)
    np.testing.assert_allclose(returned, norm, rtol=RTOL)
    factor = min(1.0, max_norm / (norm + 1e-6))
    for name in grads:
        np.testing.assert_allclose(grads[name], before[name] * factor, rtol=RTOL)
    if factor < 1:
        np.testing.assert_allclose(total_norm_oracle(grads), max_norm, rtol=1e-5)
    else:  # no clipping: bitwise unchanged
        for name in grads:
            np.testing.assert_array_equal(grads[name], before[name])


def test_clip_grad_norm_float32_in_place(rng):
    grads = {"a": rng.standard_normal((5, 5)).astype(np.float32), "b": np.ones(3, np.float32)}
    arrays = dict(grads)
    before = {n: g.astype(np.float64) for n, g in grads.items()}
    norm = clip_grad_norm(grads, 1.0)
    np.testing.assert_allclose(norm, total_norm_oracle(before), rtol=RTOL)
    for name, g in grads.items():
        assert g is arrays[name] and g.dtype == np.float32
        np.testing.assert_allclose(g, before[name] / (norm + 1e-6), rtol=1e-6)


def test_clip_grad_norm_accepts_a_list():
    grads = [np.full(4, 3.0), np.full(9, 4.0 / 3.0)]  # norm sqrt(36 + 16) = sqrt(52)
    assert clip_grad_norm(grads, 1.0) == pytest.approx(math.sqrt(52.0), rel=1e-15)
    assert total_norm_oracle(dict(enumerate(grads))) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_clip_grad_norm_rejects_non_finite(bad):
    grads = {"0.weight": np.ones(3), "2.weight": np.array([1.0, bad])}
    with pytest.raises(ValueError, match=r"non-finite in \['2.weight'\]"):
        clip_grad_norm(grads, 1.0)
    np.testing.assert_array_equal(grads["0.weight"], np.ones(3))


@pytest.mark.parametrize("max_norm", [0.0, -1.0, np.inf], ids=["zero", "negative", "inf"])
def test_clip_grad_norm_rejects_bad_max_norm(max_norm):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm({"w": np.ones(2)}, max_norm)


# --------------------------------------------------------------------------------------------
# StepLR
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step_size, gamma", [(1, 0.5), (3, 0.1), (4, 0.7)], ids=["every-step", "3x0.1", "4x0.7"]
)
def test_step_lr_trajectory(step_size, gamma):
    opt = SGD({"w": np.zeros(2)}, lr=0.2)
    scheduler = StepLR(opt, step_size=step_size, gamma=gamma)
    lrs = [opt.lr]
    for _ in range(20):
        scheduler.step()
        lrs.append(opt.lr)
        assert scheduler.get_last_lr() == [opt.lr]
    # documented closed form: lr = base_lr * gamma ** (epoch // step_size)
    expected = [0.2 * gamma ** (epoch // step_size) for epoch in range(21)]
    np.testing.assert_allclose(lrs, expected, rtol=RTOL)
    assert scheduler.last_epoch == 20


def test_step_lr_drives_sgd(rng):
    model = TinyModel(rng)
    initial = model.snapshot()
    grads = make_grads(rng, model)
    opt = SGD(model, lr=0.1, momentum=0.9)
    trajectory = run(opt, model, grads, StepLR(opt, step_size=2, gamma=0.5))
    hyper = [(0.1 * 0.5 ** (t // 2), 0.9) for t in range(N_STEPS)]
    expected = sgd_oracle(initial, grads, 0.1, 0.9, 0.0, False, 0.0, hyper=hyper)
    assert_trajectory_close(trajectory, expected)


def test_step_lr_is_chainable():
    """torch's StepLR multiplies the optimizer's current lr, so outside changes persist."""
    opt = SGD({"w": np.zeros(2)}, lr=1.0)
    scheduler = StepLR(opt, step_size=2, gamma=0.5)
    scheduler.step()
    opt.lr = 10.0
    scheduler.step()
    assert opt.lr == 5.0


# --------------------------------------------------------------------------------------------
# OneCycleLR
# --------------------------------------------------------------------------------------------

ONE_CYCLE_CONFIGS = {
    "defaults-100": dict(total_steps=100, max_lr=0.1),
    "epochs-7x9": dict(epochs=7, steps_per_epoch=9, max_lr=0.05),
    "linear-37": dict(total_steps=37, max_lr=0.1, anneal_strategy="linear", pct_start=0.25),
    "three-phase-50": dict(total_steps=50, max_lr=0.2, three_phase=True),
    "three-phase-linear-31": dict(
        total_steps=31, max_lr=0.1, three_phase=True, anneal_strategy="linear", pct_start=0.4
    ),
    "custom-momentum-divs": dict(
        total_steps=40,
        max_lr=1.0,
        base_momentum=0.8,
        max_momentum=0.99,
        div_factor=10.0,
        final_div_factor=100.0,
    ),
    "short-3": dict(total_steps=3, max_lr=0.1),  # first phase ends before step 0
}


def oracle_args(config):
    args = dict(config)
    if "epochs" in args:
        args["total_steps"] = args.pop("epochs") * args.pop("steps_per_epoch")
    return args


@pytest.mark.parametrize("config", ONE_CYCLE_CONFIGS.values(), ids=ONE_CYCLE_CONFIGS.keys())
@pytest.mark.parametrize("cls", [SGD, Adam], ids=["SGD-momentum", "Adam-beta1"])
def test_one_cycle_whole_cycle(cls, config):
    opt = cls({"w": np.zeros(2)}, lr=123.0)
    scheduler = OneCycleLR(opt, **config)
    expected = one_cycle_oracle(**oracle_args(config))

    def momentum():
        return opt.betas[0] if cls is Adam else opt.momentum

    got = [(opt.lr, momentum())]
    for _ in range(len(expected) - 1):
        scheduler.step()
        got.append((opt.lr, momentum()))
        assert scheduler.get_last_lr() == [opt.lr]
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    if cls is Adam:
        assert opt.betas[1] == 0.999  # beta2 is not cycled


def test_one_cycle_landmarks():
    """Independent of the oracle: start, peak, end and shape of the default two-phase cycle."""
    opt = SGD({"w": np.zeros(2)}, lr=123.0, momentum=0.5)
    total, max_lr = 100, 0.1
    scheduler = OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    lrs, moms = [opt.lr], [opt.momentum]
    for _ in range(total):
        scheduler.step()
        lrs.append(opt.lr)
        moms.append(opt.momentum)
    peak = 29  # float(0.3 * 100) - 1: the last step of the warm-up
    assert lrs[0] == pytest.approx(max_lr / 25.0, rel=1e-15)
    assert moms[0] == pytest.approx(0.95, rel=1e-15)  # configured momentum 0.5 is overridden
    assert lrs[peak] == max_lr and moms[peak] == 0.85
    assert lrs[total - 1] == max_lr / 25.0 / 1e4 and moms[total - 1] == 0.95
    assert np.all(np.diff(lrs[: peak + 1]) > 0) and np.all(np.diff(lrs[peak:total]) < 0)
    assert np.all(np.diff(moms[: peak + 1]) < 0) and np.all(np.diff(moms[peak:total]) > 0)
    # the total_steps-th step extrapolates the last phase just past its end (pct > 1)
    assert lrs[total] > lrs[total - 1]


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW], ids=["SGD", "Adam", "AdamW"])
def test_one_cycle_drives_optimizer(rng, cls):
    """A whole cycle of optimizer steps, lr and momentum/beta1 from the oracle schedule."""
    total = 12
    model = TinyModel(rng)
    initial = model.snapshot()
    grads = make_grads(rng, model, steps=total)
    if cls is SGD:
        opt = SGD(model, lr=1.0, momentum=0.9, nesterov=True, weight_decay=1e-3)
    else:
        opt = cls(model, lr=1.0, amsgrad=True)
    scheduler = OneCycleLR(opt, max_lr=0.05, total_steps=total)
    trajectory = run(opt, model, grads, scheduler)
    hyper = one_cycle_oracle(total, 0.05)[:total]
    if cls is SGD:
        expected = sgd_oracle(initial, grads, None, None, 0.0, True, 1e-3, hyper=hyper)
    else:
        config = adam_defaults(dict(amsgrad=True), cls)
        expected = adam_oracle(initial, grads, **config, hyper=hyper)
    assert_trajectory_close(trajectory, expected)
    assert_moved(trajectory, initial)


def test_one_cycle_raises_past_total_steps():
    opt = SGD({"w": np.zeros(2)}, lr=0.1, momentum=0.9)
    scheduler = OneCycleLR(opt, max_lr=0.1, total_steps=10)
    for _ in range(10):
        scheduler.step()
    lr, momentum = opt.lr, opt.momentum
    with pytest.raises(ValueError, match="Tried to step 11 times.*total steps is 10"):
        scheduler.step()
    assert (scheduler.last_epoch, opt.lr, opt.momentum) == (10, lr, momentum)


def test_one_cycle_without_momentum_cycling_leaves_momentum():
    opt = Adam({"w": np.zeros(2)}, betas=(0.5, 0.6))
    scheduler = OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)
    scheduler.step()
    assert opt.betas == (0.5, 0.6)


def test_one_cycle_empty_phase_raises_like_torch():
    # pct_start * total_steps == 1: the warm-up phase is [0, 0], torch divides by zero
    with pytest.raises(ZeroDivisionError, match="phase 1 of 2 is empty"):
        OneCycleLR(SGD({"w": np.zeros(2)}), max_lr=0.1, total_steps=10, pct_start=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "total_steps OR"),
        (dict(epochs=3), "total_steps OR"),
        (dict(total_steps=0), "positive integer total_steps"),
        (dict(total_steps=2.5), "positive integer total_steps"),
        (dict(epochs=0, steps_per_epoch=3), "positive integer epochs"),
        (dict(total_steps=10, pct_start=1.5), "pct_start"),
        (dict(total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
    ],
    ids=["none", "epochs-only", "zero", "float", "zero-epochs", "pct>1", "bad-anneal"],
)
def test_one_cycle_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneCycleLR(SGD({"w": np.zeros(2)}), max_lr=0.1, **kwargs)


# --------------------------------------------------------------------------------------------
# state_dict round trips
# --------------------------------------------------------------------------------------------

ROUND_TRIPS = {
    "SGD-nesterov-OneCycle": (
        lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda o: OneCycleLR(o, max_lr=0.1, total_steps=12),
    ),
    "SGD-dampening-StepLR": (
        lambda m: SGD(m, lr=0.1, momentum=0.9, dampening=0.2),
        lambda o: StepLR(o, step_size=3, gamma=0.5),
    ),
    "Adam-amsgrad-OneCycle-three-phase": (
        lambda m: Adam(m, lr=1e-2, amsgrad=True, weight_decay=1e-2),
        lambda o: OneCycleLR(o, max_lr=0.02, total_steps=12, three_phase=True),
    ),
    "AdamW-StepLR": (
        lambda m: AdamW(m, lr=1e-2),
        lambda o: StepLR(o, step_size=2, gamma=0.7),
    ),
}


def prefixed(prefix, state):
    return {prefix + key: value for key, value in state.items()}


def unprefixed(prefix, state):
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


@pytest.mark.parametrize("build", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
@pytest.mark.parametrize("via_npz", [False, True], ids=["dict", "npz"])
def test_state_dict_round_trip_is_bitwise(rng, tmp_path, build, via_npz):
    make_opt, make_scheduler = build
    total, cut = 12, 5
    model = TinyModel(rng)
    start = model.snapshot()
    grads = make_grads(rng, model, steps=total)

    opt = make_opt(model)
    uninterrupted = run(opt, model, grads, make_scheduler(opt))

    model_a = TinyModel(np.random.default_rng(99))
    for (_, p), value in zip(model_a.named_parameters(), start.values(), strict=True):
        p[...] = value
    opt_a = make_opt(model_a)
    scheduler_a = make_scheduler(opt_a)
    first = run(opt_a, model_a, grads[:cut], scheduler_a)
    checkpoint = {
        **prefixed("model/", model_a.snapshot()),
        **prefixed("optim/", opt_a.state_dict()),
        **prefixed("sched/", scheduler_a.state_dict()),
    }
    for value in checkpoint.values():
        assert isinstance(value, (bool, int, float, str, np.ndarray))
    if via_npz:
        np.savez(tmp_path / "checkpoint.npz", **checkpoint)
        with np.load(tmp_path / "checkpoint.npz") as archive:
            checkpoint = dict(archive)

    model_b = TinyModel(np.random.default_rng(7))
    for name, p in model_b.named_parameters():
        p[...] = checkpoint["model/" + name]
    opt_b = make_opt(model_b)
    scheduler_b = make_scheduler(opt_b)
    opt_b.load_state_dict(unprefixed("optim/", checkpoint))
    scheduler_b.load_state_dict(unprefixed("sched/", checkpoint))
    second = run(opt_b, model_b, grads[cut:], scheduler_b)

    for t, (got, want) in enumerate(zip(first + second, uninterrupted, strict=True)):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"step {t}, {name}")
    assert scheduler_b.get_last_lr() == [opt.lr]


def test_state_dict_is_a_copy(rng):
    model = TinyModel(rng)
    opt = SGD(model, lr=0.1, momentum=0.9)
    opt.step(make_grads(rng, model, steps=1, skip=False)[0])
    state = opt.state_dict()
    state["state/0.weight/momentum_buffer"][...] = 0.0
    assert np.any(opt.state["0.weight"]["momentum_buffer"] != 0.0)
    opt.load_state_dict(opt.state_dict())
    assert opt.state["0.weight"]["momentum_buffer"] is not state["state/0.weight/momentum_buffer"]


def test_state_dict_layout(rng):
    model = TinyModel(rng)
    opt = Adam(model, lr=0.1, betas=(0.8, 0.9), amsgrad=True)
    opt.step({"0.weight": np.ones((4, 3))})
    state = opt.state_dict()
    assert state["optimizer"] == "Adam"
    assert state["param_group/lr"] == 0.1 and state["param_group/amsgrad"] is True
    np.testing.assert_array_equal(state["param_group/betas"], [0.8, 0.9])
    assert state["state/0.weight/step"] == 1
    assert sorted(k for k in state if k.startswith("state/")) == [
        "state/0.weight/exp_avg",
        "state/0.weight/exp_avg_sq",
        "state/0.weight/max_exp_avg_sq",
        "state/0.weight/step",
    ]


# --------------------------------------------------------------------------------------------
# errors a user can act on
# --------------------------------------------------------------------------------------------


@pytest.fixture
def sgd_and_grads(rng):
    model = TinyModel(rng)
    return model, SGD(model, lr=0.1), make_grads(rng, model, steps=1, skip=False)[0]


def test_unknown_grad_name(sgd_and_grads):
    _, opt, grads = sgd_and_grads
    grads["1.weight"] = np.ones(3)
    with pytest.raises(ValueError, match=r"unknown parameters \['1.weight'\].*0.weight"):
        opt.step(grads)


def test_wrong_grad_shape(sgd_and_grads):
    _, opt, grads = sgd_and_grads
    grads["0.bias"] = np.ones(5)
    with pytest.raises(ValueError, match=r"'0.bias' has shape \(5,\) but the parameter .*\(4,\)"):
        opt.step(grads)


def test_wrong_grad_dtype(sgd_and_grads):
    _, opt, grads = sgd_and_grads
    grads["2.weight"] = grads["2.weight"].astype(np.float32)
    with pytest.raises(ValueError, match=r"'2.weight' has dtype float32.*astype\(np.float64\)"):
        opt.step(grads)


def test_grad_not_an_array(sgd_and_grads):
    _, opt, grads = sgd_and_grads
    grads["0.bias"] = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="'0.bias' is a list"):
        opt.step(grads)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_grad_is_rejected_before_any_update(sgd_and_grads, bad):
    model, opt, grads = sgd_and_grads
    before = model.snapshot()
    grads["2.weight"][1, 2] = bad  # the last parameter: earlier ones must stay untouched
    with pytest.raises(ValueError, match="'2.weight' has 1 non-finite entries"):
        opt.step(grads)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p, before[name])


def test_rebound_parameter_is_detected(sgd_and_grads):
    model, opt, grads = sgd_and_grads
    model.b0 = model.b0.copy()
    with pytest.raises(ValueError, match="'0.bias' is no longer the array"):
        opt.step(grads)


def test_views_of_the_same_memory_are_accepted(rng):
    class ViewModel:
        def __init__(self):
            self.flat = rng.standard_normal(12)

        def named_parameters(self):
            yield "weight", self.flat.reshape(3, 4)  # a fresh view object at each call

    model = ViewModel()
    before = model.flat.copy()
    SGD(model, lr=1.0).step({"weight": np.ones((3, 4))})
    np.testing.assert_array_equal(model.flat, before - 1.0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: SGD(p, lr=-0.1), "Invalid learning rate"),
        (lambda p: SGD(p, momentum=-0.5), "Invalid momentum"),
        (lambda p: SGD(p, nesterov=True), "Nesterov momentum requires a momentum"),
        (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda p: AdamW(p, eps=-1.0), "Invalid epsilon"),
        (lambda p: Adam(p, weight_decay=np.nan), "Invalid weight_decay"),
    ],
    ids=[
        "negative-lr",
        "negative-momentum",
        "nesterov-no-momentum",
        "nesterov-dampening",
        "beta1=1",
        "beta2<0",
        "negative-eps",
        "nan-weight-decay",
    ],
)
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make({"w": np.zeros(2)})


def test_hyperparameters_are_rechecked_at_step():
    opt = SGD({"w": np.zeros(2)}, lr=0.1)
    opt.lr = float("nan")
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.step({"w": np.ones(2)})


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({}, ValueError, "no parameters"),
        ({"w": np.zeros(2, dtype=np.int64)}, ValueError, "'w' has dtype int64"),
        ({"w": [0.0, 1.0]}, TypeError, "'w' is a list"),
        ([("w", np.zeros(2)), ("w", np.zeros(2))], ValueError, "'w' appears twice"),
        (np.zeros(3), TypeError, "named_parameters"),
    ],
    ids=["empty", "int-dtype", "not-array", "duplicate", "bare-array"],
)
def test_invalid_parameters(params, error, match):
    with pytest.raises(error, match=match):
        SGD(params)


def test_read_only_parameter():
    w = np.zeros(2)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="'w' is a read-only array"):
        Adam({"w": w})


def test_load_state_dict_errors(rng):
    model = TinyModel(rng)
    adam = Adam(model, amsgrad=True)
    adam.step({"0.weight": np.ones((4, 3))})
    state = adam.state_dict()
    with pytest.raises(ValueError, match="saved by Adam, cannot load it into SGD"):
        SGD(model).load_state_dict(state)
    with pytest.raises(
        ValueError, match="fc.weight/exp_avg' is for a parameter this Adam does not"
    ):
        Adam(model).load_state_dict({**state, "state/fc.weight/exp_avg": np.ones(2)})
    with pytest.raises(ValueError, match=r"has shape \(2,\) but parameter '0.weight'"):
        Adam(model).load_state_dict({**state, "state/0.weight/exp_avg": np.ones(2)})
    with pytest.raises(ValueError, match="missing 'param_group/eps'"):
        Adam(model).load_state_dict({k: v for k, v in state.items() if k != "param_group/eps"})
    with pytest.raises(ValueError, match=r"incomplete state for parameter '0.weight'.*max_exp"):
        Adam(model).load_state_dict(
            {k: v for k, v in state.items() if not k.endswith("max_exp_avg_sq")}
        )
    with pytest.raises(ValueError, match="unexpected keys"):
        Adam(model).load_state_dict({**state, "epoch": 3})
    fresh = Adam(model)
    with pytest.raises(ValueError):
        fresh.load_state_dict({**state, "state/0.weight/exp_avg": np.ones(2)})
    assert fresh.state == {} and fresh.amsgrad is False  # a failed load changes nothing


def test_scheduler_load_state_dict_errors():
    opt = SGD({"w": np.zeros(2)}, momentum=0.9)
    state = StepLR(opt, step_size=2).state_dict()
    with pytest.raises(ValueError, match="saved by StepLR, cannot load it into OneCycleLR"):
        OneCycleLR(opt, max_lr=0.1, total_steps=10).load_state_dict(state)
    adam_state = OneCycleLR(Adam({"w": np.zeros(2)}), max_lr=0.1, total_steps=10).state_dict()
    with pytest.raises(ValueError, match="cycles beta1, but the optimizer is a SGD"):
        OneCycleLR(opt, max_lr=0.1, total_steps=10).load_state_dict(adam_state)


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        StepLR({"lr": 0.1}, step_size=1)
    assert issubclass(AdamW, Optimizer)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "make",
    [
        lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda m: SGD(m, lr=0.1),
        lambda m: Adam(m, lr=0.01),
        lambda m: AdamW(m, lr=0.01, amsgrad=True),
    ],
    ids=["sgd-momentum", "sgd", "adam", "adamw-amsgrad"],
)
@pytest.mark.parametrize("scale", [-1.0, -0.37, 2.5])
def test_step_scale_is_bitwise_a_step_on_scaled_gradients(rng, make, scale, dtype):
    # step(g, scale=s) folds s into the update's pass; it must equal step(s * g) rounded to the
    # parameter's dtype (what g *= s would leave), on the fused and the NumPy path alike
    model, twin = TinyModel(rng, dtype=dtype), TinyModel(rng, dtype=dtype)
    for (_, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        q[...] = p
    opt, opt_twin = make(model), make(twin)
    for grads in make_grads(rng, model, steps=3, skip=False):
        grads = {name: g.astype(dtype) for name, g in grads.items()}
        copies = {name: g.copy() for name, g in grads.items()}
        opt.step(grads, scale=scale)
        opt_twin.step({name: g * scale for name, g in grads.items()})
        for name in grads:
            np.testing.assert_array_equal(grads[name], copies[name])  # not rewritten
        for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
            np.testing.assert_array_equal(p, q, err_msg=name)


@pytest.mark.parametrize("scale", [np.nan, np.inf, "2", True])
def test_step_rejects_a_bad_scale(rng, scale):
    model = TinyModel(rng)
    before = model.snapshot()
    with pytest.raises(ValueError, match="scale must be a finite float"):
        SGD(model, lr=0.1).step(make_grads(rng, model, steps=1, skip=False)[0], scale=scale)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p, before[name])


def test_clip_coefficient_is_clip_grad_norms_factor(rng):
    from lfp_ref.kernels.cpu.elementwise import sum_of_squares
    from lfp_ref.optim import clip_coefficient

    grads = make_grads(rng, TinyModel(rng), steps=1, skip=False)[0]
    squared = {name: sum_of_squares(g) for name, g in grads.items()}
    before = {name: g.copy() for name, g in grads.items()}
    total = clip_grad_norm(grads, 0.5)
    factor, total_again = clip_coefficient(squared, 0.5)
    assert total_again == total and factor < 1
    for name in grads:
        np.testing.assert_array_equal(grads[name], before[name] * factor)
    assert clip_coefficient(squared, 1e9)[0] == 1.0
    with pytest.raises(ValueError, match="total gradient norm is inf"):
        clip_coefficient({"a": 1.0, "b": np.inf}, 1.0)


# --------------------------------------------------------------------------------------------
# step(squared_norms=...): one finiteness decision per step
# --------------------------------------------------------------------------------------------

STEP_MAKERS = {
    "sgd-momentum": lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd": lambda m: SGD(m, lr=0.1),
    "adam": lambda m: Adam(m, lr=0.01),
    "adamw-amsgrad": lambda m: AdamW(m, lr=0.01, amsgrad=True),
}


def squared_norms_of(grads):
    """What the engine passes: the float64 sum of squares of every gradient."""
    return {name: elementwise.sum_of_squares(g) for name, g in grads.items()}


def twin_models(rng, dtype=np.float64):
    model, twin = TinyModel(rng, dtype=dtype), TinyModel(rng, dtype=dtype)
    for (_, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        q[...] = p
    return model, twin


@pytest.fixture
def finiteness_scans(monkeypatch):
    """Count the optimizer's fused finiteness scans (the backend's ``all_finite``)."""
    calls = []
    scan = elementwise.all_finite

    def counting(values):
        calls.append(values.shape)
        return scan(values)

    monkeypatch.setattr(elementwise, "all_finite", counting)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("make", STEP_MAKERS.values(), ids=STEP_MAKERS.keys())
@pytest.mark.parametrize("scale", [1.0, -0.37])
def test_squared_norms_give_the_same_update_bit_for_bit(rng, make, dtype, scale):
    model, twin = twin_models(rng, dtype)
    initial = model.snapshot()
    opt, opt_twin = make(model), make(twin)
    for grads in make_grads(rng, model):  # one step leaves SKIP_NAME without a gradient
        grads = {name: g.astype(dtype) for name, g in grads.items()}
        opt.step(grads, scale=scale, squared_norms=squared_norms_of(grads))
        opt_twin.step(grads, scale=scale)
        for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
            np.testing.assert_array_equal(p, q, err_msg=name)
    for name, entries in opt.state.items():
        for key, value in entries.items():
            np.testing.assert_array_equal(value, opt_twin.state[name][key], err_msg=key)
    assert_moved([model.snapshot()], initial)


def test_finite_squared_norms_skip_the_scan(rng, finiteness_scans):
    model = TinyModel(rng)
    opt = SGD(model, lr=0.1)
    grads = make_grads(rng, model, steps=1, skip=False)[0]
    opt.step(grads)
    assert len(finiteness_scans) == 3  # the check the norms make redundant does run without them
    finiteness_scans.clear()
    opt.step(grads, squared_norms=squared_norms_of(grads))
    assert finiteness_scans == []
    opt.step(grads, squared_norms={**squared_norms_of(grads), "0.bias": np.inf})
    assert finiteness_scans == [(4,)]  # only the gradient whose norm proves nothing
    finiteness_scans.clear()
    opt.step(grads, squared_norms={"0.weight": 1.0})  # no entry: scanned as before
    assert sorted(finiteness_scans) == [(2, 4), (4,)]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_non_finite_grad_with_a_non_finite_norm_is_rejected_as_before(rng, bad, dtype):
    model = TinyModel(rng, dtype=dtype)
    before = model.snapshot()
    grads = {name: np.ones_like(p) for name, p in model.named_parameters()}
    grads["2.weight"][1, 2] = bad
    squared = squared_norms_of(grads)
    assert not np.isfinite(squared["2.weight"])  # inf or NaN: the norm proves nothing
    with pytest.raises(ValueError, match="'2.weight' has 1 non-finite entries") as without:
        SGD(model, lr=0.1).step(grads)
    with pytest.raises(ValueError) as given:
        SGD(model, lr=0.1).step(grads, squared_norms=squared)
    assert str(given.value) == str(without.value)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p, before[name])


def test_finite_entries_whose_squares_overflow_are_accepted(rng):
    model, twin = twin_models(rng)
    grads = {name: np.full_like(p, 1e200) for name, p in model.named_parameters()}
    squared = squared_norms_of(grads)
    assert squared["0.weight"] == np.inf  # every entry finite, the sum of squares is not
    SGD(model, lr=1e-201).step(grads, squared_norms=squared)
    SGD(twin, lr=1e-201).step(grads)
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p, q, err_msg=name)
        assert np.isfinite(p).all()


def test_a_finite_norm_is_trusted_the_caller_vouches_for_it(rng):
    # the documented contract: a finite sum of squares means "no scan"; a caller that passes a
    # wrong one for a NaN gradient gets NaN parameters, not an error
    model = TinyModel(rng)
    grads = {name: np.ones_like(p) for name, p in model.named_parameters()}
    grads["0.bias"][0] = np.nan
    SGD(model, lr=0.1).step(grads, squared_norms={"0.bias": 4.0})
    assert np.isnan(model.b0[0]) and np.isfinite(model.b0[1:]).all()


@pytest.mark.parametrize(
    "squared_norms, error, match",
    [
        ([("0.weight", 1.0)], TypeError, "squared_norms=.*dict parameter name -> float"),
        ({"1.weight": 1.0}, ValueError, r"unknown parameters \['1.weight'\].*0.weight"),
        ({"0.weight": "1.0"}, ValueError, r"squared_norms\['0.weight'\] must be a real number"),
        ({"0.weight": True}, ValueError, "must be a real number"),
        ({"0.weight": None}, ValueError, "must be a real number"),
        ({"0.weight": np.ones(1)}, ValueError, "must be a real number"),
        ({"0.weight": -1.0}, ValueError, r"is -1.0, but a sum of squares is >= 0"),
        ({"0.weight": -np.inf}, ValueError, "a sum of squares is >= 0"),
    ],
    ids=["not-a-mapping", "unknown", "str", "bool", "none", "array", "negative", "-inf"],
)
def test_bad_squared_norms_are_rejected_before_any_update(rng, squared_norms, error, match):
    model = TinyModel(rng)
    before = model.snapshot()
    grads = make_grads(rng, model, steps=1, skip=False)[0]
    with pytest.raises(error, match=match):
        SGD(model, lr=0.1).step(grads, squared_norms=squared_norms)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p, before[name])


def test_squared_norms_accept_numpy_scalars_and_names_without_grads(rng, finiteness_scans):
    model = TinyModel(rng)
    grads = make_grads(rng, model, steps=1, skip=False)[0]
    del grads["0.bias"]
    squared = {name: np.float64(value) for name, value in squared_norms_of(grads).items()}
    SGD(model, lr=0.1).step(grads, squared_norms={**squared, "0.bias": np.float32(2.0)})
    assert finiteness_scans == []


# --------------------------------------------------------------------------------------------
# the step path goes through the backend dispatch (lfp_ref.kernels), not NumPy by name
# --------------------------------------------------------------------------------------------


def test_step_allocates_and_dispatches_through_the_backend(rng, monkeypatch):
    calls = []

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return function(*args, **kwargs)

        return wrapper

    for name in ("empty_like", "zeros_like", "same_memory"):
        monkeypatch.setattr(CPU, name, counted(name, getattr(CPU, name)))
    monkeypatch.setattr(elementwise, "sgd_update", counted("sgd_update", elementwise.sgd_update))
    model = TinyModel(rng)
    grads = make_grads(rng, model, steps=1, skip=False)[0]
    SGD(model, lr=0.1, momentum=0.9).step(grads)
    assert sorted(calls) == sorted(["same_memory", "empty_like", "sgd_update"] * 3)
    calls.clear()
    AdamW(model, amsgrad=True).step(grads)
    assert sorted(calls) == sorted(["same_memory"] * 3 + ["zeros_like"] * 9)
