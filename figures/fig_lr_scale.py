"""Figure 7, the learning-rate scale: how much smaller LFP's best learning rate is than gradient
descent's on the toy data, beside what the numerical contract predicts.

The prediction (docs/numerical-contract.md, sections 2.4 and 5.5): for a ReLU network with the
softmax_loss reward, LFP's feedback is ``F = -|w| * dL_sum/dw`` (implicit weight scaling, the
cross-entropy summed over the batch), so at equal learning rate one LFP-SGD step on a weight is
``B |w|`` times the step of gradient descent on the mean cross-entropy (B the batch size).
Equal steps then need ``lr_LFP / lr_GD ~ 1 / (B |w|)``. Two numbers stand for ``|w|``: the mean
absolute weight of the toy network at initialisation and after training (the LFP runs at their
best learning rate), and the measured ratio of the step norms ``||F|| / ||g_mean||`` of the
initial networks on one batch of 128 (which weighs each ``|w|`` by its gradient).

The measured ratio is the best LFP learning rate over the best GD learning rate of figure 1
(``figures/fig_toy.py``, the same mode; its runs are reused, or trained here when missing).
The grid's spacing limits how precisely a best learning rate is known: a factor of about 2 in
full mode ({1, 2, 5} x 10^k), 3 in quick mode ({1, 3} x 10^k).

    python figures/fig_lr_scale.py [--quick | --smoke] [--workers N] [--out DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import lfp_ref as lfp  # noqa: E402
from figures import common, fig_toy  # noqa: E402
from lfp_ref import zoo  # noqa: E402
from lfp_ref.data import batches, load  # noqa: E402

NAME = "lr_scale"
BATCH = fig_toy.BASE.batch_size
INIT_SEEDS = range(5)


def mean_abs_weight(weights):
    """The mean of ``|w|`` over every weight (biases excluded)."""
    return float(np.mean(np.concatenate([np.abs(w).ravel() for w in weights])))


def step_norm_ratio(data, seed):
    """``||F|| / ||g||`` on the first batch of 128 of the initial network (init ``seed``): F the
    LFP feedback (softmax_loss, summed), g the gradient of the mean cross-entropy; both over
    every parameter."""
    dataset = load(data, seed=seed, dtype=np.float64)
    model = zoo.build(
        "toy", num_classes=dataset.num_classes, input_shape=(2,), seed=seed, dtype=np.float64
    )
    x, y = next(iter(batches(dataset.x_train, dataset.y_train, BATCH, seed=seed)))
    feedback = lfp.feedback(model, x, y, eps=1e-12)
    gradient = lfp.gradients(model, x, y)
    return float(
        np.sqrt(sum(feedback.squared_norms.values()) / sum(gradient.squared_norms.values()))
    )


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        rows, summary, runs = fig_toy.run(args)  # figure 1's runs (skipped when finished)
        best = fig_toy.best_table(summary)
        by_key = {}
        for row in rows:
            by_key.setdefault((row["data"], row["method"], row["lr"]), []).append(row)
        table = []
        for data in common.TOY_SETS:
            lr_lfp, lr_gd = best[data, "lfp"][0], best[data, "gd"][0]
            init_models = [
                zoo.build("toy", num_classes=common.TOY_SETS[data][0], input_shape=(2,), seed=s)
                for s in INIT_SEEDS
            ]
            w_init = np.mean(
                [
                    mean_abs_weight([p for n, p in m.named_parameters() if n.endswith("weight")])
                    for m in init_models
                ]
            )
            trained = [
                fig_toy.weights_of(runs / r["run_dir"])
                for r in by_key[data, "lfp", lr_lfp]
                if r["status"] == "done"
            ]
            w_trained = np.mean([mean_abs_weight(w) for w in trained]) if trained else np.nan
            steps = np.mean([step_norm_ratio(data, s) for s in INIT_SEEDS])
            paper_lfp, paper_gd = fig_toy.PAPER[data, "lfp"][0], fig_toy.PAPER[data, "gd"][0]
            table.append(
                {
                    "data": data,
                    "best_lr_lfp": lr_lfp,
                    "best_lr_gd": lr_gd,
                    "measured_ratio": lr_lfp / lr_gd,
                    "paper_ratio": paper_lfp / paper_gd,
                    "mean_abs_w_init": w_init,
                    "mean_abs_w_trained_lfp": w_trained,
                    "predicted_ratio_init": 1.0 / (BATCH * w_init),
                    "predicted_ratio_trained": 1.0 / (BATCH * w_trained),
                    "step_norm_ratio_init": steps,
                    "predicted_ratio_step_norms": 1.0 / steps,
                }
            )
        common.write_csv(folder / "ratios.csv", table)

        plt = common.pyplot()
        fig, ax = plt.subplots(figsize=(8.5, 4.6))
        x = np.arange(len(table))
        series = (
            ("measured_ratio", "ours: best lr LFP / best lr GD", "o", "k"),
            ("paper_ratio", "the paper's best lrs", "D", "tab:gray"),
            ("predicted_ratio_init", "1 / (B mean|w|), init", "v", "tab:green"),
            ("predicted_ratio_trained", "1 / (B mean|w|), trained LFP", "^", "tab:olive"),
            ("predicted_ratio_step_norms", "||g_mean|| / ||F||, init", "s", "tab:purple"),
        )
        for offset, (key, label, marker, color) in zip(np.linspace(-0.2, 0.2, len(series)), series):
            ax.plot(
                x + offset,
                [row[key] for row in table],
                marker,
                color=color,
                ms=8,
                label=label,
                ls="none",
            )
        ax.set_yscale("log")
        ax.set_xticks(x, [row["data"] for row in table])
        ax.set_ylabel("lr_LFP / lr_GD")
        ax.set_xlim(-0.6, len(table) - 0.4)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(
            f"Learning-rate scale, batch {BATCH} ({mode} mode; grid spacing limits the "
            "measured ratio to a factor ~2-3)",
            fontsize=9,
        )
        fig.tight_layout()
        common.save_figure(fig, NAME, folder, mode)
        for row in table:
            print(
                f"{row['data']:8s} best lr LFP {row['best_lr_lfp']:.0e} / GD "
                f"{row['best_lr_gd']:.0e} = {row['measured_ratio']:.3g} (paper "
                f"{row['paper_ratio']:.3g}); predicted 1/(B|w|) {row['predicted_ratio_init']:.3g}"
                f" at init, {row['predicted_ratio_trained']:.3g} trained, step norms "
                f"{row['predicted_ratio_step_norms']:.3g}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
