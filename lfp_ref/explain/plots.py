"""Pictures of one LFP step, drawn from a :class:`lfp_ref.trace.Trace` (``lfp-ref explain``).

- :func:`plot_network`: a dense network with every connection drawn, twice. Left: the reward
  that flowed through each connection, ``sum_B R_{i<-j} = sign(w_ij) * F_w_ij``, coloured by sign
  and sized by magnitude; neurons coloured by the reward arriving at them. Right: the weight
  update of one plain SGD step, ``dw = lr * F = -lr * |w| * dL/dw`` (ReLU nets, softmax_loss).
- :func:`plot_layer_summaries`: the same two quantities for any network (CNNs), one heatmap per
  layer with parameters instead of one line per connection.
- :func:`plot_conservation`: per layer, the reward arriving next to where it went: to the input,
  to the bias, to the stabiliser (and BatchNorm's normalisation, Dropout's rescaling).

matplotlib (the ``plot`` extra) is imported when a function is called; figures are drawn on a
``matplotlib.figure.Figure`` (no pyplot, no global state) and saved as PNG.
"""

from __future__ import annotations

import numpy as np

from ..layers.base import LinearLayer
from ..layers.containers import Residual
from ..layers.dense import Dense

PLOT_HINT = "pip install 'lfp_ref[plot]'  (or: pip install matplotlib)"

# one colour per sign, the same in every picture: blue "more", red "less"
POSITIVE, NEGATIVE = "#2166ac", "#b2182b"


