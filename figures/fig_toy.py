"""Figure 1, toy 2-D classification: LFP and gradient descent on blobs, circles and swirls.

The paper's toy experiment: the network 2-32-16-C with ReLU (no output activation), SGD with
momentum 0.95, batch 128, 10 epochs (15 for swirls), every learning rate of a grid, each with 5
independently drawn training sets x 5 initialisations (25 runs per point; every run builds its
model afresh from its seed: the authors' notebooks reuse one initial model for all runs, a stale
loop variable, which this script does not copy). LFP uses the softmax_loss reward summed over
the batch (the contract's default), gradient descent the mean cross-entropy.

Panels per data set (rows): final test accuracy (mean +/- std over the runs) against the
learning rate, best learning rate marked; test accuracy per epoch at the best learning rate;
decision boundaries of one run (data seed 0, init 0) at the best learning rate, LFP and GD;
that run's network, edges with ``|w| / max|w| > 0.25`` (per layer) coloured by sign; the
fraction of weights under a relative threshold (mean over the runs at the best learning rate).

    python figures/fig_toy.py [--quick | --smoke] [--workers N] [--out DIR]

Full mode thins the paper's grid ({1..10} x 10^k, k = -10..3) to {1, 2, 5} x 10^k, k = -6..0,
plus the paper's best learning rates (below 1e-6 both methods stay at chance in 10 epochs,
above 1 they diverge or collapse; see figures/README.md); quick mode uses {1, 3} x 10^k,
k = -5..-1 and 2 x 2 runs per point.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from lfp_ref.train import TrainConfig  # noqa: E402
from lfp_ref.train import checkpoint as ckpt  # noqa: E402

NAME = "toy"
METHODS = ("lfp", "gd")
LABELS = {"lfp": "LFP", "gd": "GD"}
COLORS = {"lfp": "tab:red", "gd": "tab:blue"}
EDGE_THRESHOLD = 0.25  # draw edges with |w| / max|w| above this (per layer)
REGION_COLORS = ["#fbb4ae", "#b3cde3", "#ccebc5"]  # the classes' regions (light) and points
POINT_COLORS = ["#e41a1c", "#377eb8", "#4daf4a"]
THRESHOLDS = np.linspace(0.0, 1.0, 101)  # for the fraction-of-weights panel

#: the paper's best learning rates and test accuracies (LFP, GD)
PAPER = {
    ("blobs", "lfp"): (3e-4, 1.000),
    ("blobs", "gd"): (5e-3, 1.000),
    ("circles", "lfp"): (1e-4, 0.986),
    ("circles", "gd"): (6e-3, 0.986),
    ("swirls", "lfp"): (4e-4, 0.988),
    ("swirls", "gd"): (8e-2, 0.990),
}

#: per mode: learning rates, data seeds, init seeds, and a cut for the smoke test
SETTINGS = {
    # the grid and the paper's best learning rates (3e-4, 6e-3, 4e-4, 8e-2 are off the grid)
    "full": dict(
        lrs=sorted({*common.lr_grid((1, 2, 5), range(-6, 1)), *(lr for lr, _ in PAPER.values())}),
        data_seeds=range(5),
        seeds=range(5),
    ),
    "quick": dict(lrs=common.lr_grid((1, 3), range(-5, 0)), data_seeds=range(2), seeds=range(2)),
    "smoke": dict(lrs=[1e-3, 1e-2], data_seeds=[0], seeds=[0], epochs=1, limit_train=64),
}

BASE = TrainConfig(
    model="toy",
    data="blobs",
    method="lfp",
    batch_size=128,
    optimizer="sgd",
    momentum=0.95,
    clip=None,
    reward="softmax_loss",
    dtype="float32",
)


def points(settings, datasets=tuple(common.TOY_SETS), methods=METHODS, extra=None):
    """The overrides of every run: data set, epochs, method, lr, data seed, init seed."""
    out = []
    for data in datasets:
        epochs = settings.get("epochs", common.TOY_SETS[data][1])
        for method in methods:
            for lr in settings["lrs"]:
                for data_seed in settings["data_seeds"]:
                    for seed in settings["seeds"]:
                        point = {
                            "data": data,
                            "epochs": epochs,
                            "method": method,
                            "lr": lr,
                            "data_options.seed": data_seed,
                            "seed": seed,
                        }
                        out.append({**point, **(extra or {})})
    return out


def base_for(settings, base=BASE):
    import dataclasses

    return dataclasses.replace(base, limit_train=settings.get("limit_train"))


def run(args):
    """Train (or find) every run of this mode; returns ``(rows, summary, runs folder)``."""
    mode = common.mode_of(args)
    settings = SETTINGS[mode]
    runs = common.out_dir(NAME, args) / "runs"
    rows = common.run_grid(
        points(settings), base_for(settings), runs, common.workers_of(args), f"figure {NAME}"
    )
    summary = common.summarise(
        rows, ("data", "method", "lr"), lambda r: common.TOY_SETS[r["data"]][0]
    )
    return rows, summary, runs


def best_table(summary):
    """``{(data, method): (best lr, stats)}``."""
    table = {}
    for data in common.TOY_SETS:
        for method in METHODS:
            by_lr = {k[2]: v for k, v in summary.items() if k[:2] == (data, method)}
            if by_lr:
                lr = common.best_lr(by_lr)
                table[data, method] = (lr, by_lr[lr])
    return table


def weights_of(run_dir):
    """The Dense weights of a run's last checkpoint, in layer order."""
    state = ckpt.load(Path(run_dir) / "last.npz")
    names = sorted(
        (k for k in state if k.startswith("model/") and k.endswith(".weight")),
        key=lambda k: int(k.split("/")[1].split(".")[0]),
    )
    return [state[k] for k in names]


