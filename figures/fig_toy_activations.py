"""Figure 2, toy data with an activation after every layer, the output included: LeakyReLU,
Step, SiLU, ELU and Tanh, LFP against gradient descent.

The network of figure 1 (2-32-16-C, the same initial weights for the same seed) with the
activation after each of its three Dense layers (``figures.common:toy_net``), trained as in
figure 1 (SGD momentum 0.95, batch 128, 10 epochs, 15 for swirls; LFP with the softmax_loss
reward summed over the batch, GD with the mean cross-entropy) over a learning-rate grid, 5 runs
per point (run i: data seed i and init seed i). Step (Heaviside) has derivative 0, so gradient
descent gets no gradient through it and keeps its initial weights; LFP's identity rule passes
the reward through any activation.

The paper reports the best of 5 models (circles, step: LFP 72.2 % vs GD 62.0 %; swirls, step:
69.5 % vs 37.8 %; the smooth activations about equal). This script reports, per data set,
activation and method, the mean and standard deviation at the learning rate with the best
mean, and the best single run over every learning rate and seed (the paper's measure).

    python figures/fig_toy_activations.py [--quick | --smoke] [--workers N] [--out DIR]

Full mode: learning rates {1, 3} x 10^k, k = -10..0, 5 runs per point; quick: 10^k,
k = -8..0, 2 runs per point. The grid reaches far down because with Step the reward
``r / z`` of the layers below meets pre-activations near zero: LFP with Step learns only at
learning rates around 1e-8 .. 1e-6.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from figures.fig_toy import BASE, COLORS, LABELS, METHODS  # noqa: E402

NAME = "toy_activations"
ACTIVATIONS = ("leakyrelu", "step", "silu", "elu", "tanh")
KEY = "model_options.nonlinearity"

#: the paper's best-of-5 test accuracies (LFP, GD) where it gives them
PAPER = {("circles", "step"): (0.722, 0.620), ("swirls", "step"): (0.695, 0.378)}

SETTINGS = {
    "full": dict(lrs=common.lr_grid((1, 3), range(-10, 1)), seeds=range(5)),
    "quick": dict(lrs=common.lr_grid((1,), range(-8, 1)), seeds=range(2)),
    "smoke": dict(lrs=[1e-3, 1e-1], seeds=[0], epochs=1, limit_train=64),
}


def points(settings):
    out = []
    for activation in ACTIVATIONS:
        for data in common.TOY_SETS:
            epochs = settings.get("epochs", common.TOY_SETS[data][1])
            for method in METHODS:
                for lr in settings["lrs"]:
                    for seed in settings["seeds"]:
                        out.append(
                            {
                                KEY: activation,
                                "data": data,
                                "epochs": epochs,
                                "method": method,
                                "lr": lr,
                                "seed": seed,
                                "data_options.seed": seed,
                            }
                        )
    return out


def summary_rows(rows):
    chance = lambda r: common.TOY_SETS[r["data"]][0]  # noqa: E731
    summary = common.summarise(rows, ("data", KEY, "method", "lr"), chance)
    out, curves = [], {}
    for data in common.TOY_SETS:
        for activation in ACTIVATIONS:
            for method in METHODS:
                by_lr = {k[3]: v for k, v in summary.items() if k[:3] == (data, activation, method)}
                if not by_lr:
                    continue
                lr = common.best_lr(by_lr)
                top_lr = max(by_lr, key=lambda x: (by_lr[x]["max"], -x))
                paper = PAPER.get((data, activation))
                out.append(
                    {
                        "data": data,
                        "activation": activation,
                        "method": method,
                        "best_lr": lr,
                        "runs": by_lr[lr]["n"],
                        "mean": by_lr[lr]["mean"],
                        "std": by_lr[lr]["std"],
                        "best_run_at_best_lr": by_lr[lr]["max"],
                        "best_run": by_lr[top_lr]["max"],
                        "best_run_lr": top_lr,
                        "paper_best_of_5": None if paper is None else paper[METHODS.index(method)],
                    }
                )
                curves[data, activation, method] = by_lr
    return out, curves


def plot(table, curves, folder, mode):
    plt = common.pyplot()
    sets = [d for d in common.TOY_SETS if any(k[0] == d for k in curves)]
    fig, axes = plt.subplots(
        len(sets), len(ACTIVATIONS), figsize=(17, 3.4 * len(sets)), squeeze=False
    )
    lookup = {(r["data"], r["activation"], r["method"]): r for r in table}
    for i, data in enumerate(sets):
        for j, activation in enumerate(ACTIVATIONS):
            ax = axes[i, j]
            title = []
            for method in METHODS:
                by_lr = curves.get((data, activation, method))
                if by_lr is None:
                    continue
                lrs = sorted(by_lr)
                mean = np.array([by_lr[lr]["mean"] for lr in lrs])
                std = np.array([by_lr[lr]["std"] for lr in lrs])
                top = np.array([by_lr[lr]["max"] for lr in lrs])
                color = COLORS[method]
                ax.plot(lrs, mean, "-o", ms=2.5, color=color, label=f"{LABELS[method]} mean")
                ax.fill_between(lrs, mean - std, mean + std, color=color, alpha=0.2)
                ax.plot(lrs, top, ":", color=color, lw=1, label=f"{LABELS[method]} best run")
                row = lookup[data, activation, method]
                ax.plot([row["best_lr"]], [row["mean"]], "*", ms=10, color=color, mec="k")
                title.append(
                    f"{LABELS[method]} {100 * row['mean']:.1f}±{100 * row['std']:.1f} "
                    f"(best {100 * row['best_run']:.1f})"
                )
            ax.set_xscale("log")
            ax.set_ylim(0, 1.03)
            ax.set_title(f"{data}, {activation}\n" + "\n".join(title), fontsize=8)
            if j == 0:
                ax.set_ylabel("test accuracy")
            if i == len(sets) - 1:
                ax.set_xlabel("learning rate")
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="lower left")
    runs = table[0]["runs"] if table else 0
    fig.suptitle(
        "Toy data, activation after every layer (output included): mean ± std over "
        f"{runs} runs per point (stars: best mean), dotted: the best single run ({mode} mode)",
        fontsize=10,
    )
    fig.tight_layout()
    common.save_figure(fig, NAME, folder, mode, dpi=80)


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    settings = SETTINGS[mode]
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        base = dataclasses.replace(
            BASE, model=common.TOY_NET, limit_train=settings.get("limit_train")
        )
        rows = common.run_grid(
            points(settings), base, folder / "runs", common.workers_of(args), f"figure {NAME}"
        )
        table, curves = summary_rows(rows)
        grid = [
            {
                "data": d,
                "activation": a,
                "method": m,
                "lr": lr,
                **{s: v[s] for s in ("n", "mean", "std", "min", "max", "diverged")},
            }
            for (d, a, m), by_lr in curves.items()
            for lr, v in sorted(by_lr.items())
        ]
        common.write_csv(folder / "lr_grid.csv", grid)
        common.write_csv(folder / "best.csv", table)
        plot(table, curves, folder, mode)
        for row in table:
            paper = row["paper_best_of_5"]
            print(
                f"{row['data']:8s} {row['activation']:9s} {row['method']:3s} lr "
                f"{row['best_lr']:.0e}: {100 * row['mean']:5.1f} +/- {100 * row['std']:4.1f} %, "
                f"best run {100 * row['best_run']:5.1f} %"
                + ("" if paper is None else f" (paper best of 5: {100 * paper:.1f} %)")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
