"""Where the time of one lfp_ref training step goes: per layer, per phase and per kernel.

    python -m benchmarks.profile [--model lenet-5] [--dtype float32] [--repeats 30]

- per layer: each layer's forward, LFP feedback and backprop backward, timed alone at the inputs
  of one forward pass (medians);
- per phase of an LFP step: forward, reward, feedback walk, norms, clip coefficient, optimizer;
- per kernel: cProfile's own time of every function in ``lfp_ref.kernels`` (the BLAS calls are
  inside the kernel wrappers that make them) over a run of LFP steps, plus everything else.
"""

import argparse
import cProfile
import pstats
import time

import numpy as np

from benchmarks.models import MODELS, batch, build
from lfp_ref import engine, optim, rewards
from lfp_ref.rules import Epsilon


def median_seconds(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def one_line(layer, width=90):
    """The layer's repr on one line (a table cell), cut to ``width`` characters: a block's
    repr lists its children over several lines."""
    text = " ".join(repr(layer).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def layer_table(model, x, y, repeats):
    """Rows ``(index, layer, forward s, feedback s, backward s)``; feedback and backward of a
    layer run at its output's reward/gradient from one full pass."""
    inputs = [x]
    for layer in model.layers:
        inputs.append(layer.forward(inputs[-1]))
    rule = Epsilon()
    reward = rewards.softmax_loss(inputs[-1], y)
    rewards_out = [None] * len(model.layers)
    for index in reversed(range(len(model.layers))):
        rewards_out[index] = reward
        reward, _ = model.layers[index].feedback(reward, lambda _: rule)
    rows = []
    for index, layer in enumerate(model.layers):
        x_in, r_out = inputs[index], rewards_out[index]
        # layer(x) starts a pass (drops the saved uses): repeated forward() calls would pile up
        # one cache per call and time the allocator instead of the layer
        forward = median_seconds(lambda layer=layer, x_in=x_in: layer(x_in), repeats)
        layer(x_in)
        feedback = median_seconds(
            lambda layer=layer, r_out=r_out: layer.feedback(r_out, lambda _: rule), repeats
        )
        backward = median_seconds(lambda layer=layer, r_out=r_out: layer.backward(r_out), repeats)
        rows.append((index, one_line(layer), forward, feedback, backward))
    return rows


def step_phases(model, x, y, clip_norm=3.0):
    """The phases of ``lfp_ref.lfp_step`` (SGD with momentum, clipping) as functions that, called
    in order, make one step."""
    opt = optim.SGD(model, lr=1e-3, momentum=0.9)
    rule_for = engine.rule_resolver()
    state = {}

    def forward():
        state["x"], state["logits"] = engine.forward(model, x)

    def reward():
        state["reward"] = rewards.softmax_loss(state["logits"], y)

    def walk():
        state["params"] = model.feedback(state["reward"], rule_for)[1]

    def norms():
        # the finiteness check and the squared norms: one pass over the feedback
        state["params"], state["squared"] = engine.collect(model, state["params"])

    def clip():
        state["scale"] = -optim.clip_coefficient(state["squared"], clip_norm)[0]

    def step():
        opt.step(state["params"], scale=state["scale"])

    return {
        "forward": forward,
        "reward": reward,
        "feedback walk": walk,
        "norms (+ finiteness)": norms,
        "clip coefficient": clip,
        "optimizer (g = -F * clip folded in)": step,
    }


def phase_table(model, x, y, repeats, clip_norm=3.0):
    """Median seconds of each phase of ``lfp_ref.lfp_step`` (:func:`step_phases`)."""
    phases = step_phases(model, x, y, clip_norm)
    times = {name: [] for name in phases}
    for i in range(repeats + 3):
        for name, fn in phases.items():
            start = time.perf_counter()
            fn()
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def kernel_table(model, x, y, steps, clip_norm=3.0):
    """``(function, calls, seconds per step)`` of the kernels (functions in lfp_ref.kernels) by
    cProfile's own time over ``steps`` LFP steps, largest first, and a last row for the rest."""
    opt = optim.SGD(model, lr=1e-3, momentum=0.9)
    for _ in range(3):
        engine.lfp_step(model, opt, x, y, clip_norm=clip_norm)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(steps):
        engine.lfp_step(model, opt, x, y, clip_norm=clip_norm)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(entry[2] for entry in stats.values())
    rows = []
    for (path, _, name), (_, calls, own, _, _) in stats.items():
        if "/kernels/" in path.replace("\\", "/"):
            module = path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
            rows.append((f"{module}.{name}", calls // steps, own / steps))
    rows.sort(key=lambda row: -row[2])
    rows.append(("everything else", 0, total / steps - sum(row[2] for row in rows)))
    return rows


def markdown(model_name, dtype, repeats):
    """The three tables as Markdown lines."""
    x, y = batch(model_name, dtype=dtype)
    model = build(model_name, dtype)
    lines = [f"#### {model_name} (batch {x.shape[0]}, {np.dtype(dtype).name})", ""]
    lines += ["| layer | forward ms | LFP feedback ms | backward ms |", "|---|---|---|---|"]
    for index, name, forward, feedback, backward in layer_table(model, x, y, repeats):
        lines.append(
            f"| {index} {name} | {forward * 1e3:.3f} | {feedback * 1e3:.3f} | "
            f"{backward * 1e3:.3f} |"
        )
    lines += ["", "| phase of an LFP step | ms |", "|---|---|"]
    for name, seconds in phase_table(model, x, y, repeats).items():
        lines.append(f"| {name} | {seconds * 1e3:.3f} |")
    lines += ["", "| kernel (cProfile own time) | calls per step | ms per step |", "|---|---|---|"]
    for name, calls, seconds in kernel_table(model, x, y, repeats):
        if seconds >= 1e-5 or name == "everything else":
            lines.append(f"| {name} | {calls or ''} | {seconds * 1e3:.3f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet-5")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    from lfp_ref.runtime import tune_allocator

    tune_allocator()  # as in training and in benchmarks.run's workers (lfp_ref.runtime)
    print("\n".join(markdown(args.model, np.dtype(args.dtype), args.repeats)))


if __name__ == "__main__":
    main()
