"""The GPU benchmark (issue 14): lfp_ref's LFP and GD steps on the cuda backend beside torch's GD
step and lfprop's LFP step on the same GPU, float32, with the device's GEMM rate.

    python -m benchmarks.gpu                 # ~2-3 minutes on an H100 / H200
    python -m benchmarks.gpu --quick         # fewer rounds, shorter blocks: under a minute
    python -m benchmarks.gpu --out FILE      # the report (default benchmarks/out/RESULTS-gpu.md)

Without a device (CuPy not importable, no CUDA device, or ``NUMBA_ENABLE_CUDASIM`` set) it prints
one line saying why the GPU section is skipped and exits 0, so ``make bench`` can always call it.

What it times, for each benchmark model of the CPU suite (``benchmarks/models.py``: MLP-1000,
MLP-256, LeNet-5, the paper's LeNet, the small VGG, resnet-small) at batch 128 and 1024,
float32, from the same weights (torch's default initialisation, seed 0) on the same batch:

- ``lfp_ref LFP`` and ``lfp_ref GD``: ``engine.lfp_step`` / ``engine.gd_step`` on the model moved
  with ``model.to("cuda")``, the input a CuPy array, the labels on the host (as docs/gpu.md
  shows); synchronised with CuPy (``cupy.cuda.Device().synchronize()``);
- ``torch GD``: ``benchmarks.peers.torch_gd_step`` on the torch twin
  (``lfp_ref.verify.interop.to_torch``) moved to CUDA, synchronised with
  ``torch.cuda.synchronize()``;
- ``lfprop LFP``: lfprop 1.0.0's documented LFP step (as ``benchmarks.peers.lfprop_step``, with
  its reward on the CUDA device) on another torch twin, where lfprop imports; otherwise skipped
  with a note.

All of them run SGD (lr, momentum) with global-norm clipping as the CPU suite
(``benchmarks.run``). torch runs in IEEE float32 (TF32 off for its matmuls and cuDNN
convolutions, ``--torch-tf32`` leaves torch's defaults), as CuPy's matmul does unless
``CUPY_TF32=1``.

Timing: after ``--warmup`` steps of each contender, ``--rounds`` rounds; in each round every
contender in turn (who goes first rotates) runs a block of back-to-back steps lasting at least
``--block`` seconds, the device synchronised before and after the block; a round's time per step
is the block's time over its steps (GPU work of consecutive steps overlaps the host's Python, as
in training). Reported: the median over rounds; a ratio is the median over rounds of the ratio
within a round (both contenders saw the same state of the machine). The GEMM rate is CuPy's
float32 matmul on square matrices, synchronised, the best size's median; "GEMM-rate bound" is a
step's contraction FLOPs (``models.training_gemm_flops``) at that rate.

Targets (issue 14, batch 1024, every model): lfp_ref's LFP step <= 1.2x torch's GD step and
<= 0.7x lfprop's LFP step.

``--smoke --simulate`` runs the same loop in seconds on tiny models under the Numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, NumPy standing in for CuPy, torch on the CPU): the code path that
tests/test_bench_gpu.py runs in CI. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.run import CLIP, LR, MODEL_ORDER, MOMENTUM, fmt_ratio, ms

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out" / "RESULTS-gpu.md"

BATCHES = (128, 1024)
#: issue 14's targets, at TARGET_BATCH for every model
TARGET_BATCH = 1024
TORCH_GD_TARGET = 1.2
LFPROP_TARGET = 0.7

LFP, GD, TORCH_GD, LFPROP = "lfp_ref LFP", "lfp_ref GD", "torch GD", "lfprop LFP"
CONTENDERS = (LFP, GD, TORCH_GD, LFPROP)

#: (warm-up steps, rounds, seconds per block, GEMM sizes, GEMM repeats) per mode
SETTINGS = {
    "full": (3, 7, 0.25, (1024, 4096, 8192), 10),
    "quick": (2, 3, 0.1, (1024, 4096), 5),
    "smoke": (1, 2, 0.0, (32,), 2),
}

#: --smoke: tiny variants of the benchmark models (zoo.build keywords replacing the spec's) and
#: batches, for the simulator
SMOKE_MODELS = {
    "mlp-1000": {"input_shape": (1, 4, 4), "widths": (8, 8)},
    "mlp-256": {"input_shape": (1, 4, 4), "widths": (6, 6)},
    "lenet-5": {"input_shape": (1, 16, 16)},
    "lenet-paper": {"input_shape": (1, 16, 16)},
    "vgg-small": {"input_shape": (3, 4, 4), "widths": (2, 3)},
    "resnet-small": {"input_shape": (3, 4, 4), "widths": (2, 3)},
}
SMOKE_BATCHES = (2, 4)


# ------------------------------------------------------------------------------------------
# the device
# ------------------------------------------------------------------------------------------


@dataclass
class Device:
    """Where the lfp_ref contenders run: the array namespace, the host-to-device copy, the
    synchronisation, and the torch device of the peers."""

    name: str
    xp: object
    to_device: object  # numpy array -> device array
    synchronize: object
    torch_device: str
    info: dict = field(default_factory=dict)
    simulated: bool = False


def _cuda_version(number):
    """CUDA's integer version (13000) as "13.0"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def detect(simulate=False):
    """``(Device, "")`` or ``(None, why the GPU section is skipped)``.

    A device needs CuPy and a CUDA device that CuPy sees, with the Numba CUDA simulator off.
    With both present, a cuda backend that cannot be built (numba-cuda missing or unable to use
    the device) raises: that is an error, not a machine without a GPU. ``simulate``: the
    simulator (``NUMBA_ENABLE_CUDASIM=1`` before numba's import), NumPy as the array namespace.
    """
    sim_env = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    if simulate:
        if not sim_env:
            return None, "--simulate needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported)"
        from lfp_ref.kernels import get_backend
        from lfp_ref.kernels.cuda import simulator_enabled

        if not simulator_enabled():
            return None, "NUMBA_ENABLE_CUDASIM is set but numba was imported before it was"
        bk = get_backend("cuda")
        device = Device(
            name="Numba CUDA simulator (no device; the numbers mean nothing)",
            xp=np,
            to_device=bk.contiguous,
            synchronize=lambda: None,
            torch_device="cpu",
            simulated=True,
        )
        return device, ""
    if sim_env:
        return None, (
            "NUMBA_ENABLE_CUDASIM is set: the Numba CUDA simulator is not a device (unset it on "
            "a machine with a GPU)"
        )
    try:
        import cupy
    except ImportError as err:
        return None, (
            f"CuPy is not installed ({err}); on a machine with an NVIDIA GPU: "
            "pip install 'lfp_ref[gpu]' (docs/gpu.md)"
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, no device
        return None, f"CuPy {cupy.__version__} finds no CUDA device ({type(err).__name__}: {err})"
    if count < 1:
        return None, f"CuPy {cupy.__version__} finds no CUDA device"
    from lfp_ref.kernels import get_backend

    bk = get_backend("cuda")  # CudaUnavailableError says what is missing
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    info = {
        "device": name,
        "memory_gib": props["totalGlobalMem"] / 2**30,
        "multiprocessors": props["multiProcessorCount"],
        "compute_capability": f"{props['major']}.{props['minor']}",
        "driver_cuda": _cuda_version(cupy.cuda.runtime.driverGetVersion()),
        "runtime_cuda": _cuda_version(cupy.cuda.runtime.runtimeGetVersion()),
        "device_count": count,
    }
    return (
        Device(
            name=name,
            xp=cupy,
            to_device=bk.contiguous,
            synchronize=dev.synchronize,
            torch_device="cuda",
            info=info,
        ),
        "",
    )


# ------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------


def summarize(per_step):
    """Median and quartiles (seconds) of a contender's per-round times per step."""
    t = np.asarray(per_step, dtype=np.float64)
    return {
        "median": float(np.median(t)),
        "q25": float(np.percentile(t, 25)),
        "q75": float(np.percentile(t, 75)),
        "rounds": [float(v) for v in t],
    }


def time_interleaved(contenders, rounds, block_seconds, warmup=3, clock=time.perf_counter):
    """Seconds per step of each contender, interleaved (see the module docstring).

    ``contenders``: name -> ``(step, synchronize)``. After ``warmup`` steps of each, ``rounds``
    rounds; in a round each contender in turn (the first rotates) runs a block of back-to-back
    steps, at least one and until ``block_seconds`` have passed, with ``synchronize()`` before
    the block's clock starts and before it stops. Returns name -> :func:`summarize` of the
    per-round times per step, plus ``steps``, the steps timed.
    """
    if not contenders:
        return {}
    for step, synchronize in contenders.values():
        for _ in range(warmup):
            step()
        synchronize()
    names = list(contenders)
    per_step = {name: [] for name in names}
    steps = dict.fromkeys(names, 0)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            step, synchronize = contenders[name]
            synchronize()
            start = clock()
            calls = 0
            while calls < 1 or clock() - start < block_seconds:
                step()
                calls += 1
            synchronize()
            per_step[name].append((clock() - start) / calls)
            steps[name] += calls
    return {name: {**summarize(per_step[name]), "steps": steps[name]} for name in names}


def round_ratio(times, a, b):
    """The median over rounds of ``a / b`` within each round (None when either is missing)."""
    if a not in times or b not in times:
        return None
    pairs = zip(times[a]["rounds"], times[b]["rounds"], strict=True)
    return float(np.median([x / y for x, y in pairs]))


def gemm_rate(device, sizes, repeats):
    """FLOP/s of float32 square matmuls on the device (``xp.matmul`` into a preallocated
    output), synchronised: per size the best and the median of ``repeats`` timings, each of
    enough products (at least one) to take milliseconds."""
    xp = device.xp
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        a = device.to_device(rng.random((n, n), dtype=np.float32))
        b = device.to_device(rng.random((n, n), dtype=np.float32))
        c = device.to_device(np.empty((n, n), np.float32))
        per = max(1, (4096 // n) ** 3) if not device.simulated else 1
        xp.matmul(a, b, out=c)
        device.synchronize()
        times = []
        for _ in range(repeats):
            device.synchronize()
            start = time.perf_counter()
            for _ in range(per):
                xp.matmul(a, b, out=c)
            device.synchronize()
            times.append((time.perf_counter() - start) / per)
        flops = 2.0 * n**3
        out[n] = {"best": flops / min(times), "median": flops / float(np.median(times))}
    return out


def peak_rate(gemm):
    """The GEMM rate the bounds use: the largest median over the sizes (FLOP/s)."""
    return max(v["median"] for v in gemm.values()) if gemm else None


# ------------------------------------------------------------------------------------------
# models and contenders
# ------------------------------------------------------------------------------------------


def build(name, smoke=False, dtype=np.float32):
    """The benchmark model ``name`` (``benchmarks.models``), or its tiny variant for --smoke."""
    from benchmarks import models
    from lfp_ref import zoo

    if not smoke:
        return models.build(name, dtype)
    spec = models.MODELS[name]
    options = {**spec.options, **SMOKE_MODELS[name]}
    return zoo.build(spec.model, num_classes=models.NUM_CLASSES, seed=0, dtype=dtype, **options)


def make_batch(name, batch, smoke=False, dtype=np.float32):
    """Inputs in [0, 1) and labels, the same for every contender (host arrays)."""
    from benchmarks import models

    shape = SMOKE_MODELS[name]["input_shape"] if smoke else None
    return models.batch(name, batch_size=batch, dtype=dtype, input_shape=shape)


def set_torch_fp32(torch, tf32=False):
    """IEEE float32 in torch's matmuls and cuDNN convolutions (cuDNN's default is TF32 on
    Ampere and later); ``tf32``: leave torch's defaults. Returns what was set, for the report."""
    if tf32:
        return "torch defaults (cuDNN convolutions may use TF32)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # torch >= 2.9
            torch.backends.cuda.matmul.fp32_precision = "ieee"
            torch.backends.cudnn.conv.fp32_precision = "ieee"
            return 'torch matmul and cuDNN conv fp32_precision "ieee" (no TF32)'
        except AttributeError:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            return "torch allow_tf32 off for matmul and cuDNN (no TF32)"


def shim_transformers_fx():
    """lxt 0.6.1 (lfprop's propagator) imports ``HFTracer`` and ``get_concrete_args`` from
    ``transformers.utils.fx``, which transformers 5 removed (transformers#41683). lfprop's LFP
    composites never trace (no dummy inputs, no function rules: lxt's ``Composite.register``
    only traces then), so a stand-in module lets the import succeed: ``torch.fx.Tracer`` as
    ``HFTracer``, a ``get_concrete_args`` that raises. Returns a note when installed, else ""."""
    try:
        import transformers.utils.fx  # noqa: F401

        return ""
    except ModuleNotFoundError as err:
        if err.name != "transformers.utils.fx":
            return ""  # transformers itself is missing: peers.available() says so
    except Exception:  # a broken transformers: peers.available() reports it
        return ""
    import types

    import torch.fx
    import transformers.utils

    def get_concrete_args(model, input_names):
        raise NotImplementedError("transformers.utils.fx stand-in: tracing is not available")

    stub = types.ModuleType("transformers.utils.fx")
    stub.HFTracer = torch.fx.Tracer
    stub.get_concrete_args = get_concrete_args
    sys.modules["transformers.utils.fx"] = stub
    transformers.utils.fx = stub
    version = getattr(sys.modules.get("transformers"), "__version__", "?")
    return (
        f"transformers {version} has no transformers.utils.fx (removed in 5.0), which lxt 0.6.1 "
        "imports: a stand-in module was installed (lfprop's LFP step never traces)"
    )


def lfprop_step(model, device, lr, momentum, clip_norm, eps=1e-6):
    """``benchmarks.peers.lfprop_step`` with lfprop's reward on ``device``."""
    from benchmarks import peers

    return peers.lfprop_step(model, lr, momentum, clip_norm, eps, device=device)


@dataclass
class Peers:
    """What the peer columns can use: torch (None without it), whether lfprop imports, notes."""

    torch: object = None
    lfprop: bool = False
    precision: str = ""
    notes: list = field(default_factory=list)


def setup_peers(device, wanted=True, tf32=False):
    """torch on the device's torch device and lfprop, each where it works; notes say why not."""
    peers = Peers()
    if not wanted:
        peers.notes.append("torch and lfprop skipped (--no-peers)")
        return peers
    try:
        import torch
    except ImportError as err:
        peers.notes.append(f"torch is not installed ({err}): no torch or lfprop columns")
        return peers
    if device.torch_device == "cuda" and not torch.cuda.is_available():
        peers.notes.append(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device: no "
            "torch or lfprop columns"
        )
        return peers
    peers.torch = torch
    peers.precision = set_torch_fp32(torch, tf32)
    shim = shim_transformers_fx()
    if shim:
        peers.notes.append(shim)
    from benchmarks import peers as cpu_peers

    peers.lfprop, why = cpu_peers.available()
    if not peers.lfprop:
        peers.notes.append(
            f"lfprop does not import ({why}): no lfprop column (pip install lfprop==1.0.0 "
            "lxt==0.6.1 zennit==0.5.1, or carry their wheels: benchmarks/device_check.sh)"
        )
    return peers


def config_contenders(name, batch, device, peers, smoke=False):
    """The contenders of one configuration, name -> ``(step, synchronize)``, each from the same
    weights on the same batch, and the step's contraction FLOPs."""
    from benchmarks import models
    from benchmarks import peers as cpu_peers
    from lfp_ref import engine, optim

    x_host, y = make_batch(name, batch, smoke)
    x = device.to_device(x_host)
    lfp_model, gd_model = (build(name, smoke).to("cuda") for _ in range(2))
    lfp_opt = optim.SGD(lfp_model, lr=LR, momentum=MOMENTUM)
    gd_opt = optim.SGD(gd_model, lr=LR, momentum=MOMENTUM)
    contenders = {
        LFP: (
            lambda: engine.lfp_step(lfp_model, lfp_opt, x, y, clip_norm=CLIP),
            device.synchronize,
        ),
        GD: (lambda: engine.gd_step(gd_model, gd_opt, x, y, clip_norm=CLIP), device.synchronize),
    }
    if peers.torch is not None:
        torch = peers.torch
        from lfp_ref.verify.interop import to_torch

        tdev = device.torch_device
        tsync = torch.cuda.synchronize if tdev == "cuda" else (lambda: None)
        tx = torch.from_numpy(x_host.copy()).to(tdev)
        ty = torch.from_numpy(y.astype(np.int64)).to(tdev)
        gd_torch = to_torch(build(name, smoke)).to(tdev)
        torch_step = cpu_peers.torch_gd_step(gd_torch, LR, MOMENTUM, CLIP)
        contenders[TORCH_GD] = (lambda: torch_step(tx, ty), tsync)
        if peers.lfprop:
            lfprop_model = to_torch(build(name, smoke)).to(tdev)
            lfprop = lfprop_step(lfprop_model, tdev, LR, MOMENTUM, CLIP)
            contenders[LFPROP] = (lambda: lfprop(tx, ty), tsync)
    flops = models.training_gemm_flops(build(name, smoke).to("cuda"), x)
    return contenders, flops


def run_config(name, batch, device, peers, settings, smoke=False):
    """One configuration's result: batch, FLOPs, times; a contender that fails its first step is
    left out and its error recorded (``errors``)."""
    warmup, rounds, block = settings[:3]
    result = {"model": name, "batch": batch, "errors": {}}
    contenders, result["flops"] = config_contenders(name, batch, device, peers, smoke)
    for cname, (step, synchronize) in list(contenders.items()):
        try:
            step()
            synchronize()
        except Exception as err:  # reported in the table; the others still run
            traceback.print_exc()
            result["errors"][cname] = f"{type(err).__name__}: {err}"
            del contenders[cname]
    # that first step was the first warm-up step
    result["times"] = time_interleaved(contenders, rounds, block, warmup=max(0, warmup - 1))
    return result


# ------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------


def result_row(result, rate):
    """Medians (seconds), ratios and the GEMM-rate bound of one configuration."""
    times = result["times"]

    def median(name):
        return times[name]["median"] if name in times else None

    bound = result["flops"] / rate if rate else None
    lfp = median(LFP)
    return {
        "model": result["model"],
        "batch": result["batch"],
        "lfp": lfp,
        "gd": median(GD),
        "torch_gd": median(TORCH_GD),
        "lfprop": median(LFPROP),
        "lfp_gd": round_ratio(times, LFP, GD),
        "lfp_torch_gd": round_ratio(times, LFP, TORCH_GD),
        "lfp_lfprop": round_ratio(times, LFP, LFPROP),
        "bound": bound,
        "fraction": bound / lfp if bound is not None and lfp else None,
    }


def target_rows(results, batch=TARGET_BATCH):
    """``(target, model, value, met)`` per model at ``batch`` and target; ``value`` and ``met``
    None where a contender is missing."""
    rows = []
    by_model = {r["model"]: r for r in results if r["batch"] == batch}
    for label, key, limit in (
        (f"LFP <= {TORCH_GD_TARGET}x torch GD", "lfp_torch_gd", TORCH_GD_TARGET),
        (f"LFP <= {LFPROP_TARGET}x lfprop LFP", "lfp_lfprop", LFPROP_TARGET),
    ):
        for model in sorted(by_model, key=_model_order):
            value = result_row(by_model[model], None)[key]
            rows.append((label, model, value, None if value is None else value <= limit))
    return rows


def _model_order(name):
    return MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER)


def _yes(met):
    return "" if met is None else ("yes" if met else "**no**")


def markdown(report):
    """The report as Markdown lines."""
    info, versions = report["device_info"], report["versions"]
    device = report["device"]
    if info:
        device += (
            f" ({info['multiprocessors']} SMs, {info['memory_gib']:.1f} GiB, compute capability "
            f"{info['compute_capability']}; driver CUDA {info['driver_cuda']}, runtime CUDA "
            f"{info['runtime_cuda']})"
        )
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    warmup, rounds, block = report["settings"][:3]
    lines = [
        "## GPU: training steps, float32 (issue 14)",
        "",
        f"Generated by `{report['command']}` on {report['date']}; {device}; {shown}. "
        f"SGD lr {LR}, momentum {MOMENTUM}, global-norm clipping {CLIP}; float32: CuPy's "
        f"matmul in IEEE float32 (CUPY_TF32={report['env'].get('CUPY_TF32') or 'unset'}), "
        f"{report['torch_precision'] or 'no torch'}; NUMBA_CUDA_ARRAY_INTERFACE_SYNC="
        f"{report['env'].get('NUMBA_CUDA_ARRAY_INTERFACE_SYNC') or 'unset (1)'}. "
        f"ms per step: warm-up {warmup} steps each, then {rounds} interleaved rounds of blocks of "
        f"back-to-back steps (>= {block} s, the device synchronised at both ends: CuPy for "
        "lfp_ref, torch.cuda.synchronize for torch and lfprop); the median over rounds of a "
        "block's time per step; a ratio is the median over rounds of the ratio within a round.",
        "",
        "GEMM rate (CuPy matmul, float32, square n x n, synchronised):",
        "",
        "| n | TFLOP/s best | TFLOP/s median |",
        "|---|---|---|",
    ]
    for n, r in report["gemm"].items():
        lines.append(f"| {n} | {r['best'] / 1e12:.2f} | {r['median'] / 1e12:.2f} |")
    rate = peak_rate(report["gemm"])
    lines += [
        "",
        "| model | batch | LFP ms | GD ms | torch GD ms | lfprop LFP ms | LFP / GD | "
        "LFP / torch GD | LFP / lfprop | GEMM-rate bound ms | LFP at GEMM rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    results = sorted(report["results"], key=lambda r: (_model_order(r["model"]), r["batch"]))
    for result in results:
        r = result_row(result, rate)
        fraction = "" if r["fraction"] is None else f"{r['fraction']:.1%}"
        lines.append(
            f"| {r['model']} | {r['batch']} | {ms(r['lfp'])} | {ms(r['gd'])} | "
            f"{ms(r['torch_gd'])} | {ms(r['lfprop'])} | {fmt_ratio(r['lfp_gd'])} | "
            f"{fmt_ratio(r['lfp_torch_gd'])} | {fmt_ratio(r['lfp_lfprop'])} | "
            f"{ms(r['bound'])} | {fraction} |"
        )
    targets = target_rows(report["results"], report.get("target_batch", TARGET_BATCH))
    lines += [
        "",
        f"### Targets (issue 14, batch {report.get('target_batch', TARGET_BATCH)})",
        "",
        "| target | model | ratio | met |",
        "|---|---|---|---|",
    ]
    for label, model, value, met in targets:
        lines.append(f"| {label} | {model} | {fmt_ratio(value)} | {_yes(met)} |")
    measured = [met for *_, met in targets if met is not None]
    missing = sum(met is None for *_, met in targets)
    summary = f"{sum(measured)} of {len(measured)} measured targets met"
    if missing:
        summary += f"; {missing} not measured (a contender missing)"
    lines += ["", summary + "."]
    notes = list(report["notes"])
    for result in results:
        for cname, err in result["errors"].items():
            notes.append(f"{result['model']} batch {result['batch']}: {cname} failed: {err}")
    for model, batch, why in report["skipped"]:
        notes.append(f"{model} batch {batch}: not run ({why})")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    lines += [
        "",
        "<!-- machine-readable GPU results of this run",
        json.dumps(
            {
                "device": report["device"],
                "gemm_tflops": {str(n): r["median"] / 1e12 for n, r in report["gemm"].items()},
                "steps_ms": {
                    f"{r['model']}@{r['batch']}": {
                        k: round(v["median"] * 1e3, 4) for k, v in r["times"].items()
                    }
                    for r in results
                },
            }
        ),
        "-->",
    ]
    return lines


def versions(device, peers):
    """The versions the report names."""
    from importlib import metadata

    import lfp_ref

    out = {"lfp_ref": lfp_ref.__version__, "Python": platform.python_version()}
    if not device.simulated:
        import cupy

        out["CuPy"] = cupy.__version__
    for dist in ("numpy", "numba", "numba-cuda", "torch", "lfprop", "lxt", "zennit"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if peers.torch is None:
        out["torch"] = None
    elif not device.simulated:
        out["torch"] = f"{peers.torch.__version__} (CUDA {peers.torch.version.cuda})"
    if not peers.lfprop:
        out["lfprop"] = out["lxt"] = out["zennit"] = None
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter blocks")
    parser.add_argument("--models", default=",".join(MODEL_ORDER))
    parser.add_argument(
        "--batches", default=None, help=f"default {','.join(map(str, BATCHES))}; --smoke: tiny"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--block", type=float, default=None, help="seconds per block")
    parser.add_argument("--no-peers", action="store_true", help="skip torch and lfprop")
    parser.add_argument(
        "--torch-tf32", action="store_true", help="leave torch's TF32 defaults (cuDNN convs)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds: start no configuration after this (the rest are listed as not run)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models and batches (a test of the code path)"
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="the Numba CUDA simulator instead of a device (NUMBA_ENABLE_CUDASIM=1; tests)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODEL_ORDER))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODEL_ORDER)}")
    if args.batches is None:
        batches = list(SMOKE_BATCHES if args.smoke else BATCHES)
    else:
        batches = [int(b) for b in args.batches.split(",") if b]
    if not batches or min(batches) < 1:
        parser.error(f"--batches must name positive batch sizes, got {args.batches!r}")

    device, why = detect(args.simulate)
    if device is None:
        print(f"GPU benchmark skipped: {why}")
        return 0

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    warmup, rounds, block, sizes, gemm_repeats = SETTINGS[mode]
    rounds = args.rounds or rounds
    block = block if args.block is None else args.block
    settings = (warmup, rounds, block)

    def say(text):
        print(text, file=sys.stderr, flush=True)

    say(f"GPU benchmark on {device.name}")
    peers = setup_peers(device, not args.no_peers, args.torch_tf32)
    report = {
        "command": "python -m benchmarks.gpu "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "device": device.name,
        "device_info": device.info,
        "versions": versions(device, peers),
        "env": {k: os.environ.get(k) for k in ("CUPY_TF32", "NUMBA_CUDA_ARRAY_INTERFACE_SYNC")},
        "torch_precision": peers.precision,
        "settings": settings,
        "notes": list(peers.notes),
        "results": [],
        "skipped": [],
        # the batch; a run without it (--batches, --smoke) checks its largest instead
        "target_batch": TARGET_BATCH if TARGET_BATCH in batches else max(batches),
    }
    report["command"] = report["command"].strip()
    say("GEMM rate ...")
    report["gemm"] = gemm_rate(device, sizes, gemm_repeats)
    failed = False
    # the target batch first, so that a --budget cut leaves the targets measured
    for batch in sorted(batches, key=lambda b: b != report["target_batch"]):
        for name in models:
            if args.budget is not None and time.perf_counter() - started > args.budget:
                report["skipped"].append((name, batch, f"past --budget {args.budget:g} s"))
                continue
            say(f"steps: {name} batch {batch} ...")
            try:
                result = run_config(name, batch, device, peers, settings, args.smoke)
            except Exception as err:  # reported; the other configurations run
                traceback.print_exc()
                report["skipped"].append((name, batch, f"{type(err).__name__}: {err}"))
                failed = True
                continue
            failed |= LFP in result["errors"] or GD in result["errors"]
            report["results"].append(result)
    text = "\n".join(markdown(report)) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    say(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
