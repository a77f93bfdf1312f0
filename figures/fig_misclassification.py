"""Figure 5, a non-differentiable objective: LFP with the misclassification reward on blobs.

The misclassification reward (``lfp_ref.rewards.misclassification``) is ``-sign(z_c)`` for
every class c whose logit beats the label's, else 0: a step function of the logits with no
useful gradient. LFP trains the toy network of figure 1 with it (SGD momentum 0.95, batch 128,
10 epochs, 5 data sets x 5 initialisations per learning rate); the softmax_loss reward is
trained beside it for reference. The paper: 97.8 % test accuracy at learning rate 3e-4.

Panels: test accuracy (mean +/- std, and the best run dotted) against the learning rate for
both rewards, best mean marked; test accuracy per epoch at the best learning rate; the decision
boundary of the best run at the best learning rate (the runs are bimodal: they learn the task
or stall near chance).

    python figures/fig_misclassification.py [--quick | --smoke] [--workers N] [--out DIR]

Full mode: learning rates {1, 2, 3, 5, 7} x 10^k, k = -7..-1, 25 runs each; quick: {1, 3} x
10^k, k = -6..-1, 2 x 2 runs.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from figures.fig_toy import BASE, draw_boundary  # noqa: E402

NAME = "misclassification"
DATA = "blobs"
REWARDS = ("misclassification", "softmax_loss")
COLORS = {"misclassification": "tab:purple", "softmax_loss": "tab:red"}
PAPER = (3e-4, 0.978)

SETTINGS = {
    "full": dict(
        lrs=common.lr_grid((1, 2, 3, 5, 7), range(-7, 0)), data_seeds=range(5), seeds=range(5)
    ),
    "quick": dict(lrs=common.lr_grid((1, 3), range(-6, 0)), data_seeds=range(2), seeds=range(2)),
    "smoke": dict(lrs=[1e-4, 1e-3], data_seeds=[0], seeds=[0], epochs=1, limit_train=64),
}


def points(settings):
    return [
        {"reward": reward, "lr": lr, "data_options.seed": data_seed, "seed": seed}
        for reward in REWARDS
        for lr in settings["lrs"]
        for data_seed in settings["data_seeds"]
        for seed in settings["seeds"]
    ]


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    settings = SETTINGS[mode]
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        runs = folder / "runs"
        base = dataclasses.replace(
            BASE,
            data=DATA,
            method="lfp",
            epochs=settings.get("epochs", common.TOY_SETS[DATA][1]),
            limit_train=settings.get("limit_train"),
        )
        rows = common.run_grid(
            points(settings), base, runs, common.workers_of(args), f"figure {NAME}"
        )
        summary = common.summarise(rows, ("reward", "lr"), lambda r: 2)
        grid = [
            {
                "reward": k[0],
                "lr": k[1],
                **{s: v[s] for s in ("n", "mean", "std", "min", "max", "diverged")},
            }
            for k, v in sorted(summary.items())
        ]
        common.write_csv(folder / "lr_grid.csv", grid)
        best = {}
        for reward in REWARDS:
            by_lr = {k[1]: v for k, v in summary.items() if k[0] == reward}
            lr = common.best_lr(by_lr)
            best[reward] = (lr, by_lr[lr])
        common.write_csv(
            folder / "best.csv",
            [
                {
                    "reward": reward,
                    "best_lr": lr,
                    "runs": s["n"],
                    "mean": s["mean"],
                    "std": s["std"],
                    "min": s["min"],
                    "max": s["max"],
                    "paper_lr": PAPER[0] if reward == "misclassification" else None,
                    "paper_acc": PAPER[1] if reward == "misclassification" else None,
                }
                for reward, (lr, s) in best.items()
            ],
        )

        plt = common.pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        ax = axes[0]
        for reward in REWARDS:
            lrs = sorted(k[1] for k in summary if k[0] == reward)
            mean = np.array([summary[reward, lr]["mean"] for lr in lrs])
            std = np.array([summary[reward, lr]["std"] for lr in lrs])
            ax.plot(lrs, mean, "-o", ms=2.5, color=COLORS[reward], label=reward)
            ax.fill_between(lrs, mean - std, mean + std, color=COLORS[reward], alpha=0.2)
            top = [summary[reward, lr]["max"] for lr in lrs]
            ax.plot(lrs, top, ":", lw=1, color=COLORS[reward], label=f"{reward}, best run")
            lr, s = best[reward]
            ax.plot([lr], [s["mean"]], "*", ms=11, color=COLORS[reward], mec="k")
        ax.axvline(PAPER[0], color=COLORS["misclassification"], ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("learning rate (dotted: the paper's 3e-4)")
        ax.set_ylabel("test accuracy")
        lr, s = best["misclassification"]
        ax.set_title(
            f"LFP on blobs: misclassification reward best {100 * s['mean']:.1f}±"
            f"{100 * s['std']:.1f} % at {common.fmt_lr(lr)}",
            fontsize=9,
        )
        ax.legend(fontsize=8, loc="lower left")
        ax = axes[1]
        for reward in REWARDS:
            lr = best[reward][0]
            histories = [
                common.metrics_of(runs / r["run_dir"])
                for r in rows
                if r["reward"] == reward and r["lr"] == lr and r["status"] == "done"
            ]
            if histories:
                acc = np.array([[m["test_acc"] for m in h] for h in histories])
                epochs = np.arange(1, acc.shape[1] + 1)
                ax.plot(
                    epochs,
                    acc.mean(0),
                    "-o",
                    ms=3,
                    color=COLORS[reward],
                    label=f"{reward}, lr {common.fmt_lr(lr)}",
                )
                ax.fill_between(
                    epochs,
                    acc.mean(0) - acc.std(0),
                    acc.mean(0) + acc.std(0),
                    color=COLORS[reward],
                    alpha=0.2,
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.03)
        ax.set_title("at the best learning rate", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        # the runs are bimodal (they learn the task or stall near chance): show the best one
        lr = best["misclassification"][0]
        at_best = [r for r in rows if r["reward"] == "misclassification" and r["lr"] == lr]
        top = max(
            at_best, key=lambda r: (common.accuracy(r, 2), -r["data_options.seed"], -r["seed"])
        )
        if top["status"] == "done":
            draw_boundary(
                axes[2],
                runs / top["run_dir"],
                f"misclassification reward, lr {common.fmt_lr(lr)}: the best of "
                f"{len(at_best)} runs, test acc {top['final_test_acc']:.3f}",
            )
        fig.suptitle(
            f"A non-differentiable objective: LFP with the misclassification reward "
            f"({mode} mode, {s['n']} runs per point)",
            fontsize=10,
        )
        fig.tight_layout()
        common.save_figure(fig, NAME, folder, mode)
        for reward, (lr, s) in best.items():
            print(
                f"{reward:17s} best lr {lr:.0e}: {100 * s['mean']:.1f} +/- {100 * s['std']:.1f} %"
                f" ({s['n']} runs)"
            )
        print(f"paper: misclassification reward {100 * PAPER[1]:.1f} % at {PAPER[0]:.0e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
