"""``lfp-ref export RUN --format torch|npz|safetensors``: a trained run's model in a file other
tools read, without the dataset (:func:`lfp_ref.load_run`).

::

    lfp-ref export runs/lenet-lfp --format npz            # runs/lenet-lfp/model.npz
    lfp-ref export runs/lenet-lfp --format torch --out lenet.pt
    lfp-ref export runs/lenet-lfp --format safetensors --checkpoint epoch-002.npz

=============  ==============================================================================
npz            the state dict (torch names: ``0.weight``, ...) with ``np.savez``; load with
               ``model.load_state_dict(dict(np.load("model.npz")))``
safetensors    the same state dict with ``safetensors.numpy.save_file`` (needs the
               ``safetensors`` package); load with ``safetensors.numpy.load_file`` (NumPy) or
               ``safetensors.torch.load_file`` (torch tensors, same names)
torch          the whole ``torch.nn`` module of :func:`lfp_ref.verify.interop.to_torch` (eval
               mode, the run's dtype) with ``torch.save(module, path)``; load with
               ``torch.load(path, weights_only=False)`` (a pickle: load only files you trust;
               residual models also need lfp_ref importable, for their TorchResidual blocks)
=============  ==============================================================================

The file is written atomically; an existing file is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json

from . import CLIError
from .train import folder_path, importable_cwd

FORMATS = ("npz", "safetensors", "torch")
SUFFIXES = {"npz": ".npz", "safetensors": ".safetensors", "torch": ".pt"}
SAFETENSORS_HINT = "pip install safetensors"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="write a trained run's model as npz, safetensors or a torch module",
        description=(
            "Rebuild the model of a run folder from its config.json (without the dataset), load "
            "its checkpoint, and write it for other tools: npz (np.savez of the state dict, "
            "torch names), safetensors (safetensors.numpy.save_file of the same state dict) or "
            "torch (torch.save of the whole torch.nn module from lfp_ref.verify.interop."
            "to_torch, in eval mode). Prints the line that loads the file."
        ),
    )
    parser.add_argument("run_dir", type=folder_path, metavar="RUN", help="run folder")
    parser.add_argument(
        "--format", choices=FORMATS, default="npz", help="file format (default: npz)"
    )
    parser.add_argument(
        "--out",
        type=folder_path,
        metavar="FILE",
        help="file to write (default: RUN/model.npz, RUN/model.safetensors or RUN/model.pt)",
    )
    parser.add_argument(
        "--checkpoint",
        type=folder_path,
        help="checkpoint to export, e.g. epoch-002.npz (default: RUN/last.npz)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing FILE (default: off)"
    )
    parser.set_defaults(func=run)
    return parser


def _npz_bytes(state, file):
    import numpy as np

    np.savez(file, **state)


def _safetensors_bytes(state, metadata):
    try:
        from safetensors.numpy import save
    except ImportError:
        raise CLIError(
            f"--format safetensors needs the safetensors package: {SAFETENSORS_HINT} (or use "
            "--format npz)"
        ) from None
    return save(state, metadata=metadata)


def _torch_module(model):
    from ..verify import interop

    try:
        return interop.to_torch(model), interop.import_torch()
    except ImportError:
        raise CLIError(
            "--format torch needs torch: pip install torch (or make crosscheck); or use "
            "--format npz / safetensors"
        ) from None
    except TypeError as exc:  # a layer without a torch counterpart
        raise CLIError(f"--format torch: {exc}") from None


def run(args):
    from .. import load_run
    from ..train import ConfigError
    from ..train.checkpoint import CheckpointError, atomic_write

    importable_cwd()
    try:
        loaded = load_run(args.run_dir, checkpoint=args.checkpoint)
    except (ConfigError, CheckpointError, ImportError) as exc:
        raise CLIError(str(exc).strip().replace("\n", " ")) from None
    target = args.out or args.run_dir / f"model{SUFFIXES[args.format]}"
    if target.is_dir():
        raise CLIError(f"--out {target} is a folder; give a file name")
    if target.exists() and not args.overwrite:
        raise CLIError(f"{target} exists; add --overwrite to replace it, or choose --out")
    model, config = loaded.model, loaded.config
    state = model.state_dict()  # copies, C-contiguous, torch names
    source = f"{loaded.checkpoint} (epoch {loaded.epoch}, step {loaded.step})"
    if args.format == "npz":
        atomic_write(target, lambda file: _npz_bytes(state, file))
        what = f"the state dict ({len(state)} arrays, torch names) with np.savez"
        loader = [
            "import numpy as np",
            f"state = dict(np.load({str(target)!r}))  # then model.load_state_dict(state)",
        ]
    elif args.format == "safetensors":
        metadata = {
            "format": "np",
            "lfp_ref_config": json.dumps(config.to_dict(), sort_keys=True),
            "lfp_ref_checkpoint": source,
        }
        data = _safetensors_bytes(state, metadata)
        atomic_write(target, lambda file: file.write(data))
        what = f"the state dict ({len(state)} arrays, torch names) with safetensors"
        loader = [
            "from safetensors.numpy import load_file  # or safetensors.torch, for tensors",
            f"state = load_file({str(target)!r})  # then model.load_state_dict(state)",
        ]
    else:
        module, torch = _torch_module(model)
        atomic_write(target, lambda file: torch.save(module, file))
        what = f"the torch.nn module ({type(module).__name__}, eval mode) with torch.save"
        loader = [
            "import torch",
            f"model = torch.load({str(target)!r}, weights_only=False)  # a pickle: trusted files",
        ]
    print(f"wrote {target}: {config.method} {config.model} from {source}, {what}")
    print("load it with:")
    for line in loader:
        print(f"    {line}")
    return 0