def relative_fraction(weights, thresholds=THRESHOLDS):
    """Fraction of all weights with ``|w| / max|w of its layer| < t`` for each t."""
    rel = np.concatenate([np.abs(w).ravel() / max(np.abs(w).max(), 1e-300) for w in weights])
    return np.array([(rel < t).mean() for t in thresholds])


def draw_network(ax, weights, title):
    from matplotlib.collections import LineCollection

    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    ys = [np.linspace(-1, 1, n) if n > 1 else np.zeros(1) for n in sizes]
    kept = total = 0
    for layer, w in enumerate(weights):
        rel = np.abs(w) / max(np.abs(w).max(), 1e-300)
        total += w.size
        for sign, color in ((1, "tab:red"), (-1, "tab:blue")):
            mask = (rel > EDGE_THRESHOLD) & (np.sign(w) == sign)
            out_idx, in_idx = np.nonzero(mask)
            kept += len(out_idx)
            segments = [
                ((layer, ys[layer][i]), (layer + 1, ys[layer + 1][o]))
                for o, i in zip(out_idx, in_idx)
            ]
            ax.add_collection(
                LineCollection(segments, colors=color, linewidths=0.3 + 1.2 * rel[mask], alpha=0.6)
            )
    for layer, y in enumerate(ys):
        ax.scatter(np.full(len(y), layer), y, s=6, c="k", zorder=3)
    ax.set_xlim(-0.2, len(sizes) - 0.8)
    ax.set_ylim(-1.1, 1.1)
    ax.axis("off")
    ax.set_title(f"{title}\n{kept}/{total} edges > {EDGE_THRESHOLD} max", fontsize=8)
    return kept, total


