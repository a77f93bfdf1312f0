"""Figure 3, the weight space of one neuron: LFP on the reward landscape beside gradient descent
on the loss landscape.

One neuron without bias, ``z = w1 x1 + w2 x2`` (a Dense(2, 1, bias=False)), on two Gaussian
blobs around (-1, -1) (class 0) and (1, 1) (class 1) with standard deviation 0.2 (64 points,
seed 0). LFP uses the reward ``r = z (y - sigmoid(z))`` (``binary_sigmoid_loss``), summed over
the batch; gradient descent the mean binary cross-entropy. SGD with learning rate 0.5, no
momentum, batch 8, one epoch (8 steps), from the initial weights (0, 4), (4, 0), (2, 4), (4, 2),
(-4, -4), (-4, 4) and (4, -4).

Left: the data. Middle: the mean reward ``mean_b z_b (y_b - sigmoid(z_b))`` over the weight
plane, with the LFP trajectories. Right: the mean binary cross-entropy with the GD trajectories.
LFP's update of a weight is proportional to ``|w|``, so a weight that starts at exactly 0 stays
exactly 0 (the trajectories from (0, 4) and (4, 0) stay on the axes); GD moves it.

The steps are :func:`lfp_ref.engine.lfp_step` and :func:`lfp_ref.engine.gd_step` on the neuron
(8 steps per trajectory; no run folders: ``trajectories.csv`` holds every step).

    python figures/fig_neuron_weight_space.py [--quick | --smoke] [--out DIR]

Quick and full mode are the same computation (seconds); full mode copies the PNG to
figures/png/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy.special import expit  # noqa: E402

import lfp_ref as lfp  # noqa: E402
from figures import common  # noqa: E402
from lfp_ref.optim import SGD  # noqa: E402

NAME = "neuron_weight_space"
CENTRES = np.array([[-1.0, -1.0], [1.0, 1.0]])  # class 0, class 1
STD = 0.2
SAMPLES = 64
SEED = 0
LR = 0.5
BATCH = 8
EPOCHS = 1
INITS = ((0, 4), (4, 0), (2, 4), (4, 2), (-4, -4), (-4, 4), (4, -4))
EXTENT = 5.5
GRID = {"full": 221, "quick": 221, "smoke": 41}
METHODS = ("lfp", "gd")


def data(seed=SEED, n=SAMPLES):
    """``(x (n, 2), y (n,))``: the two blobs, shuffled."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], [n // 2, n - n // 2])
    x = CENTRES[y] + STD * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order], y[order]


def trajectory(method, init, x, y):
    """The weights before and after each step: (steps + 1, 2)."""
    neuron = lfp.Dense(2, 1, bias=False, dtype=np.float64, rng=0)
    neuron.weight[...] = np.array(init, dtype=np.float64)[None, :]
    optimizer = SGD(neuron, lr=LR, momentum=0.0)
    path = [neuron.weight[0].copy()]
    for _ in range(EPOCHS):
        for start in range(0, len(y), BATCH):
            xb, yb = x[start : start + BATCH], y[start : start + BATCH]
            if method == "lfp":
                lfp.lfp_step(neuron, optimizer, xb, yb, reward="binary_sigmoid_loss")
            else:
                lfp.gd_step(neuron, optimizer, xb, yb, loss="binary_cross_entropy_with_logits")
            path.append(neuron.weight[0].copy())
    return np.array(path)


def landscapes(x, y, points, extent):
    """Mean reward and mean binary cross-entropy on a ``points x points`` grid of weights in
    ``[-extent, extent]^2``."""
    axis = np.linspace(-extent, extent, points)
    w1, w2 = np.meshgrid(axis, axis)
    z = w1[..., None] * x[:, 0] + w2[..., None] * x[:, 1]  # (points, points, n)
    reward = (z * (y - expit(z))).mean(axis=-1)
    loss = (np.logaddexp(0, -np.abs(z)) + np.maximum(z, 0) - z * y).mean(axis=-1)
    return w1, w2, reward, loss


