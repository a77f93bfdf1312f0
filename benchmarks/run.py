"""The benchmark suite: lfp_ref's LFP and GD steps against lfprop and torch, the GEMM roofline,
first-call compile time, a scaling sweep and a profile breakdown.

    python -m benchmarks.run            # the full suite, ~35 minutes on 2 cores
    python -m benchmarks.run --quick    # fewer steps, a short sweep: a smoke test, ~3 minutes
    python -m benchmarks.run --snn-only --repeats 10   # only the spiking networks, ~10 minutes

The spiking configurations (``SNN_MODELS``: snn-mlp batch 128 and snn-cnn batch 64, T = 15,
float32) time lfp_ref's SNN LFP step and surrogate BPTT step beside lfprop's SNN LFP step and
snntorch's BPTT step (``benchmarks/peers.py``: the torch twins of tests/test_snn_crosscheck.py),
with a per-phase and per-layer profile of lfp_ref's two steps (a LIF split into its time-loop
kernel and its wrapped Dense/Conv2d) under ``--snn-only``.

Every configuration runs in its own process (``--worker``), with the thread counts fixed before
numpy, numba and torch load. Inside a process the contenders are interleaved: rounds of
back-to-back steps of each in turn (0.4 s a block), the steps of a block's first 0.15 s dropped
(they pay for the switch: the other runtime's idle threads spin for ~0.1 s), so that drift of
the machine hits all of them alike. Times are medians over at least ``--repeats`` steps after
warm-up. Results: a table on stdout, benchmarks/RESULTS.md
(machine, versions, command, date; a hand-written ``## Notes`` section there is kept) and
benchmarks/scaling.png.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
SCALING_PNG = HERE / "scaling.png"

MODEL_ORDER = ("mlp-1000", "mlp-256", "lenet-5", "lenet-paper", "vgg-small", "resnet-small")
#: SGD as in the paper's experiments: momentum 0.9, global-norm clipping at 3.0
LR, MOMENTUM, CLIP = 1e-3, 0.9, 3.0
#: targets of issue 5 (float32, ratios measured in the same run); the paper LeNet has no lfprop
#: target (its ratio is reported), only the LFP / GD one
LFPROP_TARGET = {"mlp-1000": 0.5, "mlp-256": 0.5, "lenet-5": 0.5, "vgg-small": 0.7}
GD_TARGET = 1.15
ROOFLINE_TARGET = ("mlp-1000", 0.75)
#: targets of the performance issue (17): lfp_ref's LFP step at most PyTorch's own GD step
#: (float32 and float64, ratios within one process) and at most 0.7x lfprop's LFP step, on
#: every model
TORCH_GD_TARGET = 1.0
LFPROP_TARGET_ALL = 0.7
#: the spiking configurations (float32, T time steps): zoo model, one sample's shape, batch
SNN_MODELS = {"snn-mlp": ("snn-mlp", (784,), 128), "snn-cnn": ("snn-cnn", (1, 28, 28), 64)}
SNN_STEPS = 15
#: targets of the spiking-networks issue: lfp_ref's SNN LFP step <= 0.5x lfprop's and <= 1.2x
#: lfp_ref's own surrogate BPTT step
SNN_LFPROP_TARGET = 0.5
SNN_BPTT_TARGET = 1.2
#: every worker process starts with this OpenMP wait policy (the same environment for every
#: contender): with OpenMP's default, torch's idle workers spin and take the cores from Numba's
#: and OpenBLAS's threads for seconds after torch's step (issue 17). lfp_ref sets the same where
#: it imports torch itself (lfp_ref.verify.interop.import_torch). The suite also runs one process
#: per float32 model with OpenMP's default, to show what the setting changes for each contender.
OMP_WAIT_POLICY = "PASSIVE"
#: the spiking steps run once more per model with OpenBLAS's idle workers going to sleep at once
#: (2**4 cycles instead of 2**28, ~0.1 s): a spiking step alternates GEMMs with Numba's parallel
#: time loops, and a worker still spinning after a GEMM takes a core from Numba's threads
#: (measured, snn-cnn LFP step: 146 -> 116 ms, and processes stuck at 210-230 ms no longer
#: occur; the dense and convolutional steps pay 3-9 % for the wake-ups, so it is no default).
#: The variable must be set before NumPy loads; every contender runs in the same environment.
#: A third run leaves OMP_WAIT_POLICY unset (OpenMP's default, None: the variable removed), where
#: torch, and so lfprop, is at its best; the targets are also judged each at its best.
SNN_ENVIRONMENTS = {
    "": {},
    "OPENBLAS_THREAD_TIMEOUT=4": {"OPENBLAS_THREAD_TIMEOUT": "4"},
    "OMP_WAIT_POLICY unset": {"OMP_WAIT_POLICY": None},
}
SWEEP_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SWEEP_WIDTHS = (64, 128, 256, 512, 1000, 2000)


# ------------------------------------------------------------------------------------------
# workers: one configuration each, in a fresh process; print one JSON object
# ------------------------------------------------------------------------------------------


#: Each contender runs in blocks of back-to-back steps lasting at least BLOCK_SECONDS; the steps
#: that start in the first DISCARD_SECONDS of a block are not counted. The previous contender's
#: idle threads are still spinning then (OpenBLAS spins for ~0.1 s after a call; measured:
#: lfprop's MLP-256 step interleaved with lfp_ref's took 7.0 ms without a break, 2.95 ms alone).
#: An earlier version slept 0.25 s before each block instead, but a step right after the machine
#: idled is slow for tens of milliseconds (measured: lfp_ref's MLP-256 step 2.0-2.1 ms in the
#: 3 steps after a 0.25 s sleep, 1.7 ms back to back), which penalised the shorter steps most.
BLOCK_SECONDS = 0.4
DISCARD_SECONDS = 0.15
MIN_ROUNDS = 5


def _interleaved(contenders, repeats, warmup=3):
    """Median and spread of seconds per call of each contender, interleaved in blocks of calls
    (see BLOCK_SECONDS; the first call of a block is never counted), after ``warmup`` calls
    each, until every contender has ``repeats`` counted calls over at least MIN_ROUNDS rounds
    (who goes first rotates from round to round)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    names = list(contenders)
    r = 0
    while r < MIN_ROUNDS or min(len(t) for t in times.values()) < repeats:
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = contenders[name]
            block_start = time.perf_counter()
            calls = 0
            while calls < 2 or time.perf_counter() - block_start < BLOCK_SECONDS:
                start = time.perf_counter()
                fn()
                if calls and (len(contenders) == 1 or start - block_start >= DISCARD_SECONDS):
                    times[name].append(time.perf_counter() - start)
                calls += 1
        r += 1
    return {
        name: {
            "median": float(np.median(t)),
            "q25": float(np.percentile(t, 25)),
            "q75": float(np.percentile(t, 75)),
            "n": len(t),
        }
        for name, t in times.items()
    }


def worker_gemm(config):
    """The machine's GEMM rate through numpy: square products, best and median of repeats."""
    out = {}
    for dtype in ("float32", "float64"):
        n = config["size"]
        rng = np.random.default_rng(0)
        a = rng.random((n, n)).astype(dtype)
        b = rng.random((n, n)).astype(dtype)
        c = np.empty((n, n), dtype)
        np.matmul(a, b, out=c)
        times = []
        for _ in range(config["repeats"]):
            start = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - start)
        flops = 2.0 * n**3
        out[dtype] = {"best": flops / min(times), "median": flops / float(np.median(times))}
    return out


