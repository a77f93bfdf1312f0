"""The training side behind ``lfp-ref train``: an experiment as data, the loop, the run folder.

::

    from lfp_ref.train import TrainConfig, fit
    trainer = fit(TrainConfig(model="lenet", data="mnist-subset", method="lfp", epochs=1),
                  out="runs/lfp-lenet")
    trainer.history[-1]["test_acc"]

Modules, along the seams:

- :mod:`~lfp_ref.train.config`: :class:`TrainConfig` (model, data, method, rules, optimizer,
  schedule: everything a run needs, saved as ``config.json``) and :class:`ConfigError`;
- :mod:`~lfp_ref.train.trainer`: :class:`Trainer` and :func:`fit` (one step is the configured
  method of :mod:`lfp_ref.methods`), :func:`evaluate`, :class:`TrainingDiverged`;
- :mod:`~lfp_ref.train.runlog`: ``config.json``, ``metrics.csv`` and ``steps.csv`` (the metrics
  are defined there), :func:`read_run`, :func:`comparison_table`;
- :mod:`~lfp_ref.train.checkpoint`: the whole training state in one ``.npz``, written
  atomically; :mod:`~lfp_ref.train.progress`: the progress bar; :mod:`~lfp_ref.train.plots`:
  learning curves;
- :mod:`~lfp_ref.train.load`: :func:`load_run`, the trained model of a run folder without its
  dataset;
- :mod:`~lfp_ref.train.outputs`: what the trainer reads off a model's output (class scores,
  loss, default reward), which a model with another output layout (a spiking network's spikes
  (T, B, C)) answers itself.

A resumed run repeats the uninterrupted one bit for bit (see :mod:`lfp_ref.train.trainer`).
"""

from __future__ import annotations

from ..methods import METHODS
from .config import DTYPES, OPTIMIZERS, SCHEDULERS, ConfigError, TrainConfig, resolve_rule
from .load import LoadedRun, load_run
from .progress import Progress
from .runlog import (
    CONFIG_FILE,
    JSONL_FILE,
    LAST_CHECKPOINT,
    METRIC_COLUMNS,
    METRICS_FILE,
    STEP_COLUMNS,
    STEPS_FILE,
    TIMING_COLUMNS,
    comparison_table,
    read_csv,
    read_run,
    summary_line,
)
from .trainer import (
    EVAL_BATCH_SIZE,
    OutputRuleWarning,
    Trainer,
    TrainingDiverged,
    build_model,
    evaluate,
    fit,
    limit,
    load_data,
    weight_sparsity,
)

__all__ = [
    "CONFIG_FILE",
    "ConfigError",
    "DTYPES",
    "EVAL_BATCH_SIZE",
    "JSONL_FILE",
    "LAST_CHECKPOINT",
    "LoadedRun",
    "METHODS",
    "METRICS_FILE",
    "METRIC_COLUMNS",
    "OPTIMIZERS",
    "OutputRuleWarning",
    "Progress",
    "SCHEDULERS",
    "STEPS_FILE",
    "STEP_COLUMNS",
    "TIMING_COLUMNS",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "comparison_table",
    "evaluate",
    "fit",
    "limit",
    "load_data",
    "load_run",
    "read_csv",
    "read_run",
    "resolve_rule",
    "summary_line",
    "weight_sparsity",
]
