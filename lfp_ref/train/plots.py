"""Learning-curve figures for training runs (the ``plot`` extra: matplotlib, imported when a
figure is drawn, never at import time, and without pyplot, so no global backend is touched)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PLOT_HINT = "pip install 'lfp_ref[plot]'  (or: pip install matplotlib)"


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"drawing learning curves needs matplotlib: {PLOT_HINT}") from exc
    return Figure


def moving_average(values, window):
    """Trailing mean over the last ``window`` values (fewer at the start):
    ``out[i] = mean(values[max(0, i - window + 1) : i + 1])``."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.concatenate(([0.0], np.cumsum(values)))  # (n + 1,)
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def _series(rows, key):
    """``(x, y)`` of the rows where ``key`` has a value; x is the (fractional) epoch."""
    pairs = [(row["epoch"], row[key]) for row in rows if row.get(key) is not None]
    if not pairs:
        return np.empty(0), np.empty(0)
    x, y = zip(*pairs)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def learning_curves(runs, path, title=None):
    """Draw the learning curves of several runs into one PNG (or any format matplotlib knows
    from the suffix of ``path``).

    Left: the training loss per step (mean cross-entropy of each batch, smoothed by a trailing
    moving average over 1/20 of the steps). Right: test accuracy (markers at the evaluations
    during and at the end of each epoch) and the smoothed running accuracy of the training
    batches (dashed).

    Parameters
    ----------
    runs : list of dict
        As :func:`lfp_ref.train.read_run` returns them; the legend uses ``run["label"]`` if
        present, else ``method model`` from the config.
    path : path of the image to write (parent folders are created).
    title : str, optional

    Returns
    -------
    Path
    """
    Figure = _figure_class()
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for index, run in enumerate(runs):
        color = f"C{index}"
        config = run.get("config", {})
        label = run.get("label") or f"{config.get('method', '?')} {config.get('model', '')}"
        steps = run.get("steps", [])
        window = max(1, len(steps) // 20)
        x, loss = _series(steps, "loss")
        if x.size:
            ax_loss.plot(x, moving_average(loss, window), color=color, label=label)
        x, acc = _series(steps, "acc")
        if x.size:
            ax_acc.plot(x, moving_average(acc, window), color=color, ls="--", lw=1, alpha=0.7)
        test_points = dict(zip(*_series(steps, "test_acc")))
        for row in run.get("metrics", []):
            if row.get("test_acc") is not None:
                test_points[float(row["epoch"])] = row["test_acc"]
        if test_points:
            xs = sorted(test_points)
            ax_acc.plot(xs, [test_points[v] for v in xs], color=color, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy, smoothed)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    ax_acc.plot([], [], color="gray", ls="--", lw=1, label="training batches (smoothed)")
    ax_acc.plot([], [], color="gray", marker="o", label="test set")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