def accuracy(w, x, y):
    return float(((x @ w > 0).astype(int) == y).mean())


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        x, y = data()
        rows, paths, summary = [], {}, {"trajectories": []}
        for method in METHODS:
            for init in INITS:
                path = trajectory(method, init, x, y)
                paths[method, init] = path
                for step, (a, b) in enumerate(path):
                    z = x @ np.array([a, b])
                    rows.append(
                        {
                            "method": method,
                            "init": f"{init[0]},{init[1]}",
                            "step": step,
                            "w1": a,
                            "w2": b,
                            "mean_reward": float((z * (y - expit(z))).mean()),
                            "mean_bce": float(
                                (np.logaddexp(0, -np.abs(z)) + np.maximum(z, 0) - z * y).mean()
                            ),
                        }
                    )
                zero = [i for i in range(2) if init[i] == 0]
                summary["trajectories"].append(
                    {
                        "method": method,
                        "init": list(init),
                        "final": path[-1].tolist(),
                        "final_accuracy": accuracy(path[-1], x, y),
                        "zero_weight_stays_zero": (
                            None if not zero else bool(np.all(path[:, zero[0]] == 0.0))
                        ),
                    }
                )
        lfp_zero = [
            t["zero_weight_stays_zero"]
            for t in summary["trajectories"]
            if t["method"] == "lfp" and t["zero_weight_stays_zero"] is not None
        ]
        gd_zero = [
            t["zero_weight_stays_zero"]
            for t in summary["trajectories"]
            if t["method"] == "gd" and t["zero_weight_stays_zero"] is not None
        ]
        summary["lfp_zero_weights_stay_zero"] = all(lfp_zero)
        summary["gd_zero_weights_stay_zero"] = all(gd_zero)
        summary["settings"] = {
            "samples": SAMPLES,
            "std": STD,
            "lr": LR,
            "batch": BATCH,
            "epochs": EPOCHS,
            "seed": SEED,
        }
        common.write_csv(folder / "trajectories.csv", rows)
        common.write_json(folder / "summary.json", summary)

        plt = common.pyplot()
        # the plane shown holds every trajectory (LFP's first steps from (-4, -4) are long)
        extent = max(EXTENT, np.ceil(max(np.abs(p).max() for p in paths.values())) + 0.5)
        w1, w2, reward, loss = landscapes(x, y, GRID[mode], extent)
        fig, axes = plt.subplots(
            1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1.2, 1.2]}
        )
        ax = axes[0]
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "tab:red", "tab:blue"), s=10)
        ax.set_aspect("equal")
        ax.set_title(f"data: {SAMPLES} points, std {STD}")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        colors = plt.cm.tab10(np.arange(len(INITS)))
        for ax, field, method, label in (
            (axes[1], reward, "lfp", "mean reward z (y - sigmoid(z)), LFP"),
            (axes[2], loss, "gd", "mean binary cross-entropy, GD"),
        ):
            image = ax.contourf(w1, w2, field, levels=30, cmap="viridis")
            fig.colorbar(image, ax=ax, fraction=0.046)
            for color, init in zip(colors, INITS):
                path = paths[method, init]
                ax.plot(
                    path[:, 0],
                    path[:, 1],
                    "-o",
                    ms=3,
                    color=color,
                    lw=1.5,
                    label=f"({init[0]}, {init[1]})",
                )
                ax.plot(*path[0], "s", ms=6, color=color, mec="w")
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            ax.set_xlabel("w1")
            ax.set_ylabel("w2")
            ax.set_title(f"{label}: {len(paths[method, INITS[0]]) - 1} steps, lr {LR}")
        axes[2].legend(fontsize=7, loc="lower right", title="init", title_fontsize=7)
        fig.suptitle(
            "One neuron z = w1 x1 + w2 x2: LFP (reward landscape) vs GD (loss landscape); a "
            f"weight at 0 stays at 0 under LFP: {summary['lfp_zero_weights_stay_zero']}",
            fontsize=10,
        )
        fig.tight_layout()
        common.save_figure(fig, NAME, folder, mode)
        for t in summary["trajectories"]:
            print(
                f"{t['method']:3s} from {t['init']}: final {np.round(t['final'], 3).tolist()}, "
                f"accuracy {t['final_accuracy']:.3f}, zero weight stays zero: "
                f"{t['zero_weight_stays_zero']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
