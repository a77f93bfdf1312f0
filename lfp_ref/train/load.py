"""A trained model from its run folder, without the dataset: :func:`load_run`.

::

    import lfp_ref
    run = lfp_ref.load_run("runs/lenet-lfp")        # or load_run(path, checkpoint="epoch-002.npz")
    logits = run.model(x)                           # eval mode, the run's dtype
    run.config                                      # the TrainConfig it was trained with

The model is rebuilt from ``config.json`` (the zoo name or the user factory
``package.module:function``, with the number of classes and the input shape the run recorded)
and its parameters and buffers are read from the checkpoint (``last.npz`` by default).
"""

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from . import checkpoint as ckpt
from . import runlog
from .config import ConfigError, TrainConfig
from .runlog import LAST_CHECKPOINT
from .trainer import build_model


class LoadedRun(NamedTuple):
    """What :func:`load_run` returns.

    model : lfp_ref layer
        The trained model, in eval mode (``model.train()`` to train it further).
    config : TrainConfig
        The run's configuration (validated).
    info : dict
        config.json's info: data name and source, sizes, versions, git commit, command line.
    checkpoint : Path
        The checkpoint the parameters came from.
    epoch, batch, step : int
        The checkpoint's position: epochs done, batches done in the next epoch, optimizer
        steps.
    """

    model: object
    config: TrainConfig
    info: dict
    checkpoint: Path
    epoch: int
    batch: int
    step: int


def load_run(path, checkpoint=None):
    """The trained model of the run folder ``path`` and its configuration, without loading the
    dataset.

    Parameters
    ----------
    path : path
        A run folder written by ``lfp-ref train`` or :func:`lfp_ref.train.fit` (``config.json``
        and a checkpoint).
    checkpoint : path, optional
        The checkpoint to read, relative to ``path`` when it is not found as given (default
        ``last.npz``; e.g. ``"epoch-002.npz"`` of a run with keep_checkpoints).

    Returns
    -------
    LoadedRun
        ``(model, config, info, checkpoint, epoch, batch, step)``; the model is in eval mode.

    Raises
    ------
    ConfigError
        ``path`` is not a run folder, or its config.json does not rebuild the model (a user
        factory that is no longer importable, a config.json without the data's shape).
    CheckpointError
        The checkpoint is missing, unreadable, non-finite, or does not fit the model.
    """
    out = Path(path)
    saved = runlog.read_config_file(out)
    config = TrainConfig.from_dict(saved["config"])
    info = saved.get("info", {})
    try:
        shape = SimpleNamespace(
            num_classes=int(info["num_classes"]),
            input_shape=tuple(int(n) for n in info["input_shape"]),
            name=str(info.get("data_name", config.data)),
        )
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{out / runlog.CONFIG_FILE} does not record the data's num_classes and input_shape "
            "(a run written by an older lfp_ref); load it with lfp_ref.train.Trainer.open(path), "
            "which loads the dataset"
        ) from None
    model = build_model(config, shape)
    if checkpoint is None:
        source = out / LAST_CHECKPOINT
    else:
        source = Path(checkpoint)
        if not source.exists() and (out / source).exists():
            source = out / source
    state = ckpt.load(source)
    model_state = {k[len("model/") :]: v for k, v in state.items() if k.startswith("model/")}
    bad = ckpt.non_finite_entries(state)
    if bad:
        raise ckpt.NonFiniteStateError(
            f"{source} holds non-finite values in {ckpt.describe_non_finite(bad)}"
        )
    try:
        saved_config = TrainConfig.from_dict(json.loads(state["trainer/config"]))
        position = [int(state[f"trainer/{key}"]) for key in ("epoch", "batch", "step")]
    except (KeyError, TypeError, ValueError) as exc:
        raise ckpt.CheckpointError(f"{source} is not a training checkpoint ({exc})") from None
    if dataclasses.replace(saved_config, epochs=config.epochs) != config:
        raise ckpt.CheckpointError(
            f"{source} belongs to another configuration than {out / runlog.CONFIG_FILE}"
        )
    try:
        model.load_state_dict(model_state)
    except ValueError as exc:
        raise ckpt.CheckpointError(f"{source} does not fit the model: {exc}") from None
    model.eval()
    return LoadedRun(model, config, info, source, *position)


__all__ = ["LoadedRun", "load_run"]