def require_matplotlib():
    """Import matplotlib's Figure, or raise an ImportError that says how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"the explain pictures need matplotlib: {PLOT_HINT}") from err
    return Figure


def is_dense_chain(trace):
    """True when the traced network is Dense layers joined by elementwise layers on (B, features)
    arrays (activations, Dropout): then every connection can be drawn."""
    if not any(isinstance(rec.layer, Dense) for rec in trace.records):
        return False
    for rec in trace.records:
        if isinstance(rec.layer, Dense):
            continue
        elementwise = not isinstance(rec.input, tuple) and rec.input.shape == rec.output.shape
        if not elementwise or rec.input.ndim != 2 or rec.feedback:
            return False
    return True


def _widths(values, scale, max_width):
    """Line widths growing with sqrt(|value| / scale), so small flows stay visible."""
    if scale <= 0:
        return np.zeros_like(values)
    return max_width * np.sqrt(np.abs(values) / scale)


def _column_names(trace, dense):
    """``input``, then each Dense layer with the elementwise layers that follow it."""
    names, current = ["input x"], None
    for rec in trace.records:
        if isinstance(rec.layer, Dense):
            current = [f"{rec.name} {rec.kind}"]
            names.append(current)
        elif current is not None:
            current.append(f"{rec.name} {rec.kind}")
    names[-1] = names[-1] + ["(logits)"]
    return [n if isinstance(n, str) else "\n".join(n) for n in names]


def plot_network(trace, path, lr=0.1, title=""):
    """Draw a Dense-only network twice and save it to ``path`` (PNG).

    Left: the reward that flowed through each connection, ``sum_B R_{i<-j} = sign(w) * F``
    (dashed: through the bias, drawn from a square above the layer's inputs), neurons coloured by
    the reward arriving at them. Right: the update of one plain SGD step, ``lr * F``. Colour is
    the sign, width grows with the magnitude relative to the largest in the panel; a network of
    at most 4 neurons per layer gets every number written on it.
    """
    Figure = require_matplotlib()
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.lines import Line2D

    dense = [rec for rec in trace.records if isinstance(rec.layer, Dense)]
    sizes = [dense[0].input.shape[1]] + [rec.output.shape[1] for rec in dense]
    small = max(sizes) <= 4  # small enough to write the numbers on it
    spread = [min(1.0, (n - 1) / 6) for n in sizes]
    ys = [np.linspace(0.5, -0.5, n) * h for n, h in zip(sizes, spread)]
    # reward arriving at each neuron, summed over the batch (inputs: the reward at x)
    neuron_reward = [dense[0].reward_leaving.sum(axis=0)]
    neuron_reward += [rec.reward_arriving.sum(axis=0) for rec in dense]
    node_scale = max(float(np.abs(v).max()) for v in neuron_reward) or 1.0
    node_norm = TwoSlopeNorm(0.0, -node_scale, node_scale)

    def through(rec, name):
        return rec.reward_through(name)

    def update(rec, name):
        return lr * rec.feedback[name]

    panels = [
        (
            through,
            "reward that flowed through each connection, summed over the batch\n"
            r"$\sum_B R_{i\leftarrow j} = \mathrm{sign}(w_{ij})\,F_{ij}$"
            "   (dashed: through the bias)",
            ("positive", "negative"),
        ),
        (
            update,
            f"update of one SGD step, lr = {lr:g}\n"
            r"$\Delta w = \mathrm{lr}\, F = -\mathrm{lr}\,|w|\,\partial L/\partial w$"
            "  (ReLU net, softmax_loss)",
            ("w increases", "w decreases"),
        ),
    ]
    fig = Figure(figsize=(14, 6.8) if small else (15, 8.5), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    max_width = 7.0 if small else 3.0
    for ax, (value_of, panel_title, labels) in zip(axes, panels):
        edges = []  # (x0, y0, x1, y1, value, dashed)
        for k, rec in enumerate(dense):
            values = value_of(rec, f"{rec.name}.weight")  # (O, I)
            for j in range(values.shape[0]):
                for i in range(values.shape[1]):
                    edges.append((k, ys[k][i], k + 1, ys[k + 1][j], values[j, i], False))
            if f"{rec.name}.bias" in rec.feedback:
                bias_y = ys[k][0] + 0.25
                ax.scatter([k], [bias_y], marker="s", s=90, color="0.35", zorder=4)
                ax.text(k - 0.06, bias_y, "b", ha="right", va="center", fontsize=9)
                for j, v in enumerate(value_of(rec, f"{rec.name}.bias")):
                    edges.append((k, bias_y, k + 1, ys[k + 1][j], v, True))
        scale = max(abs(e[4]) for e in edges)
        for x0, y0, x1, y1, v, dashed in edges:
            if v == 0:
                continue
            width = float(_widths(np.array(v), scale, max_width))
            color = POSITIVE if v > 0 else NEGATIVE
            ax.plot(
                [x0, x1],
                [y0, y1],
                color=color,
                lw=max(width, 0.2),
                ls=(0, (3, 2)) if dashed else "-",
                alpha=0.85 if small else min(1.0, 0.2 + width / max_width),
                solid_capstyle="round",
                zorder=1,
            )
            if small:
                t = 0.6 if dashed else 0.24  # near the source: its edges fan out
                ax.text(
                    x0 + t * (x1 - x0),
                    y0 + t * (y1 - y0),
                    f"{v:+.3g}",
                    fontsize=7,
                    ha="center",
                    va="center",
                    color=color,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85),
                    zorder=3,
                )
        first = value_of is through
        for k, y in enumerate(ys):
            ax.scatter(
                np.full(len(y), k),
                y,
                s=480 if small else 60,
                c=neuron_reward[k] if first else "white",
                cmap="RdBu" if first else None,
                norm=node_norm if first else None,
                edgecolors="black",
                linewidths=0.8,
                zorder=5,
            )
            if small and first:
                for i, value in enumerate(neuron_reward[k]):
                    dark = abs(value) > 0.6 * node_scale
                    ax.text(k, y[i], f"{value:+.2f}", fontsize=7, ha="center", va="center",
                            color="white" if dark else "black", zorder=6)  # fmt: skip
        ax.set_xticks(range(len(sizes)), _column_names(trace, dense), fontsize=8)
        ax.set_yticks([])
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        ax.set_xlim(-0.35, len(sizes) - 0.65)
        ax.set_title(panel_title, fontsize=10)
        ax.legend(
            handles=[
                Line2D([], [], color=POSITIVE, lw=3, label=labels[0]),
                Line2D([], [], color=NEGATIVE, lw=3, label=labels[1]),
            ],
            loc="lower left",
            fontsize=8,
            frameon=False,
        )
    mappable = axes[0].collections[-1]
    cbar = fig.colorbar(mappable, ax=axes[0], location="bottom", shrink=0.5, pad=0.02)
    cbar.set_label("reward arriving at each neuron, summed over the batch", fontsize=8)
    fig.suptitle(title or _title(trace), fontsize=11)
    fig.savefig(path)
    return path


def _title(trace):
    return (
        f"one LFP step: reward {trace.reward_name}, rule {trace.rule}, "
        f"batch of {trace.logits.shape[0]}"
    )


def _as_matrix(values):
    """A parameter array as a 2-D picture: (O, I) for a Dense weight, (O, C*kh*kw) for a conv
    kernel, (1, C) for vectors."""
    if values.ndim == 1:
        return values[None, :]
    return values.reshape(values.shape[0], -1)


def plot_layer_summaries(trace, path, lr=0.1, title=""):
    """One heatmap per weight of the network: top row the reward that flowed through each weight
    (``sign(w) * F``), bottom row the SGD update ``lr * F``; conv kernels are shown as rows of
    ``C*kh*kw`` weights per output channel. Each panel has its own symmetric colour scale."""
    Figure = require_matplotlib()
    from matplotlib.colors import TwoSlopeNorm

    weights = [
        (rec, name)
        for rec in trace.records
        for name in rec.feedback
        if name.endswith("weight") and rec.params[name].ndim >= 2
    ]
    if not weights:
        raise ValueError("the network has no weight matrices or kernels to draw")
    fig = Figure(figsize=(3.2 * len(weights) + 1, 6.5), dpi=110)
    axes = fig.subplots(2, len(weights), squeeze=False)
    rows = [
        ("reward through each weight\nsign(w) F", lambda rec, n: rec.reward_through(n)),
        (f"update of one SGD step\nlr F, lr = {lr:g}", lambda rec, n: lr * rec.feedback[n]),
    ]
    for row, (label, value_of) in enumerate(rows):
        for col, (rec, name) in enumerate(weights):
            ax = axes[row, col]
            matrix = _as_matrix(value_of(rec, name))
            scale = float(np.abs(matrix).max()) or 1.0
            image = ax.imshow(
                matrix,
                cmap="RdBu",
                norm=TwoSlopeNorm(0.0, -scale, scale),
                aspect="auto",
                interpolation="nearest",
            )
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, format="%.1e")
            shape = "x".join(str(s) for s in rec.params[name].shape)
            if row == 0:
                zero = 100.0 * np.mean(matrix == 0)
                ax.set_title(
                    f"{name} ({rec.kind}, {shape})\nsum {matrix.sum():+.3g}, {zero:.0f}% zero",
                    fontsize=9,
                )
            ax.set_xlabel("input" if rec.params[name].ndim == 2 else "input channel x kernel")
            ax.set_ylabel("output" if col else f"{label}\n\noutput", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.suptitle(
        (title or _title(trace)) + "\nblue: positive, red: negative (sum over the batch)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    return path


def _conservation_rows(trace):
    """The records shown in the bar chart: layers with a rule (linear layers, residual sums) and
    any other layer where reward appears or vanishes (Dropout in training mode)."""
    rows = []
    for rec in trace.records:
        has_rule = isinstance(rec.layer, (LinearLayer, Residual))
        scale = max(abs(rec.sum_arriving), abs(rec.sum_leaving), 1e-300)
        if has_rule or abs(rec.other) > 1e-9 * scale:
            rows.append(rec)
    return rows


def plot_conservation(trace, path, title=""):
    """Bar chart of reward totals per layer: for each layer the reward arriving (dark grey) beside
    a stacked bar of where it went (to the input, the bias, the stabiliser, BatchNorm's
    normalisation, other), positive parts stacked up and negative parts down; the black tick on
    the stacked bar marks its net total, which equals the dark bar (conservation). Parts smaller
    than 1e-9 of the layer's total are left out of the stack (their totals are in the title)."""
    Figure = require_matplotlib()
    from matplotlib.patches import Patch

    rows = _conservation_rows(trace)
    parts = [
        ("to the input (R leaving)", "#4393c3", lambda r: r.sum_leaving),
        ("bias", "#f4a582", lambda r: r.bias_share),
        ("stabiliser", "#8073ac", lambda r: np.nan_to_num(r.stabilizer_share)),
        ("normalisation (BatchNorm)", "#5aae61", lambda r: r.normalization_share),
        ("other (Dropout rescaling)", "#bababa", lambda r: r.other),
    ]
    fig = Figure(figsize=(max(9.0, 1.2 * len(rows) + 3.0), 5.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(rows))
    arriving = [r.sum_arriving for r in rows]
    ax.bar(positions - 0.2, arriving, 0.38, color="0.3", zorder=2)
    used = set()
    extent = [0.0, *arriving]
    for k, rec in enumerate(rows):
        size = max(abs(rec.sum_arriving), abs(rec.sum_leaving), 1e-300)
        up = down = 0.0
        for label, color, value_of in parts:
            v = float(value_of(rec))
            if abs(v) <= 1e-9 * size:
                continue
            ax.bar(k + 0.2, v, 0.38, bottom=up if v > 0 else down, color=color, zorder=2)
            used.add(label)
            up, down = (up + v, down) if v > 0 else (up, down + v)
        ax.plot([k + 0.01, k + 0.39], [up + down] * 2, color="black", lw=2.5, zorder=3)
        extent += [up, down]
        ax.annotate(
            f"{rec.sum_arriving:+.3g}",
            (k - 0.2, rec.sum_arriving),
            xytext=(0, 4 if rec.sum_arriving >= 0 else -4),
            textcoords="offset points",
            ha="center",
            va="bottom" if rec.sum_arriving >= 0 else "top",
            fontsize=7,
        )
    ax.axhline(0, color="black", lw=0.6)
    low, high = min(extent), max(extent)
    ax.set_ylim(low - 0.12 * (high - low), high + 0.12 * (high - low))
    ax.set_xticks(positions, [f"{r.name}\n{r.kind}" for r in rows], fontsize=8)
    ax.set_xlabel("layer (input side left, output right)")
    ax.set_ylabel("reward, summed over the batch")
    handles = [Patch(color="0.3", label="arriving at the layer's output")]
    handles += [Patch(color=c, label=label) for label, c, _ in parts if label in used]
    handles.append(Patch(facecolor="none", edgecolor="black", label="net of the stacked bar"))
    ax.legend(
        handles=handles, fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1, 0.5)
    )
    stabilizer = sum(float(np.nan_to_num(r.stabilizer_share)) for r in rows)
    worst = (
        max(abs(r.other) for r in rows if r.rho is not None)
        if any(r.rho is not None for r in rows)
        else 0.0
    )
    with_norm = any(r.normalization_share != 0 for r in rows)
    ax.set_title(
        "where the reward goes: arriving = to the input + bias + stabiliser"
        + (" + normalisation" if with_norm else "")
        + f"\nstabiliser share in total {stabilizer:+.2e}; largest rounding residue {worst:.1e}",
        fontsize=10,
    )
    ax.grid(axis="y", color="0.9", zorder=0)
    fig.suptitle(title or _title(trace), fontsize=11)
    fig.savefig(path)
    return path
