"""``lfp-ref eval RUN``: load a run's last checkpoint (or ``--checkpoint FILE``) and print its
accuracy and mean cross-entropy on the test set (``--split train`` for the training set).

The run is rebuilt from its config.json: a user model factory or data loader
(``package.module:function``) is imported again, from PYTHONPATH or the current folder."""

from __future__ import annotations

from . import CLIError
from .train import data_error_line, folder_path, importable_cwd


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained run's checkpoint",
        description=(
            "Rebuild the model of a run folder (written by lfp-ref train) from its config.json, "
            "load its checkpoint and print accuracy and mean cross-entropy, in eval mode. User "
            "factories (package.module:function) are imported from PYTHONPATH or the current "
            "folder."
        ),
    )
    parser.add_argument("run_dir", type=folder_path, metavar="RUN", help="run folder")
    parser.add_argument(
        "--checkpoint",
        type=folder_path,
        help="checkpoint file (default: RUN/last.npz; e.g. RUN/epoch-002.npz)",
    )
    parser.add_argument(
        "--split", choices=("test", "train"), default="test", help="which split (default test)"
    )
    parser.add_argument(
        "--data-root",
        type=folder_path,
        help="folder holding the dataset files, if they moved (named datasets; default: the "
        "run's own data_root, else LFP_REF_DATA or the user cache)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    import dataclasses

    from ..data import DatasetNotFoundError, DownloadError
    from ..train import ConfigError, TrainConfig, Trainer, evaluate, load_data, read_run
    from ..train.checkpoint import CheckpointError

    importable_cwd()
    try:
        data = None
        if args.data_root is not None:
            config = TrainConfig.from_dict(read_run(args.run_dir)["config"])
            data = load_data(dataclasses.replace(config, data_root=args.data_root))
        checkpoint = args.checkpoint
        if checkpoint is not None and not checkpoint.exists():
            raise CLIError(f"no checkpoint at {checkpoint}")
        trainer = Trainer.open(args.run_dir, checkpoint=checkpoint, data=data, progress=False)
        if trainer.last_checkpoint is None:
            raise CLIError(f"{args.run_dir} has no checkpoint yet (no last.npz)")
        x, y = (
            (trainer.x_test, trainer.y_test)
            if args.split == "test"
            else (trainer.x_train, trainer.y_train)
        )
        accuracy, loss = evaluate(trainer.model, x, y)
    except (DatasetNotFoundError, DownloadError) as exc:
        raise CLIError(data_error_line(exc)) from None
    except (ConfigError, CheckpointError, ImportError, FloatingPointError) as exc:
        raise CLIError(str(exc).strip().replace("\n", " ")) from None
    if accuracy is None:
        raise CLIError(f"the {args.split} split of {trainer.dataset.name} is empty")
    path, step = trainer.last_checkpoint
    position = f"epoch {trainer.epoch}" + (f" + {trainer.batch} batches" if trainer.batch else "")
    print(
        f"{args.run_dir}: {trainer.config.method} {trainer.config.model} on "
        f"{trainer.dataset.name} ({path.name}: {position}, step {step})"
    )
    print(f"{args.split} accuracy {accuracy:.4f}  loss {loss:.4f}  ({len(y)} samples)")
    return 0
