"""Figure 6, LRP rules as LFP rules: learning curves of the same CNN trained by LFP with the
epsilon, z+, alpha2-beta1 and gamma rules, and by gradient descent for reference.

The runs are figures/rule_study.py's (its ``config`` and ``assignment``: the zoo's small-cnn on
the 8x8 digits, float64, SGD lr 0.05 momentum 0.9, clip 3.0, batch 32, 10 epochs, the
softmax_loss reward), each non-epsilon rule placed on the Conv2d layers only ("conv", zennit's
composite placement) and on every Dense and Conv2d layer ("all", the output layer included),
plus gradient descent with the same settings; here over 3 seeds (seed i: weights, data order and
the train/test split), through :mod:`lfp_ref.sweep`. rule_study.py prints the table of one
seed.

Panels: test accuracy per epoch (mean +/- std over the seeds), training loss per epoch, the
final test accuracies.

    python figures/fig_rules.py [--quick | --smoke] [--workers N] [--out DIR]

Quick mode: one seed, 5 epochs; smoke: 1 epoch on 64 training images.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common, rule_study  # noqa: E402

NAME = "rules"
#: (label, rule, placement) in the order plotted; placement None: gradient descent
RUNS = (
    ("epsilon", "epsilon", "all"),
    ("z+ (conv)", "zplus", "conv"),
    ("z+ (all)", "zplus", "all"),
    ("alpha2beta1 (conv)", "alpha2beta1", "conv"),
    ("alpha2beta1 (all)", "alpha2beta1", "all"),
    ("gamma (conv)", "gamma", "conv"),
    ("gamma (all)", "gamma", "all"),
    ("GD", None, None),
)
COLORS = dict(
    zip(
        (r[0] for r in RUNS),
        (
            "tab:red",
            "tab:green",
            "tab:green",
            "tab:orange",
            "tab:orange",
            "tab:purple",
            "tab:purple",
            "tab:blue",
        ),
    )
)

#: rule_study.py's defaults
STUDY = argparse.Namespace(dataset="digits", seed=0, lr=0.05, batch_size=32, epochs=10)

SETTINGS = {
    "full": dict(seeds=range(3)),
    "quick": dict(seeds=[0], epochs=5),
    "smoke": dict(seeds=[0], epochs=1, limit_train=64, limit_test=32),
}


def overrides(rule, placement):
    if placement is None:
        return {"method": "gd"}
    return {"method": "lfp", **rule_study.assignment(rule, placement)}


def kind(values):
    """What tells the runs apart: the method and the rule assignment."""
    return tuple(str(values.get(key)) for key in ("method", "rule", "rule_for"))


def base(settings):
    config = rule_study.config("epsilon", "all", STUDY)
    return dataclasses.replace(
        config,
        rule=None,  # each point sets its own assignment
        epochs=settings.get("epochs", config.epochs),
        limit_train=settings.get("limit_train"),
        limit_test=settings.get("limit_test"),
    )


def points(settings):
    return [
        {**overrides(rule, placement), "seed": seed, "data_options.seed": seed}
        for _, rule, placement in RUNS
        for seed in settings["seeds"]
    ]


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    settings = SETTINGS[mode]
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        runs = folder / "runs"
        rows = common.run_grid(
            points(settings), base(settings), runs, common.workers_of(args), f"figure {NAME}"
        )
        by_label = {label: [] for label, _, _ in RUNS}
        labels = {kind(overrides(rule, placement)): label for label, rule, placement in RUNS}
        for row in rows:
            by_label[labels[kind(row)]].append(row)
        curves, finals = [], []
        plt = common.pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
        for i, (label, rule, placement) in enumerate(RUNS):
            histories = [
                common.metrics_of(runs / r["run_dir"])
                for r in by_label[label]
                if r["status"] == "done"
            ]
            style = "--" if placement == "conv" else "-"
            if histories:
                length = min(len(h) for h in histories)
                acc = np.array([[m["test_acc"] for m in h[:length]] for h in histories])
                loss = np.array([[m["train_loss"] for m in h[:length]] for h in histories])
                epochs = np.arange(1, length + 1)
                for e in range(length):
                    curves.append(
                        {
                            "run": label,
                            "rule": rule or "gd",
                            "placement": placement,
                            "epoch": e + 1,
                            "mean_test_acc": acc[:, e].mean(),
                            "std_test_acc": acc[:, e].std(),
                            "mean_train_loss": loss[:, e].mean(),
                            "seeds": len(acc),
                        }
                    )
                axes[0].plot(
                    epochs, acc.mean(0), style + "o", ms=3, color=COLORS[label], label=label
                )
                axes[0].fill_between(
                    epochs,
                    acc.mean(0) - acc.std(0),
                    acc.mean(0) + acc.std(0),
                    color=COLORS[label],
                    alpha=0.15,
                )
                axes[1].plot(
                    epochs, loss.mean(0), style + "o", ms=3, color=COLORS[label], label=label
                )
            final = [common.accuracy(r, 10) for r in by_label[label]]
            finals.append(
                {
                    "run": label,
                    "rule": rule or "gd",
                    "placement": placement,
                    "seeds": len(final),
                    "mean_test_acc": float(np.mean(final)),
                    "std_test_acc": float(np.std(final)),
                    "mean_train_acc": float(
                        np.mean([r["final_train_acc"] or 0.0 for r in by_label[label]])
                    ),
                    "seconds": float(np.mean([r["wall_time"] for r in by_label[label]])),
                }
            )
            axes[2].bar(
                i,
                finals[-1]["mean_test_acc"],
                yerr=finals[-1]["std_test_acc"],
                color=COLORS[label],
                alpha=0.5 if placement == "conv" else 0.9,
            )
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("test accuracy")
        axes[0].set_ylim(0, 1)
        axes[0].legend(fontsize=7, loc="lower right")
        axes[0].set_title("test accuracy (mean ± std over seeds)")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("training loss (cross-entropy)")
        axes[1].set_yscale("log")
        axes[1].set_title("training loss")
        axes[2].set_xticks(range(len(RUNS)), [r[0] for r in RUNS], rotation=35, ha="right")
        axes[2].set_ylabel("final test accuracy")
        axes[2].set_ylim(0, 1)
        axes[2].axhline(0.1, color="k", lw=0.5, ls=":")
        axes[2].set_title("after the last epoch (dotted: chance)")
        seeds = len(settings["seeds"])
        fig.suptitle(
            f"LRP rules as LFP rules: small-cnn on 8x8 digits, {seeds} seed(s), "
            f"{base(settings).epochs} epochs ({mode} mode)",
            fontsize=10,
        )
        fig.tight_layout()
        common.save_figure(fig, NAME, folder, mode)
        common.write_csv(folder / "curves.csv", curves)
        common.write_csv(folder / "final.csv", finals)
        for row in finals:
            print(
                f"{row['run']:20s} test acc {row['mean_test_acc']:.3f} +/- "
                f"{row['std_test_acc']:.3f} ({row['seeds']} seeds)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