def recorded_gemms(step):
    """A function that replays the GEMMs that one call of ``step`` makes (every ``np.matmul``
    call and every ``gemm`` of :mod:`lfp_ref.kernels.cpu._blas`, the shifted convolution's: all
    GEMMs of lfp_ref's kernels), on the same operands into the same outputs, in order, and their
    count: the BLAS time of the step alone, measured beside the step itself."""
    from lfp_ref.kernels.cpu import _blas

    calls = []
    real = {"matmul": np.matmul, "gemm": _blas.gemm}

    def recorder(name):
        def recording(*args, **kwargs):
            calls.append((real[name], args, kwargs))
            return real[name](*args, **kwargs)

        return recording

    np.matmul, _blas.gemm = recorder("matmul"), recorder("gemm")
    try:
        step()
    finally:
        np.matmul, _blas.gemm = real["matmul"], real["gemm"]

    def replay():
        for function, args, kwargs in calls:
            function(*args, **kwargs)

    return replay, len(calls)


def worker_steps(config):
    """LFP step, GD step and forward of lfp_ref and, with ``peers``, torch's GD step and forward
    and (unless ``lfprop`` is False) lfprop's LFP step, interleaved."""
    from benchmarks import models
    from lfp_ref import engine, optim

    name, dtype = config["model"], np.dtype(config["dtype"])
    x, y = models.batch(name, dtype=dtype)
    lfp_model, gd_model, fwd_model = (models.build(name, dtype) for _ in range(3))
    lfp_opt = optim.SGD(lfp_model, lr=LR, momentum=MOMENTUM)
    gd_opt = optim.SGD(gd_model, lr=LR, momentum=MOMENTUM)
    # the GEMMs of one LFP step, replayed on a model of their own
    gemm_model = models.build(name, dtype)
    gemm_opt = optim.SGD(gemm_model, lr=LR, momentum=MOMENTUM)
    lfp_gemms, n_gemms = recorded_gemms(
        lambda: engine.lfp_step(gemm_model, gemm_opt, x, y, clip_norm=CLIP)
    )
    contenders = {
        "lfp_ref LFP": lambda: engine.lfp_step(lfp_model, lfp_opt, x, y, clip_norm=CLIP),
        "lfp_ref GD": lambda: engine.gd_step(gd_model, gd_opt, x, y, clip_norm=CLIP),
        "lfp_ref forward": lambda: engine.forward(fwd_model, x),
        "lfp_ref LFP GEMMs": lfp_gemms,
    }
    result = {
        "flops": models.gemm_flops(models.build(name, dtype), x),
        "train_flops": models.training_gemm_flops(models.build(name, dtype), x),
        "batch": len(x),
        "gemm_calls": n_gemms,
    }
    if config["peers"]:
        from benchmarks import peers

        ok, why = peers.available()
        result["peers"] = ok
        if ok:
            peers.set_threads(config["threads"])
            tx, ty = peers.as_tensors(x, y)
            from lfp_ref.verify.interop import to_torch

            gd_torch, fwd_torch = (to_torch(models.build(name, dtype)) for _ in range(2))
            if config.get("lfprop", True):
                lfprop_model = to_torch(models.build(name, dtype))
                lfprop_step = peers.lfprop_step(lfprop_model, LR, MOMENTUM, CLIP)
                contenders["lfprop LFP"] = lambda: lfprop_step(tx, ty)
            torch_step = peers.torch_gd_step(gd_torch, LR, MOMENTUM, CLIP)
            torch_forward = peers.torch_forward(fwd_torch)
            contenders["torch GD"] = lambda: torch_step(tx, ty)
            contenders["torch forward"] = lambda: torch_forward(tx)
        else:
            result["peer_error"] = why
    result["times"] = _interleaved(contenders, config["repeats"])
    return result


def snn_build(name, dtype=np.float32, seed=0):
    """The spiking benchmark model ``name`` of SNN_MODELS (the zoo's, T = SNN_STEPS, torch's
    default initialisation from ``seed``)."""
    from lfp_ref import zoo

    model, shape, _ = SNN_MODELS[name]
    return zoo.build(model, num_classes=10, input_shape=shape, seed=seed, dtype=np.dtype(dtype),
                     timesteps=SNN_STEPS)  # fmt: skip


def snn_batch(name, dtype=np.float32, seed=0):
    """A batch of random images in [0, 1] (the model's sample shape) and labels."""
    _, shape, size = SNN_MODELS[name]
    rng = np.random.default_rng(seed)
    return rng.random((size, *shape)).astype(dtype), rng.integers(0, 10, size)


def snn_contenders(name, with_peers, threads):
    """The four SNN training steps of configuration ``name`` from the same weights on the same
    batch: lfp_ref's LFP (rate-coded reward over T) and surrogate BPTT (snn_ce_rate, atan), and,
    with the peers, lfprop's SNN LFP step and snntorch's BPTT step. Returns ``(contenders,
    note)`` (note: why the peers are missing)."""
    from lfp_ref import engine, optim

    x, y = snn_batch(name)
    lfp_model, bptt_model = snn_build(name), snn_build(name)
    lfp_opt = optim.SGD(lfp_model, lr=LR, momentum=MOMENTUM)
    bptt_opt = optim.SGD(bptt_model, lr=LR, momentum=MOMENTUM)
    contenders = {
        "lfp_ref SNN LFP": lambda: engine.lfp_step(
            lfp_model, lfp_opt, x, y, reward="snn_rate_coded_mean", clip_norm=CLIP
        ),
        "lfp_ref SNN BPTT": lambda: engine.gd_step(
            bptt_model, bptt_opt, x, y, loss="snn_ce_rate", clip_norm=CLIP
        ),
    }
    note = ""
    if with_peers:
        from benchmarks import peers

        ok, note = peers.snn_available()
        if ok:
            peers.set_threads(threads)
            tx, ty = peers.as_tensors(x, y)
            lfprop = peers.lfprop_snn_step(
                peers.snn_twin(snn_build(name), "step"), SNN_STEPS, LR, MOMENTUM, CLIP
            )
            bptt = peers.snntorch_bptt_step(
                peers.snn_twin(snn_build(name), "atan"), SNN_STEPS, LR, MOMENTUM, CLIP
            )
            contenders["lfprop SNN LFP"] = lambda: lfprop(tx, ty)
            contenders["snntorch BPTT"] = lambda: bptt(tx, ty)
    return contenders, note


def worker_snn_steps(config):
    """The SNN steps of one configuration (float32), interleaved."""
    contenders, note = snn_contenders(config["model"], config["peers"], config["threads"])
    result = {"batch": SNN_MODELS[config["model"]][2], "timesteps": SNN_STEPS}
    result["peers"] = "lfprop SNN LFP" in contenders
    if note:
        result["peer_error"] = note
    result["times"] = _interleaved(contenders, config["repeats"])
    return result


