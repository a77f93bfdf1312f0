"""Figure 4, escaping SiLU's negative side: LFP turns a negative output positive where gradient
descent cannot.

One neuron ``y = silu(w1 x1 + w2 x2)`` (Dense(2, 1, bias=False) and SiLU) on the single input
x = (1, 1), trained to maximise or to minimise its output: LFP with the reward
``r = +/- sign(y) (1 - sigmoid(y))`` at the output (``maximize_neuron`` / ``minimize_neuron``),
gradient descent on the loss ``-/+ sigmoid(y)``. SGD, learning rate 1, 10 steps, from (0.5, 0.5)
and (-1, -1).

From (-1, -1) (z = -2, on SiLU's falling branch, y < 0) the gradient of ``sigmoid(y)`` points to
more negative z, towards y -> 0-: GD never makes the output positive. LFP's identity rule hands
the reward through the activation unchanged, and its update of the Dense layer moves z towards
the reward's sign: the output turns positive within a few steps.

The steps are :func:`lfp_ref.engine.lfp_step` and :func:`lfp_ref.engine.gd_step` (no run
folders: ``trajectories.csv`` holds every step).

    python figures/fig_silu_escape.py [--quick | --smoke] [--out DIR]

Quick and full mode are the same computation (a second).
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

NAME = "silu_escape"
X = np.array([[1.0, 1.0]])
Y = np.array([0])  # the rewards and losses ignore the label
LR = 1.0
STEPS = 10
INITS = ((0.5, 0.5), (-1.0, -1.0))
OBJECTIVES = {"maximise": ("maximize_neuron", -1.0), "minimise": ("minimize_neuron", 1.0)}
METHODS = ("lfp", "gd")
COLORS = {"lfp": "tab:red", "gd": "tab:blue"}


def sigmoid_loss(sign):
    """``L = sign * sigmoid(y)`` summed over the outputs, as an lfp_ref loss
    ``(logits, y, reduction) -> (L, dL/dlogits)``."""

    def loss(logits, y, reduction="mean"):
        s = expit(logits)
        return float(sign * s.sum()), sign * s * (1 - s)

    return loss


def neuron(init):
    model = lfp.Sequential(lfp.Dense(2, 1, bias=False, dtype=np.float64, rng=0), lfp.SiLU())
    model[0].weight[...] = np.array(init)[None, :]
    return model


def trajectory(method, objective, init):
    """Rows (step, w1, w2, z, y) before and after each of the steps."""
    reward, sign = OBJECTIVES[objective]
    model = neuron(init)
    optimizer = SGD(model, lr=LR, momentum=0.0)
    rows = []
    for step in range(STEPS + 1):
        w = model[0].weight[0].copy()
        z = float(X[0] @ w)
        rows.append({"step": step, "w1": w[0], "w2": w[1], "z": z, "y": z * expit(z)})
        if step == STEPS:
            break
        if method == "lfp":
            lfp.lfp_step(model, optimizer, X, Y, reward=reward)
        else:
            lfp.gd_step(model, optimizer, X, Y, loss=sigmoid_loss(sign), reduction="sum")
    return rows


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        table, paths, summary = [], {}, []
        for objective in OBJECTIVES:
            for init in INITS:
                for method in METHODS:
                    rows = trajectory(method, objective, init)
                    paths[objective, init, method] = rows
                    for row in rows:
                        table.append(
                            {
                                "objective": objective,
                                "init": f"{init[0]},{init[1]}",
                                "method": method,
                                **row,
                            }
                        )
                    ys = [r["y"] for r in rows]
                    target = (lambda v: v > 0) if objective == "maximise" else (lambda v: v < 0)
                    reached = next((r["step"] for r in rows if target(r["y"])), None)
                    summary.append(
                        {
                            "objective": objective,
                            "init": list(init),
                            "method": method,
                            "y_start": ys[0],
                            "y_final": ys[-1],
                            "first_step_with_output_of_the_wanted_sign": reached,
                        }
                    )
        common.write_csv(folder / "trajectories.csv", table)
        common.write_json(folder / "summary.json", summary)

        plt = common.pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for ax, objective in zip(axes[:2], OBJECTIVES):
            for init, style in zip(INITS, ("--", "-")):
                for method in METHODS:
                    rows = paths[objective, init, method]
                    ax.plot(
                        [r["step"] for r in rows],
                        [r["y"] for r in rows],
                        style + "o",
                        ms=3,
                        color=COLORS[method],
                        label=f"{method.upper()} from ({init[0]}, {init[1]})",
                    )
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel("step")
            ax.set_ylabel("output y = silu(z)")
            ax.set_title(f"{objective} the output (lr {LR})")
            ax.legend(fontsize=7)
        ax = axes[2]
        z = np.linspace(-6, 6, 400)
        ax.plot(z, z * expit(z), color="0.4", lw=1)
        for method in METHODS:
            rows = paths["maximise", INITS[1], method]
            ax.plot(
                [r["z"] for r in rows],
                [r["y"] for r in rows],
                "o-",
                ms=4,
                color=COLORS[method],
                label=f"{method.upper()}, maximise from (-1, -1)",
            )
        ax.set_xlim(-6, 6)
        ax.set_ylim(-0.5, 6)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("z = w1 + w2")
        ax.set_ylabel("silu(z)")
        ax.set_title("where the steps go on SiLU")
        ax.legend(fontsize=7)
        fig.suptitle("SiLU escape: y = silu(w . x), x = (1, 1); LFP crosses to y > 0, GD does not")
        fig.tight_layout()
        common.save_figure(fig, NAME, folder, mode)
        for row in summary:
            print(
                f"{row['objective']:8s} from {row['init']} {row['method']:3s}: y "
                f"{row['y_start']:+.3f} -> {row['y_final']:+.3f}, wanted sign from step "
                f"{row['first_step_with_output_of_the_wanted_sign']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