def draw_boundary(ax, run_dir, title):
    import lfp_ref as lfp

    model, trainer = common.load_model(run_dir)
    x, y = trainer.x_test, trainer.y_test
    both = np.concatenate([trainer.x_train, x])
    lo, hi = both.min(axis=0) - 0.3, both.max(axis=0) + 0.3
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1).astype(x.dtype)
    _, logits = lfp.engine.forward(model, grid)
    classes = logits.shape[1]
    from matplotlib.colors import ListedColormap

    regions = ListedColormap(REGION_COLORS[:classes])
    points = ListedColormap(POINT_COLORS[:classes])
    ax.contourf(
        g0,
        g1,
        logits.argmax(axis=1).reshape(g0.shape),
        levels=np.arange(classes + 1) - 0.5,
        cmap=regions,
    )
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap=points, s=4, vmin=-0.5, vmax=classes - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def plot(rows, summary, runs, folder, mode):
    plt = common.pyplot()
    best = best_table(summary)
    datasets = [d for d in common.TOY_SETS if (d, "lfp") in best]
    fig, axes = plt.subplots(len(datasets), 7, figsize=(22, 3.1 * len(datasets)), squeeze=False)
    by_key = {}
    for row in rows:
        key = (row["data"], row["method"], row["lr"])
        by_key.setdefault(key, []).append(row)
    curves, fractions, networks = [], [], {}
    for r, data in enumerate(datasets):
        ax = axes[r, 0]
        for method in METHODS:
            lrs = sorted(k[2] for k in summary if k[:2] == (data, method))
            mean = np.array([summary[data, method, lr]["mean"] for lr in lrs])
            std = np.array([summary[data, method, lr]["std"] for lr in lrs])
            ax.plot(lrs, mean, "-o", ms=2.5, color=COLORS[method], label=LABELS[method])
            ax.fill_between(lrs, mean - std, mean + std, color=COLORS[method], alpha=0.2)
            lr, stats = best[data, method]
            ax.plot([lr], [stats["mean"]], "*", ms=11, color=COLORS[method], mec="k")
            paper_lr = PAPER[data, method][0]
            ax.axvline(paper_lr, color=COLORS[method], ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(0.0, 1.03)
        ax.set_ylabel(f"{data}\ntest accuracy")
        ax.set_xlabel("learning rate (dotted: paper's best)")
        (lr_l, s_l), (lr_g, s_g) = best[data, "lfp"], best[data, "gd"]
        ax.set_title(
            f"LFP {common.fmt_lr(lr_l)}: {100 * s_l['mean']:.1f}±{100 * s_l['std']:.1f}"
            f"  GD {common.fmt_lr(lr_g)}: {100 * s_g['mean']:.1f}±"
            f"{100 * s_g['std']:.1f}",
            fontsize=8,
        )
        if r == 0:
            ax.legend(loc="lower left", fontsize=8)
        ax = axes[r, 1]
        for method in METHODS:
            lr = best[data, method][0]
            histories = [
                common.metrics_of(runs / row["run_dir"])
                for row in by_key[data, method, lr]
                if row["status"] == "done"
            ]
            if not histories:
                continue
            acc = np.array([[m["test_acc"] for m in h] for h in histories])
            epochs = np.arange(1, acc.shape[1] + 1)
            ax.plot(
                epochs,
                acc.mean(0),
                "-o",
                ms=3,
                color=COLORS[method],
                label=f"{LABELS[method]} lr {common.fmt_lr(lr)}",
            )
            ax.fill_between(
                epochs,
                acc.mean(0) - acc.std(0),
                acc.mean(0) + acc.std(0),
                color=COLORS[method],
                alpha=0.2,
            )
            for e, (m, s) in enumerate(zip(acc.mean(0), acc.std(0)), start=1):
                curves.append(
                    {
                        "data": data,
                        "method": method,
                        "lr": lr,
                        "epoch": e,
                        "mean_test_acc": m,
                        "std_test_acc": s,
                        "runs": len(acc),
                    }
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.03)
        ax.set_title("at the best learning rate", fontsize=8)
        ax.legend(loc="lower right", fontsize=7)
        for c, method in enumerate(METHODS):
            lr = best[data, method][0]
            first = min(
                by_key[data, method, lr], key=lambda row: (row["data_options.seed"], row["seed"])
            )
            run_dir = runs / first["run_dir"]
            title = (
                f"{LABELS[method]} lr {common.fmt_lr(lr)}: test acc "
                f"{common.accuracy(first, common.TOY_SETS[data][0]):.3f}"
            )
            if first["status"] == "done":
                draw_boundary(axes[r, 2 + c], run_dir, title)
                kept, total = draw_network(
                    axes[r, 4 + c], weights_of(run_dir), f"{LABELS[method]} network"
                )
                networks[f"{data}/{method}"] = {
                    "run": first["run_dir"],
                    "edges_kept": kept,
                    "edges": total,
                }
        ax = axes[r, 6]
        for method in METHODS:
            lr = best[data, method][0]
            done = [row for row in by_key[data, method, lr] if row["status"] == "done"]
            if not done:
                continue
            frac = np.mean(
                [relative_fraction(weights_of(runs / row["run_dir"])) for row in done], axis=0
            )
            ax.plot(THRESHOLDS, frac, color=COLORS[method], label=LABELS[method])
            for t, f in zip(THRESHOLDS, frac):
                fractions.append(
                    {
                        "data": data,
                        "method": method,
                        "lr": lr,
                        "threshold": round(float(t), 4),
                        "fraction": f,
                    }
                )
        ax.set_xlabel("t (relative to the layer's max |w|)")
        ax.set_ylabel("fraction of weights with |w| < t max|w|")
        ax.set_title("weight magnitudes at the best lr", fontsize=8)
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(
        f"Toy data, 2-32-16-C ReLU, SGD momentum 0.95, batch 128 ({mode} mode: "
        f"{summary[next(iter(summary))]['n']} runs per point); stars: our best lr, dotted: "
        "the paper's",
        fontsize=10,
    )
    fig.tight_layout()
    common.save_figure(fig, NAME, folder, mode, dpi=80)
    return curves, fractions, networks


def write_numbers(summary, curves, fractions, networks, folder):
    grid_rows = [
        {
            "data": k[0],
            "method": k[1],
            "lr": k[2],
            **{s: v[s] for s in ("n", "mean", "std", "min", "max", "diverged")},
        }
        for k, v in sorted(summary.items())
    ]
    common.write_csv(folder / "lr_grid.csv", grid_rows)
    best_rows = []
    for (data, method), (lr, stats) in best_table(summary).items():
        paper_lr, paper_acc = PAPER[data, method]
        at_paper = summary.get((data, method, paper_lr), {})
        best_rows.append(
            {
                "data": data,
                "method": method,
                "best_lr": lr,
                "runs": stats["n"],
                "mean": stats["mean"],
                "std": stats["std"],
                "min": stats["min"],
                "max": stats["max"],
                "paper_lr": paper_lr,
                "paper_acc": paper_acc,
                "mean_at_paper_lr": at_paper.get("mean"),
                "std_at_paper_lr": at_paper.get("std"),
            }
        )
    common.write_csv(folder / "best.csv", best_rows)
    common.write_csv(folder / "curves.csv", curves)
    common.write_csv(folder / "weight_fractions.csv", fractions)
    common.write_json(folder / "networks.json", networks)
    return best_rows


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        rows, summary, runs = run(args)
        curves, fractions, networks = plot(rows, summary, runs, folder, mode)
        for row in write_numbers(summary, curves, fractions, networks, folder):
            print(
                f"{row['data']:8s} {row['method']:4s} best lr {row['best_lr']:.0e}: "
                f"{100 * row['mean']:.1f} +/- {100 * row['std']:.1f} % ({row['runs']} runs; "
                f"paper {row['paper_lr']:.0e}: {100 * row['paper_acc']:.1f} %)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