def _median_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def _snn_layer_phases(layer, first, x_in, r_out, g_out, rule_for, repeats, repeated=False):
    """One layer's forward, LFP feedback and backward (ms) at the inputs of one pass; for a LIF
    also its time-loop kernels and its current's forward and VJP (the GEMMs) alone. ``repeated``:
    the LIF that SpikingSequential runs on the static input (its current on the B rows of one
    step, its VJP on the sum over the steps)."""
    from lfp_ref.kernels import backend_of
    from lfp_ref.snn import LIF

    def forward(module):  # a new pass each time: no stack of saved uses grows
        module.clear_caches()
        if module is layer and repeated:
            return module.forward(x_in, repeated=True)
        if repeated:  # the current alone, on one step's rows
            return module.forward(x_in[: len(x_in) // layer.timesteps])
        return module.forward(x_in)

    row = {
        "forward": _median_ms(lambda: forward(layer), repeats),
        "feedback": _median_ms(lambda: layer.feedback(r_out, rule_for, not first), repeats),
        "backward": _median_ms(lambda: layer.backward(g_out, not first), repeats),
    }
    if not isinstance(layer, LIF):
        return row
    steps = layer.timesteps
    rows = (steps, -1)
    forward(layer)
    membrane = layer.saved()[0]
    current = np.ascontiguousarray(
        np.broadcast_to(forward(layer.current), (steps, len(x_in) // steps, *membrane.shape[1:]))
        if repeated
        else forward(layer.current)
    ).reshape(rows)
    bk = backend_of(membrane)
    mem, spikes, rho = (np.empty_like(membrane).reshape(rows) for _ in range(3))
    reward = np.ascontiguousarray(r_out, membrane.dtype).reshape(rows)
    grad = np.ascontiguousarray(g_out, membrane.dtype).reshape(rows)
    u = membrane.reshape(rows)
    beta, threshold = layer.beta, layer.threshold
    row["forward: current"] = _median_ms(lambda: forward(layer.current), repeats)
    row["forward: LIF kernel"] = _median_ms(
        lambda: bk.lif.lif_forward(current, beta, threshold, layer.reset, mem, spikes), repeats
    )
    row["feedback: LIF kernel"] = _median_ms(
        lambda: bk.lif.lif_feedback(reward, u, beta, threshold, 1e-6, rho), repeats
    )
    row["backward: LIF kernel"] = _median_ms(
        lambda: bk.lif.lif_surrogate_backward(
            grad, u, beta, threshold, layer.alpha, mem, layer.surrogate, layer.reset
        ),
        repeats,
    )
    forward(layer.current)
    vjp_input = rho.reshape(membrane.shape)
    if repeated:  # one VJP of the sum over the steps
        vjp_input = np.ascontiguousarray(vjp_input.reshape(steps, -1, *membrane.shape[1:]).sum(0))
    row["feedback: current VJP"] = _median_ms(
        lambda: layer.current.vjp(vjp_input, input_vjp=not first), repeats
    )
    return row


def snn_phases(name, repeats):
    """Where the time of lfp_ref's SNN LFP and BPTT steps goes (medians of ``repeats``, ms):
    the whole steps, the forward pass, the reward and loss, the reverse walks, the norms and the
    optimizer; per layer its forward, LFP feedback and backward, a LIF's split into the time-loop
    kernel and the wrapped Dense/Conv2d (its GEMMs)."""
    from lfp_ref import engine, losses, optim, rewards

    x, y = snn_batch(name)
    model = snn_build(name)
    opt = optim.SGD(model, lr=LR, momentum=MOMENTUM)
    rule_for = engine.rule_resolver(eps=1e-6)
    reward_fn = rewards.snn_rate_coded(divide_by_t=True)
    step = {
        "LFP step": lambda: engine.lfp_step(
            model, opt, x, y, reward="snn_rate_coded_mean", clip_norm=CLIP
        ),
        "BPTT step": lambda: engine.gd_step(model, opt, x, y, loss="snn_ce_rate", clip_norm=CLIP),
    }
    out = {"step": {k: _median_ms(fn, repeats) for k, fn in step.items()}, "layers": []}
    out["step"]["forward"] = _median_ms(lambda: engine.forward(model, x), repeats)
    _, spikes = engine.forward(model, x)
    reward = reward_fn(spikes, y)
    _, grad = losses.snn_ce_rate(spikes, y)
    out["step"]["reward"] = _median_ms(lambda: reward_fn(spikes, y), repeats)
    out["step"]["loss"] = _median_ms(lambda: losses.snn_ce_rate(spikes, y), repeats)
    out["step"]["feedback walk"] = _median_ms(
        lambda: model.feedback(reward, rule_for, input_reward=False), repeats
    )
    out["step"]["backward walk"] = _median_ms(
        lambda: model.backward(grad, input_grad=False), repeats
    )
    params, squared = engine.collect(model, model.feedback(reward, rule_for, False)[1])
    out["step"]["norms (collect, with a copy)"] = _median_ms(
        lambda: engine.collect(model, {k: v.copy() for k, v in params.items()}), repeats
    )
    out["step"]["optimizer"] = _median_ms(lambda: opt.step(params, squared_norms=squared), repeats)
    # per layer, at the inputs and output rewards / gradients of one pass
    repeated = model.repeated_input_child()
    folded = np.ascontiguousarray(np.broadcast_to(x, (SNN_STEPS, *x.shape)))

    def walk():  # one pass, layer by layer, as SpikingSequential.forward does
        model.clear_caches()
        inputs = [folded.reshape(-1, *x.shape[1:])]
        for index, layer in enumerate(model.layers):
            kw = {"repeated": True} if str(index) == repeated else {}
            inputs.append(layer.forward(inputs[-1], **kw))
        return inputs

    inputs = walk()
    r = np.ascontiguousarray(reward.reshape(-1, reward.shape[-1]))
    g = np.ascontiguousarray(grad.reshape(-1, grad.shape[-1]))
    outs = [[None, None] for _ in model.layers]
    for index in reversed(range(len(model.layers))):
        outs[index][0] = r
        r = model.layers[index].feedback(r, rule_for)[0]
    walk()
    for index in reversed(range(len(model.layers))):
        outs[index][1] = g
        g = model.layers[index].backward(g)[0]
    for index, layer in enumerate(model.layers):
        row = _snn_layer_phases(layer, index == 0, inputs[index], *outs[index], rule_for, repeats,
                                repeated=str(index) == repeated)  # fmt: skip
        out["layers"].append({"layer": f"{index} {type(layer).__name__}", **row})
    return out


def worker_snn_profile(config):
    return snn_phases(config["model"], config["repeats"])


_FIRST_CALL = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from benchmarks import models
from lfp_ref import engine, optim
t1 = time.perf_counter()
x, y = models.batch("lenet-paper", 8, np.float32)
model = models.build("lenet-paper", np.float32)
opt = optim.SGD(model, lr=1e-3)
def both():
    engine.lfp_step(model, opt, x, y, clip_norm=3.0)
    engine.gd_step(model, opt, x, y, clip_norm=3.0)
t2 = time.perf_counter(); both(); t3 = time.perf_counter()
warm = []
for _ in range(5):
    s = time.perf_counter(); both(); warm.append(time.perf_counter() - s)
print(json.dumps({"import": t1 - t0, "first": (t3 - t2) - min(warm)}))
"""


def worker_compile(config):
    """First LFP + GD step (paper LeNet: conv, maxpool, dropout, dense) minus a warm one, in
    fresh processes: with an empty numba cache (cold) and again with the cache it left (warm)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            done = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def worker_sweep(config):
    """Median seconds per LFP and GD step of lfp_ref against batch size (MLP-256, LeNet-5) and
    against width (MLP 784-w-w-10 at batch 128), float32."""
    from benchmarks import models
    from lfp_ref import engine, optim

    def timed(build, x, y):
        lfp_model, gd_model = build(), build()
        lfp_opt = optim.SGD(lfp_model, lr=LR, momentum=MOMENTUM)
        gd_opt = optim.SGD(gd_model, lr=LR, momentum=MOMENTUM)
        res = _interleaved(
            {
                "LFP": lambda: engine.lfp_step(lfp_model, lfp_opt, x, y, clip_norm=CLIP),
                "GD": lambda: engine.gd_step(gd_model, gd_opt, x, y, clip_norm=CLIP),
            },
            config["repeats"],
        )
        return {k: v["median"] for k, v in res.items()}

    out = {"batch": {}, "width": {}}
    for name in ("mlp-256", "lenet-5"):
        out["batch"][name] = {}
        for size in config["batches"]:
            x, y = models.batch(name, size)
            out["batch"][name][size] = timed(lambda n=name: models.build(n), x, y)
    x, y = models.batch("mlp-256", 128)
    for width in config["widths"]:
        out["width"][width] = timed(lambda w=width: models.build_mlp(w), x, y)
    return out


def worker_profile(config):
    from benchmarks import profile

    return {"lines": profile.markdown(config["model"], np.float32, config["repeats"])}


WORKERS = {
    "gemm": worker_gemm,
    "steps": worker_steps,
    "compile": worker_compile,
    "sweep": worker_sweep,
    "profile": worker_profile,
    "snn_steps": worker_snn_steps,
    "snn_profile": worker_snn_profile,
}


def thread_env(threads, omp_wait_policy=OMP_WAIT_POLICY):
    """Environment that fixes every thread pool before the libraries load (``omp_wait_policy``
    None: OpenMP's default, the variable removed)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if omp_wait_policy is not None:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    return {
        **env,
        "NUMBA_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def _with(env, changes):
    """``env`` with ``changes`` applied (a value of None removes the variable)."""
    env = {**env, **{k: v for k, v in changes.items() if v is not None}}
    return {k: v for k, v in env.items() if changes.get(k, "") is not None}


def run_worker(kind, config, threads, timeout, omp_wait_policy=OMP_WAIT_POLICY, extra_env=None):
    """Run one configuration in a fresh process (its environment: :func:`thread_env` and
    ``extra_env``) and return its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--worker", json.dumps({**config, "kind": kind})],
        env=_with(thread_env(threads, omp_wait_policy), extra_env or {}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {kind} {config} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_snn_steps(name, repeats, peers, threads, processes, environment=""):
    """The SNN steps of configuration ``name`` in ``processes`` fresh processes (see
    :func:`run_steps`), with the variables of ``SNN_ENVIRONMENTS[environment]``."""
    config = {"model": name, "repeats": repeats, "peers": peers, "threads": threads}
    extra = SNN_ENVIRONMENTS[environment]
    runs = [
        run_worker("snn_steps", config, threads, 3600, extra_env=extra) for _ in range(processes)
    ]
    result = dict(runs[0], environment=environment)
    result["times"] = {
        contender: {
            "median": float(np.median([run["times"][contender]["median"] for run in runs])),
            "per_process": [run["times"][contender]["median"] for run in runs],
        }
        for contender in runs[0]["times"]
    }
    return result


def snn_key(name, environment):
    """The key of a spiking configuration's result: the model, and the environment when set."""
    return f"{name}, {environment}" if environment else name


def snn_rows(snn):
    """Per spiking configuration (model and environment): medians, ratios and the two targets."""
    rows = []
    for name in SNN_MODELS:
        for environment in SNN_ENVIRONMENTS:
            res = snn.get(snn_key(name, environment))
            if res is not None:
                rows.append(_snn_row(snn_key(name, environment), res))
    return rows


def _snn_row(label, res):
    times = res["times"]
    t = {k: v["median"] for k, v in times.items()}
    return {
        "model": label,
        "batch": res["batch"],
        "timesteps": res["timesteps"],
        "lfp": t["lfp_ref SNN LFP"],
        "bptt": t["lfp_ref SNN BPTT"],
        "lfprop": t.get("lfprop SNN LFP"),
        "snntorch": t.get("snntorch BPTT"),
        "lfp_lfprop": process_ratio(times, "lfp_ref SNN LFP", "lfprop SNN LFP"),
        "lfp_bptt": process_ratio(times, "lfp_ref SNN LFP", "lfp_ref SNN BPTT"),
        "bptt_snntorch": process_ratio(times, "lfp_ref SNN BPTT", "snntorch BPTT"),
        "peer_error": res.get("peer_error", ""),
    }


def snn_markdown(snn, profiles=None):
    """The spiking networks' section of RESULTS.md (and of ``--snn-only``'s output)."""
    lines = [
        "## Spiking networks, float32 (T = 15 steps, time folded into the batch)",
        "",
        "lfp_ref's SNN LFP step (`lfp_step`, reward snn_rate_coded_mean) and surrogate BPTT "
        "step (`gd_step`, loss snn_ce_rate, atan surrogate) beside lfprop 1.0.0's SNN LFP step "
        "(`LFPSNNEpsilonComposite`, its minimal example's loop over T) and snntorch 0.9.4's BPTT "
        "step (`ce_rate_loss`, `backward()`), on the same weights and batch (random images). "
        "A model named with an environment ran in it, every contender alike (SNN_ENVIRONMENTS "
        "in benchmarks/run.py): OPENBLAS_THREAD_TIMEOUT=4, OpenBLAS's idle workers sleep at "
        "once instead of spinning ~0.1 s and taking a core from Numba's threads; "
        "OMP_WAIT_POLICY unset, OpenMP's default, where torch (and so lfprop and snntorch) is "
        "at its best; the others run with OMP_WAIT_POLICY=PASSIVE.",
        "",
        "| model | batch | LFP ms | BPTT ms | LFP / BPTT | lfprop SNN LFP ms | snntorch BPTT ms | "
        "LFP / lfprop | BPTT / snntorch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = snn_rows(snn)
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {ms(r['lfp'])} | {ms(r['bptt'])} | "
            f"{fmt_ratio(r['lfp_bptt'])} | {ms(r['lfprop'])} | {ms(r['snntorch'])} | "
            f"{fmt_ratio(r['lfp_lfprop'])} | {fmt_ratio(r['bptt_snntorch'])} |"
        )
    missing = [r["peer_error"] for r in rows if r["peer_error"]]
    if missing:
        lines += ["", f"The peer columns are empty: {missing[0]}"]
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for name, value, met in snn_targets(rows):
        shown = "" if value is None else f"{value:.2f}"
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {shown} | {verdict} |")
    for name, prof in (profiles or {}).items():
        lines += ["", f"Where the time goes, {name} (ms, medians):", ""]
        lines += ["| phase | ms |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in prof["step"].items()]
        keys = sorted({k for row in prof["layers"] for k in row if k != "layer"},
                      key=lambda k: (k.split(":")[0], ":" in k, k))  # fmt: skip
        lines += ["", "| layer | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for row in prof["layers"]:
            cells = [f"{row[k]:.2f}" if k in row else "" for k in keys]
            lines.append(f"| {row['layer']} | " + " | ".join(cells) + " |")
    return lines


def snn_targets(rows):
    """``(target, value, met)`` for the spiking networks' two targets, per row, and the first
    once more per model with each contender at its best (its fastest environment; a ratio of
    medians from different processes)."""
    out = []
    for name in SNN_MODELS:
        mine = [r for r in rows if r["model"].split(",")[0] == name]
        lfp = min((r["lfp"] for r in mine), default=None)
        lfprop = min((r["lfprop"] for r in mine if r["lfprop"] is not None), default=None)
        if lfp is not None and lfprop is not None and len(mine) > 1:
            value = lfp / lfprop
            out.append((f"{name}: SNN LFP <= {SNN_LFPROP_TARGET}x lfprop's, each at its best",
                        value, value <= SNN_LFPROP_TARGET))  # fmt: skip
    for r in rows:
        value = r["lfp_lfprop"]
        out.append((f"{r['model']}: SNN LFP <= {SNN_LFPROP_TARGET}x lfprop's", value,
                    None if value is None else value <= SNN_LFPROP_TARGET))  # fmt: skip
        value = r["lfp_bptt"]
        out.append((f"{r['model']}: SNN LFP <= {SNN_BPTT_TARGET}x lfp_ref's BPTT", value,
                    value <= SNN_BPTT_TARGET))  # fmt: skip
    return out


def run_steps(name, dtype, repeats, peers, threads, processes, lfprop=True):
    """The steps of one configuration in ``processes`` fresh processes, one after the other;
    each contender's time is the median over the processes of its median in each. (The same
    step can run 1.5x slower in one process than in the next, for lfp_ref and torch alike; one
    process per configuration would report that luck of the draw.) ``lfprop``: whether the
    peers include lfprop's step (torch's always)."""
    config = {"model": name, "dtype": dtype, "repeats": repeats, "peers": peers, "lfprop": lfprop}
    runs = [
        run_worker("steps", {**config, "threads": threads}, threads, 1800) for _ in range(processes)
    ]
    result = dict(runs[0])
    result["times"] = {
        contender: {
            "median": float(np.median([run["times"][contender]["median"] for run in runs])),
            "per_process": [run["times"][contender]["median"] for run in runs],
        }
        for contender in runs[0]["times"]
    }
    return result


# ------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------


def runtime_machine_info():
    """:func:`lfp_ref.runtime.machine_info` (lfp_ref imported only when a report is made)."""
    from lfp_ref.runtime import machine_info

    return machine_info()


def load_average():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("numpy", "numba", "scipy", "torch", "lfprop", "zennit", "lxt"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
                out["numpy BLAS"] = f"{info.get('internal_api')} {info.get('version')}"
    except ImportError:
        pass
    return out


def ms(seconds):
    return "" if seconds is None else f"{seconds * 1e3:.2f}"


def ratio(a, b):
    return None if a is None or b is None else a / b


def process_ratio(times, a, b):
    """The median over processes of ``a / b`` within each process (None without ``b``): a slow
    process slows both contenders, so the ratio inside a process is steadier than the ratio of
    the medians (measured: MLP-1000 LFP / lfprop 0.76, 0.79, 0.97 in three processes, 0.96 as a
    ratio of medians)."""
    if a not in times or b not in times:
        return None
    pairs = zip(times[a]["per_process"], times[b]["per_process"], strict=True)
    return float(np.median([x / y for x, y in pairs]))


def fmt_ratio(value):
    return "" if value is None else f"{value:.2f}"


def step_rows(steps, dtype, gemm):
    """Per model: the medians and ratios of one dtype."""
    rows = []
    rate = gemm[dtype]["best"]
    for name in MODEL_ORDER:
        res = steps.get((name, dtype))
        if res is None:
            continue
        t = {k: v["median"] for k, v in res["times"].items()}
        roofline = 3 * res["flops"] / rate
        rows.append(
            {
                "model": name,
                "batch": res["batch"],
                "lfp": t["lfp_ref LFP"],
                "gd": t["lfp_ref GD"],
                "forward": t["lfp_ref forward"],
                "lfp_gd": process_ratio(res["times"], "lfp_ref LFP", "lfp_ref GD"),
                "lfp_lfprop": process_ratio(res["times"], "lfp_ref LFP", "lfprop LFP"),
                "lfp_torch": process_ratio(res["times"], "lfp_ref LFP", "torch GD"),
                "gemms_lfprop": process_ratio(res["times"], "lfp_ref LFP GEMMs", "lfprop LFP"),
                "gemms_share": process_ratio(res["times"], "lfp_ref LFP GEMMs", "lfp_ref LFP"),
                "gemms": t.get("lfp_ref LFP GEMMs"),
                "gemm_calls": res.get("gemm_calls"),
                "lfprop": t.get("lfprop LFP"),
                "torch_gd": t.get("torch GD"),
                "torch_forward": t.get("torch forward"),
                "gflop": res["flops"] / 1e9,
                "train_gflop": res["train_flops"] / 1e9,
                "roofline": roofline,
                "fraction": roofline / t["lfp_ref LFP"],
                "gd_fraction": roofline / t["lfp_ref GD"],
                "spread": res["times"]["lfp_ref LFP"],
            }
        )
    return rows


def _target_checks(rows, gemm):
    """{target name: (value, met, gap note)} for one set of float32 rows."""
    out = {}
    rate = gemm["float32"]["best"]
    for row in rows:
        if row["model"] not in LFPROP_TARGET:
            continue
        goal = LFPROP_TARGET[row["model"]]
        name = f"{row['model']}: LFP <= {goal}x lfprop LFP"
        value = row["lfp_lfprop"]
        if value is None:
            out[name] = (None, None, "no peer")
            continue
        note = ""
        if value > goal:
            # what the step's GEMMs alone (the first layer's input VJP excluded: training does
            # not need it) cost: at the machine's best GEMM rate, and replayed at their shapes
            bound = row["train_gflop"] * 1e9 / rate / row["lfprop"]
            note = f"the GEMMs alone at {rate / 1e9:.0f} GFLOP/s: {bound:.2f}x lfprop's step"
            if row.get("gemms_lfprop"):
                note += (
                    f"; the step's {row['gemm_calls']} GEMMs replayed at their shapes: "
                    f"{row['gemms_lfprop']:.2f}x"
                )
        out[name] = (value, value <= goal, note)
    for row in rows:
        value = row["lfp_gd"]
        out[f"{row['model']}: LFP <= {GD_TARGET}x lfp_ref GD"] = (value, value <= GD_TARGET, "")
    for row in rows:
        model, goal = ROOFLINE_TARGET
        if row["model"] == model:
            out[f"{model}: LFP at >= {goal:.0%} of the roofline"] = (
                row["fraction"],
                row["fraction"] >= goal,
                "",
            )
    return out


def target_rows(report):
    """``(target, value 2 threads, met, value 1 thread, met, note)`` for every target of issue
    5; the 1-thread columns are empty when that table was not run."""
    two = _target_checks(step_rows(report["steps"], "float32", report["gemm"]), report["gemm"])
    one = {}
    if report.get("steps_1"):
        gemm1 = report.get("gemm_1", report["gemm"])
        one = _target_checks(step_rows(report["steps_1"], "float32", gemm1), gemm1)
    rows = []
    for name, (value, met, note) in two.items():
        value1, met1, note1 = one.get(name, (None, None, ""))
        rows.append((name, value, met, value1, met1, note or note1))
    return rows


def torch_targets(report):
    """``(target, value, met, each at its best)`` for the targets of issue 17, one row per model
    and target that was measured: LFP <= TORCH_GD_TARGET x torch's GD step (float32 and
    float64) and LFP <= LFPROP_TARGET_ALL x lfprop's LFP step (float32). ``value`` is the ratio
    within a process; ``each at its best`` (float32 GD only, when the OpenMP table was run):
    lfp_ref's median under the suite's policy over torch's median with OpenMP's default."""
    out = []
    omp_default = report.get("steps_omp_default") or {}
    for dtype in ("float32", "float64"):
        for row in step_rows(report["steps"], dtype, report["gemm"]):
            value = row["lfp_torch"]
            if value is None:
                continue
            best = None
            res = omp_default.get(row["model"]) if dtype == "float32" else None
            if res is not None and "torch GD" in res["times"]:
                best = row["lfp"] / res["times"]["torch GD"]["median"]
            name = f"{row['model']} {dtype}: LFP <= {TORCH_GD_TARGET}x torch GD"
            out.append((name, value, value <= TORCH_GD_TARGET, best))
    for row in step_rows(report["steps"], "float32", report["gemm"]):
        value = row["lfp_lfprop"]
        if value is not None:
            name = f"{row['model']} float32: LFP <= {LFPROP_TARGET_ALL}x lfprop LFP"
            out.append((name, value, value <= LFPROP_TARGET_ALL, None))
    return out


def markdown(report):
    """RESULTS.md as a list of lines."""
    gemm, steps = report["gemm"], report["steps"]
    rows32 = step_rows(steps, "float32", gemm)
    rows64 = step_rows(steps, "float64", gemm)
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{report['command']}` on {report['date']}.",
        "",
        f"- machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['system']}",
        f"- threads: {report['threads']} (numba, OpenBLAS, torch), every process started with "
        f"`OMP_WAIT_POLICY={OMP_WAIT_POLICY}`; load average before / after: "
        f"{report['load_before']} / {report['load_after']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
        f"- steps: SGD lr {LR}, momentum {MOMENTUM}, global-norm clipping at {CLIP}; the same "
        "initial weights and the same batch for every contender; ms per step: the median of "
        f">= {report['repeats']} steps after warm-up, the contenders interleaved in blocks of "
        f"back-to-back steps ({BLOCK_SECONDS} s each, the steps of its first {DISCARD_SECONDS} s "
        f"not counted) within a process, then the median over {report['processes']} such "
        "processes per configuration; a ratio of two contenders is the median over the "
        "processes of their ratio within each process",
        "- roofline: 3x the forward pass's GEMM FLOPs (forward, weight VJP, input VJP) at the "
        "best GEMM rate below; fraction = roofline time / measured time",
        "- LFP's GEMMs: every GEMM of one lfp_ref LFP step (`np.matmul` and the shifted "
        "convolution's `_blas.gemm`), recorded once and replayed "
        "on the same operands as one more interleaved contender: the BLAS time of the step, "
        "and its share of the step",
        "",
        "## GEMM rate (numpy matmul, square, this run)",
        "",
        "| dtype | best GFLOP/s | median GFLOP/s |",
        "|---|---|---|",
    ]
    for dtype in ("float32", "float64"):
        lines.append(
            f"| {dtype} | {gemm[dtype]['best'] / 1e9:.0f} | {gemm[dtype]['median'] / 1e9:.0f} |"
        )
    if report.get("gemm_1"):
        for dtype in ("float32", "float64"):
            one = report["gemm_1"][dtype]
            lines.append(
                f"| {dtype}, 1 thread | {one['best'] / 1e9:.0f} | {one['median'] / 1e9:.0f} |"
            )
    lines += [
        "",
        "## Training steps, float32",
        "",
        "| model | batch | LFP ms | GD ms | LFP / GD | lfprop LFP ms | torch GD ms | "
        "LFP / lfprop | LFP / torch GD | forward ms (lfp_ref / torch) | LFP's GEMMs ms (share) | "
        "roofline ms | LFP at roofline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows32:
        fwd = ms(r["forward"]) + (f" / {ms(r['torch_forward'])}" if r["torch_forward"] else "")
        gemms = f"{ms(r['gemms'])} ({r['gemms_share']:.0%})" if r.get("gemms") else ""
        lines.append(
            f"| {r['model']} | {r['batch']} | {ms(r['lfp'])} | {ms(r['gd'])} | "
            f"{r['lfp_gd']:.2f} | {ms(r['lfprop'])} | {ms(r['torch_gd'])} | "
            f"{fmt_ratio(r['lfp_lfprop'])} | {fmt_ratio(r['lfp_torch'])} | {fwd} | {gemms} | "
            f"{ms(r['roofline'])} | {r['fraction']:.0%} |"
        )
    if not report["peers"]:
        lines += ["", f"The peer columns are empty: {report['peer_note']}"]
    if report["processes"] > 1:
        lines += ["", "Per process (ms, in the order run): the medians above are over these.", ""]
        lines += ["| model | LFP | GD | lfprop LFP | torch GD |", "|---|---|---|---|---|"]
        for name in MODEL_ORDER:
            res = steps.get((name, "float32"))
            if res is None:
                continue
            cells = [
                " / ".join(ms(t) for t in res["times"][c]["per_process"])
                if c in res["times"]
                else ""
                for c in ("lfp_ref LFP", "lfp_ref GD", "lfprop LFP", "torch GD")
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report.get("steps_omp_default"):
        lines += [
            "",
            f"## OpenMP's wait policy (float32, {report['threads']} threads)",
            "",
            f"Every process above starts with `OMP_WAIT_POLICY={OMP_WAIT_POLICY}`; here one "
            "process per model with OpenMP's default (the variable unset), the same contenders "
            "interleaved.",
            "",
            "| model | LFP ms, default / passive | torch GD ms, default / passive | "
            "LFP / torch GD, default / passive | LFP passive / torch GD default | "
            "lfprop LFP ms, default / passive |",
            "|---|---|---|---|---|---|",
        ]
        for name in MODEL_ORDER:
            res, base = report["steps_omp_default"].get(name), steps.get((name, "float32"))
            if res is None or base is None:
                continue
            d = {k: v["median"] for k, v in res["times"].items()}
            b = {k: v["median"] for k, v in base["times"].items()}
            ratios = [t["lfp_ref LFP"] / t["torch GD"] for t in (d, b)]
            lines.append(
                f"| {name} | {ms(d['lfp_ref LFP'])} / {ms(b['lfp_ref LFP'])} | "
                f"{ms(d['torch GD'])} / {ms(b['torch GD'])} | "
                f"{ratios[0]:.2f} / {ratios[1]:.2f} | {b['lfp_ref LFP'] / d['torch GD']:.2f} | "
                f"{ms(d['lfprop LFP'])} / {ms(b['lfprop LFP'])} |"
            )
        lines += [
            "",
            "The passive policy costs torch's small steps up to 1.8x (its workers sleep between "
            'operations), the default costs lfp_ref up to 2x in some processes: "LFP passive / '
            'torch GD default" sets each at its best.',
        ]
    lines += [
        "",
        "## Training steps, float64",
        "",
        "lfp_ref beside torch's own float64 GD step (lfprop is not timed in float64).",
        "",
        "| model | batch | LFP ms | GD ms | LFP / GD | torch GD ms | LFP / torch GD | "
        "forward ms (lfp_ref / torch) | roofline ms | LFP at roofline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows64:
        fwd = ms(r["forward"]) + (f" / {ms(r['torch_forward'])}" if r["torch_forward"] else "")
        lines.append(
            f"| {r['model']} | {r['batch']} | {ms(r['lfp'])} | {ms(r['gd'])} | "
            f"{r['lfp_gd']:.2f} | {ms(r['torch_gd'])} | {fmt_ratio(r['lfp_torch'])} | {fwd} | "
            f"{ms(r['roofline'])} | {r['fraction']:.0%} |"
        )
    if report.get("steps_1"):
        gemm1 = report.get("gemm_1", gemm)
        lines += [
            "",
            "## Training steps, float32, 1 thread (numba, OpenBLAS and torch all single-threaded)",
            "",
            "A second view of the same steps: one thread per process is far less sensitive to "
            "other load on the machine than two threads that wait for each other.",
            "",
            "| model | LFP ms | GD ms | LFP / GD | lfprop LFP ms | torch GD ms | LFP / lfprop | "
            "roofline ms | LFP at roofline |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in step_rows(report["steps_1"], "float32", gemm1):
            lines.append(
                f"| {r['model']} | {ms(r['lfp'])} | {ms(r['gd'])} | {r['lfp_gd']:.2f} | "
                f"{ms(r['lfprop'])} | {ms(r['torch_gd'])} | "
                f"{fmt_ratio(r['lfp_lfprop'])} | {ms(r['roofline'])} | "
                f"{r['fraction']:.0%} |"
            )
    if report.get("snn"):
        lines += [""] + snn_markdown(report["snn"], report.get("snn_profiles"))
    lines += [
        "",
        "## Targets (issue 5)",
        "",
        "| target | 2 threads | met | 1 thread | met | gap |",
        "|---|---|---|---|---|---|",
    ]
    for name, value, met, value1, met1, note in target_rows(report):
        cells = []
        for v, m in ((value, met), (value1, met1)):
            shown = "" if v is None else (f"{v:.0%}" if "roofline" in name else f"{v:.2f}")
            cells += [shown, "" if m is None else ("yes" if m else "**no**")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {note} |")
    rows17 = torch_targets(report)
    if rows17:
        lines += [
            "",
            "## Targets (issue 17)",
            "",
            "Judged, as the issue asks, on the ratios within one process (median over the "
            "processes). The last column sets each contender at its best: lfp_ref's step with "
            f"`OMP_WAIT_POLICY={OMP_WAIT_POLICY}` over torch's with OpenMP's default (the OpenMP "
            "table above; float32 only).",
            "",
            "| target | value | met | each at its best |",
            "|---|---|---|---|",
        ]
        for name, value, met, best in rows17:
            cells = [fmt_ratio(value), "" if met is None else ("yes" if met else "**no**")]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt_ratio(best)} |")
    comp = report.get("compile")
    if comp:
        lines += [
            "",
            "## First call (paper LeNet, batch 8, float32; fresh process each)",
            "",
            "| numba cache | import s | first LFP + GD step minus a warm one, s |",
            "|---|---|---|",
            f"| cold (empty) | {comp['cold']['import']:.2f} | {comp['cold']['first']:.2f} |",
            f"| warm | {comp['warm']['import']:.2f} | {comp['warm']['first']:.2f} |",
        ]
    sweep = report.get("sweep")
    if sweep:
        lines += [
            "",
            "## Scaling (float32, lfp_ref, median ms per step)",
            "",
            f"![scaling]({SCALING_PNG.name})",
            "",
            "| batch | " + " | ".join(f"{n} LFP | {n} GD" for n in sweep["batch"]) + " |",
            "|---" * (1 + 2 * len(sweep["batch"])) + "|",
        ]
        sizes = list(next(iter(sweep["batch"].values())))
        for size in sizes:
            cells = []
            for n in sweep["batch"]:
                cells += [ms(sweep["batch"][n][size]["LFP"]), ms(sweep["batch"][n][size]["GD"])]
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
        lines += ["", "| width (MLP 784-w-w-10, batch 128) | LFP ms | GD ms |", "|---|---|---|"]
        for width, t in sweep["width"].items():
            lines.append(f"| {width} | {ms(t['LFP'])} | {ms(t['GD'])} |")
    if report.get("profiles"):
        lines += ["", "## Where the time goes (float32)", ""]
        for prof in report["profiles"]:
            lines += prof + [""]
    lines += [
        "",
        "<!-- machine-readable results of this run, for the regression check of the next one",
        json.dumps(
            {
                "machine": report["machine"],
                "float32": {r["model"]: {"lfp": r["lfp"], "gd": r["gd"]} for r in rows32},
                "float64": {r["model"]: {"lfp": r["lfp"], "gd": r["gd"]} for r in rows64},
            }
        ),
        "-->",
    ]
    return lines


def previous_results(path):
    """``(json summary, notes section)`` of an existing RESULTS.md (None, "" if absent)."""
    if not path.exists():
        return None, ""
    text = path.read_text()
    notes = ""
    if "\n## Notes" in text:
        notes = "## Notes" + text.split("\n## Notes", 1)[1].split("\n<!-- machine-readable", 1)[0]
    summary = None
    if "<!-- machine-readable" in text:
        block = text.split("<!-- machine-readable", 1)[1].split("\n", 2)[1]
        try:
            summary = json.loads(block)
        except json.JSONDecodeError:
            summary = None
    return summary, notes.rstrip() + "\n" if notes else ""


def regressions(previous, report):
    """Lines naming every step more than 10% slower than in the previous RESULTS.md (same CPU
    model only: absolute times from another machine say nothing)."""
    if not previous or previous.get("machine", {}).get("cpu") != report["machine"]["cpu"]:
        return []
    lines = []
    for dtype in ("float32", "float64"):
        for row in step_rows(report["steps"], dtype, report["gemm"]):
            old = previous.get(dtype, {}).get(row["model"])
            if not old:
                continue
            for key in ("lfp", "gd"):
                change = row[key] / old[key] - 1
                if change > 0.10:
                    lines.append(
                        f"- {row['model']} {dtype} {key.upper()}: {ms(old[key])} -> "
                        f"{ms(row[key])} ms (+{change:.0%})"
                    )
    return lines


def plot_sweep(sweep, path):
    """Two panels: ms per step against batch size and against width, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name, series in sweep["batch"].items():
        sizes = [int(s) for s in series]
        for method, style in (("LFP", "-o"), ("GD", "--s")):
            left.plot(
                sizes, [series[s][method] * 1e3 for s in series], style, label=f"{name} {method}"
            )
    left.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per step")
    left.set_title("time per step vs batch size")
    left.legend(fontsize=8)
    widths = [int(w) for w in sweep["width"]]
    for method, style in (("LFP", "-o"), ("GD", "--s")):
        right.plot(
            widths, [sweep["width"][w][method] * 1e3 for w in sweep["width"]], style, label=method
        )
    right.set(xscale="log", yscale="log", xlabel="hidden width w (MLP 784-w-w-10, batch 128)")
    right.set_title("time per step vs width")
    right.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, a short sweep")
    parser.add_argument("--models", default=",".join(MODEL_ORDER))
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per contender")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--processes", type=int, default=3, help="processes per configuration (1 with --quick)"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip lfprop and torch")
    parser.add_argument(
        "--single-thread",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the float32 steps with 1 thread (default: on, off with --quick)",
    )
    parser.add_argument(
        "--snn-models",
        default=",".join(SNN_MODELS),
        help="the spiking configurations (empty: none)",
    )
    parser.add_argument(
        "--snn-only",
        action="store_true",
        help="run only the spiking configurations (and a profile of their steps) and print "
        "their section; writes a file only with an explicit --out",
    )
    parser.add_argument("--out", type=Path, default=None, help="the Markdown report")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        from lfp_ref.runtime import tune_allocator

        tune_allocator()  # every contender in the process alike (lfp_ref.runtime)
        config = json.loads(args.worker)
        print(json.dumps(WORKERS[config.pop("kind")](config)))
        return

    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODEL_ORDER))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODEL_ORDER)}")
    snn_models = [m for m in args.snn_models.split(",") if m]
    unknown = sorted(set(snn_models) - set(SNN_MODELS))
    if unknown:
        parser.error(f"unknown spiking models {unknown}; known: {', '.join(SNN_MODELS)}")
    repeats = args.repeats or (10 if args.quick else 30)
    if args.snn_only:
        return snn_only(args, snn_models, repeats)
    if args.out is None:
        args.out = RESULTS
    if args.single_thread is None:
        args.single_thread = not args.quick
    threads = args.threads
    report = {
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": runtime_machine_info(),
        "versions": versions(),
        "threads": threads,
        "repeats": repeats,
        "processes": 1 if args.quick else args.processes,
        "load_before": load_average(),
        "steps": {},
    }
    report["command"] = report["command"].strip()

    def say(text):
        print(text, file=sys.stderr, flush=True)

    say(f"GEMM rate ({threads} threads) ...")
    report["gemm"] = run_worker(
        "gemm", {"size": 1024 if args.quick else 2048, "repeats": 10}, threads, 600
    )
    if args.single_thread and threads != 1:
        report["gemm_1"] = run_worker(
            "gemm", {"size": 1024 if args.quick else 2048, "repeats": 5}, 1, 600
        )
    peers_wanted = not args.no_peers
    report["peers"], report["peer_note"] = False, "skipped (--no-peers)"
    processes = 1 if args.quick else args.processes
    for dtype in ("float32", "float64"):
        for name in models:
            # float64: torch's GD step only (issue 17's float64 target); lfprop in float32
            with_lfprop = dtype == "float32"
            peers_said = " with torch" + (" and lfprop" if with_lfprop else "")
            say(f"steps: {name} {dtype}{peers_said if peers_wanted else ''} ...")
            res = run_steps(name, dtype, repeats, peers_wanted, threads, processes, with_lfprop)
            report["steps"][(name, dtype)] = res
            if peers_wanted:
                report["peers"] = res.get("peers", False)
                if not report["peers"]:
                    report["peer_note"] = (
                        "lfprop/torch are not installed (`make setup-crosscheck` installs them): "
                        + res.get("peer_error", "")
                    )
    if report["peers"] and not args.quick:
        report["steps_omp_default"] = {}
        for name in models:
            say(f"steps: {name} float32 with peers, OpenMP's default wait policy ...")
            config = {"model": name, "dtype": "float32", "repeats": repeats, "peers": True}
            report["steps_omp_default"][name] = run_worker(
                "steps", {**config, "threads": threads}, threads, 1800, omp_wait_policy=None
            )
    if args.single_thread and threads != 1:
        for name in models:
            say(f"steps: {name} float32, 1 thread{' with peers' if peers_wanted else ''} ...")
            report.setdefault("steps_1", {})[(name, "float32")] = run_steps(
                name, "float32", repeats, peers_wanted, 1, processes
            )
    report["snn"] = {}
    for name in snn_models:
        for environment in SNN_ENVIRONMENTS:
            say(f"steps: {snn_key(name, environment)} float32, T = {SNN_STEPS}"
                f"{' with peers' if peers_wanted else ''} ...")  # fmt: skip
            report["snn"][snn_key(name, environment)] = run_snn_steps(
                name, repeats, peers_wanted, threads, processes, environment
            )
    say("first-call compile time ...")
    report["compile"] = run_worker("compile", {}, threads, 1200)
    say("scaling sweep ...")
    sweep_config = {
        "batches": [1, 8, 64, 256] if args.quick else list(SWEEP_BATCHES),
        "widths": [128, 1000] if args.quick else list(SWEEP_WIDTHS),
        "repeats": max(6, repeats // 3) if args.quick else repeats,
    }
    report["sweep"] = run_worker("sweep", sweep_config, threads, 3600)
    say("profile ...")
    report["profiles"] = [
        run_worker("profile", {"model": name, "repeats": repeats}, threads, 1200)["lines"]
        for name in ("mlp-1000", "lenet-5", "vgg-small", "resnet-small")
        if name in models
    ]
    report["load_after"] = load_average()

    previous, notes = previous_results(args.out)
    lines = markdown(report)
    changed = regressions(previous, report)
    if changed:
        at = lines.index("## Targets (issue 5)")
        lines[at:at] = (
            ["## Slower than the previous RESULTS.md by more than 10%", ""] + changed + [""]
        )
    marker = next(i for i, line in enumerate(lines) if line.startswith("<!-- machine-readable"))
    if notes:
        lines[marker:marker] = notes.splitlines() + [""]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    if report.get("sweep"):
        plot_sweep(report["sweep"], args.out.parent / SCALING_PNG.name)
    say(f"wrote {args.out} and {args.out.parent / SCALING_PNG.name}")


def snn_only(args, snn_models, repeats):
    """``--snn-only``: the spiking configurations' steps and profiles, printed (and written to
    ``--out`` when given)."""

    def say(text):
        print(text, file=sys.stderr, flush=True)

    processes = 1 if args.quick else args.processes
    snn, profiles = {}, {}
    load_before = load_average()
    for name in snn_models:
        for environment in SNN_ENVIRONMENTS:
            say(f"steps: {snn_key(name, environment)} float32, T = {SNN_STEPS} ...")
            snn[snn_key(name, environment)] = run_snn_steps(
                name, repeats, not args.no_peers, args.threads, processes, environment
            )
        say(f"profile: {name} ...")
        profiles[name] = run_worker(
            "snn_profile", {"model": name, "repeats": max(3, repeats // 3)}, args.threads, 3600
        )
    machine = runtime_machine_info()
    lines = [
        "# Spiking-network benchmarks",
        "",
        f"Generated by `python -m benchmarks.run {' '.join(sys.argv[1:])}` on "
        f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; "
        f"{machine['cpu']}, {machine['cores']} cores; {args.threads} threads; load average "
        f"before / after {load_before} / {load_average()}; SGD lr {LR}, momentum {MOMENTUM}, "
        f"clipping {CLIP}; ms per step: the median of >= {repeats} interleaved steps per "
        f"process, median over {processes} process(es).",
        "",
        *snn_markdown(snn, profiles),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
        say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    main()
