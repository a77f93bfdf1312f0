"""benchmarks/gpu.py without a GPU: the no-device path, the timing loop, the ratios, the targets
and the report on made-up timings; the whole benchmark loop under the Numba CUDA simulator
(``cudasim``, ``make test-cudasim``); lfprop's step with its reward on a device argument against
benchmarks/peers.py's (``crosscheck``)."""

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu

ROOT = Path(__file__).resolve().parents[1]
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def run_python(code, env_extra=None, drop=("NUMBA_ENABLE_CUDASIM",)):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- no device -------------------------------------------------------------------------------


def test_without_cupy_the_gpu_section_is_skipped_in_one_line_with_exit_status_0(tmp_path):
    out = tmp_path / "gpu.md"
    # sys.modules["cupy"] = None makes `import cupy` fail, also where CuPy is installed
    proc = run_python(
        f"""
        import sys
        sys.modules["cupy"] = None
        from benchmarks import gpu
        sys.exit(gpu.main(["--out", {str(out)!r}]))
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("GPU benchmark skipped: CuPy is not installed")
    assert "pip install 'lfp_ref[gpu]'" in lines[0]
    assert not out.exists()


def test_the_simulator_is_not_a_device(monkeypatch):
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    device, why = gpu.detect()
    assert device is None and "NUMBA_ENABLE_CUDASIM is set" in why


def test_simulate_needs_the_simulator(monkeypatch, capsys):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    assert gpu.main(["--simulate", "--smoke"]) == 0
    assert capsys.readouterr().out.startswith(
        "GPU benchmark skipped: --simulate needs NUMBA_ENABLE_CUDASIM=1"
    )


def test_unknown_models_are_an_error():
    with pytest.raises(SystemExit):
        gpu.main(["--models", "resnet-huge"])


# -- timing ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_interleaved_times_blocks_between_synchronisations_and_rotates():
    clock = FakeClock()
    log = []

    def contender(name, cost):
        def step():
            clock.now += cost
            log.append(name)

        def sync():
            log.append(f"sync {name}")

        return step, sync

    contenders = {"a": contender("a", 0.1), "b": contender("b", 0.25), "c": contender("c", 0.5)}
    times = gpu.time_interleaved(contenders, rounds=3, block_seconds=0.45, warmup=2, clock=clock)
    # warm-up: two steps each, then its synchronisation
    assert log[:9] == ["a", "a", "sync a", "b", "b", "sync b", "c", "c", "sync c"]
    timed = log[9:]
    # blocks: synchronised before and after; at least 0.45 s or one step
    first_round = ["sync a"] + ["a"] * 5 + ["sync a", "sync b"] + ["b"] * 2 + ["sync b"]
    first_round += ["sync c", "c", "sync c"]
    assert timed[: len(first_round)] == first_round
    # every block opens and closes with its contender's synchronisation: two per block
    owners = [entry.split()[1] for entry in timed if entry.startswith("sync")][::2]
    assert owners == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # who goes first rotates
    for name, cost in (("a", 0.1), ("b", 0.25), ("c", 0.5)):
        assert times[name]["median"] == pytest.approx(cost)
        assert times[name]["rounds"] == pytest.approx([cost] * 3)
    assert times["a"]["steps"] == 15 and times["b"]["steps"] == 6 and times["c"]["steps"] == 3


def test_round_ratio_is_the_median_of_the_ratios_within_rounds():
    times = {
        "x": {"rounds": [1.0, 2.0, 10.0]},
        "y": {"rounds": [2.0, 1.0, 10.0]},
    }
    assert gpu.round_ratio(times, "x", "y") == pytest.approx(1.0)  # ratios 0.5, 2, 1
    assert gpu.round_ratio(times, "x", "missing") is None


# -- the report on made-up timings -----------------------------------------------------------


def fake_times(**medians_ms):
    return {name: {**gpu.summarize([ms / 1e3] * 3), "steps": 30} for name, ms in medians_ms.items()}


def fake_report():
    results = [
        {
            "model": "mlp-1000",
            "batch": 1024,
            "flops": 2e10,
            "errors": {},
            "times": fake_times(**{gpu.LFP: 2.0, gpu.GD: 1.6, gpu.TORCH_GD: 2.0, gpu.LFPROP: 4.0}),
        },
        {
            "model": "mlp-1000",
            "batch": 128,
            "flops": 2.5e9,
            "errors": {},
            "times": fake_times(**{gpu.LFP: 1.0, gpu.GD: 0.8, gpu.TORCH_GD: 0.5}),
        },
        {
            "model": "vgg-small",
            "batch": 1024,
            "flops": 1e11,
            "errors": {gpu.LFPROP: "RuntimeError: made up"},
            "times": fake_times(**{gpu.LFP: 13.0, gpu.GD: 10.0, gpu.TORCH_GD: 10.0}),
        },
    ]
    return {
        "command": "python -m benchmarks.gpu",
        "date": "2026-12-06 20:00 UTC",
        "device": "NVIDIA H100 80GB HBM3",
        "device_info": {
            "multiprocessors": 132,
            "memory_gib": 79.2,
            "compute_capability": "9.0",
            "driver_cuda": "13.0",
            "runtime_cuda": "13.0",
        },
        "versions": {"lfp_ref": "0.1.0", "CuPy": "14.2.0", "lfprop": None},
        "env": {"CUPY_TF32": None, "NUMBA_CUDA_ARRAY_INTERFACE_SYNC": "0"},
        "torch_precision": "torch matmul and cuDNN conv in IEEE float32",
        "settings": (3, 7, 0.25),
        "notes": ["a note from the peers"],
        "results": results,
        "skipped": [("lenet-5", 1024, "past --budget 140 s")],
        "target_batch": 1024,
        "gemm": {1024: {"best": 40e12, "median": 38e12}, 4096: {"best": 52e12, "median": 50e12}},
    }


def test_result_row_ratios_and_the_gemm_rate_bound():
    report = fake_report()
    row = gpu.result_row(report["results"][0], gpu.peak_rate(report["gemm"]))
    assert gpu.peak_rate(report["gemm"]) == 50e12
    assert row["lfp"] == pytest.approx(2e-3) and row["torch_gd"] == pytest.approx(2e-3)
    assert row["lfp_gd"] == pytest.approx(1.25)
    assert row["lfp_torch_gd"] == pytest.approx(1.0)
    assert row["lfp_lfprop"] == pytest.approx(0.5)
    assert row["bound"] == pytest.approx(2e10 / 50e12)
    assert row["fraction"] == pytest.approx(2e10 / 50e12 / 2e-3)
    missing = gpu.result_row(report["results"][2], None)
    assert missing["lfprop"] is None and missing["lfp_lfprop"] is None
    assert missing["bound"] is None and missing["fraction"] is None


def test_target_rows_check_every_model_at_the_target_batch():
    rows = gpu.target_rows(fake_report()["results"], 1024)
    assert rows == [
        ("LFP <= 1.2x torch GD", "mlp-1000", pytest.approx(1.0), True),
        ("LFP <= 1.2x torch GD", "vgg-small", pytest.approx(1.3), False),
        ("LFP <= 0.7x lfprop LFP", "mlp-1000", pytest.approx(0.5), True),
        ("LFP <= 0.7x lfprop LFP", "vgg-small", None, None),
    ]
    # batch 128 is not a target batch; at the limit itself a target is met
    report = fake_report()
    report["results"][0]["times"] = fake_times(**{gpu.LFP: 1.2, gpu.TORCH_GD: 1.0})
    assert gpu.target_rows(report["results"][:1], 1024)[0][3] is True


def test_the_markdown_report():
    lines = gpu.markdown(fake_report())
    text = "\n".join(lines)
    assert lines[0] == "## GPU: training steps, float32 (issue 14)"
    assert "NVIDIA H100 80GB HBM3 (132 SMs, 79.2 GiB, compute capability 9.0; driver CUDA 13.0" in (
        text
    )
    assert "lfp_ref 0.1.0, CuPy 14.2.0." in text  # versions that are None are left out
    assert "NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0" in text and "CUPY_TF32=unset" in text
    assert "| 4096 | 52.00 | 50.00 |" in lines
    # rows by the suite's model order, then batch
    rows = [line for line in lines if line.startswith(("| mlp-1000 |", "| vgg-small |"))]
    assert rows[0] == ("| mlp-1000 | 128 | 1.00 | 0.80 | 0.50 |  | 1.25 | 2.00 |  | 0.05 | 5.0% |")
    assert rows[1] == (
        "| mlp-1000 | 1024 | 2.00 | 1.60 | 2.00 | 4.00 | 1.25 | 1.00 | 0.50 | 0.40 | 20.0% |"
    )
    assert rows[2] == (
        "| vgg-small | 1024 | 13.00 | 10.00 | 10.00 |  | 1.30 | 1.30 |  | 2.00 | 15.4% |"
    )
    assert "| LFP <= 1.2x torch GD | vgg-small | 1.30 | **no** |" in lines
    assert "| LFP <= 0.7x lfprop LFP | mlp-1000 | 0.50 | yes |" in lines
    assert "| LFP <= 0.7x lfprop LFP | vgg-small |  |  |" in lines
    assert "2 of 3 measured targets met; 1 not measured (a contender missing)." in lines
    assert "- a note from the peers" in lines
    assert "- vgg-small batch 1024: lfprop LFP failed: RuntimeError: made up" in lines
    assert "- lenet-5 batch 1024: not run (past --budget 140 s)" in lines
    start = lines.index("<!-- machine-readable GPU results of this run")
    data = json.loads(lines[start + 1])
    assert data["steps_ms"]["mlp-1000@1024"][gpu.LFPROP] == pytest.approx(4.0)
    assert data["gemm_tflops"]["4096"] == pytest.approx(50.0)
    assert lines[-1] == "-->"


# -- the loop with a stand-in device ---------------------------------------------------------


@pytest.fixture
def fake_device(monkeypatch):
    device = gpu.Device(
        name="a stand-in device",
        xp=np,
        to_device=np.asarray,
        synchronize=lambda: None,
        torch_device="cpu",
        simulated=True,
    )
    monkeypatch.setattr(gpu, "detect", lambda simulate=False: (device, ""))
    return device


def test_the_loop_measures_the_target_batch_first_and_reports_failures(
    fake_device, monkeypatch, tmp_path
):
    calls = []

    def run_config(name, batch, device, peers, settings, smoke=False):
        assert device is fake_device and settings == (1, 2, 0.0)
        calls.append((name, batch))
        if name == "vgg-small":
            raise RuntimeError("out of memory, made up")
        times = fake_times(**{gpu.LFP: 2.0, gpu.GD: 1.0})
        return {"model": name, "batch": batch, "flops": 1e9, "errors": {}, "times": times}

    monkeypatch.setattr(gpu, "run_config", run_config)
    out = tmp_path / "gpu.md"
    argv = ["--smoke", "--batches", "128,1024", "--no-peers", "--models", "mlp-256,vgg-small"]
    assert gpu.main([*argv, "--out", str(out)]) == 1  # a configuration failed
    assert calls == [("mlp-256", 1024), ("vgg-small", 1024), ("mlp-256", 128), ("vgg-small", 128)]
    lines = out.read_text().splitlines()
    assert "- vgg-small batch 1024: not run (RuntimeError: out of memory, made up)" in lines
    assert [line.split("|")[2].strip() for line in lines if line.startswith("| mlp-256 |")] == [
        "128",
        "1024",
    ]
    assert "| LFP <= 1.2x torch GD | mlp-256 |  |  |" in lines  # no torch: not measured


def test_past_the_budget_no_configuration_starts(fake_device, monkeypatch, tmp_path):
    monkeypatch.setattr(gpu, "run_config", lambda *a, **k: pytest.fail("started"))
    out = tmp_path / "gpu.md"
    assert gpu.main(["--smoke", "--no-peers", "--budget", "0", "--out", str(out)]) == 0
    text = out.read_text()
    for name in gpu.MODEL_ORDER:
        assert f"- {name} batch 2: not run (past --budget 0 s)" in text


def test_a_contender_that_fails_its_first_step_is_left_out(monkeypatch):
    def broken():
        raise MemoryError("made up")

    contenders = {gpu.LFP: (lambda: None, lambda: None), gpu.LFPROP: (broken, lambda: None)}
    monkeypatch.setattr(gpu, "config_contenders", lambda *a, **k: (contenders, 5e8))
    result = gpu.run_config("mlp-256", 128, None, None, (2, 3, 0.0))
    assert result["errors"] == {gpu.LFPROP: "MemoryError: made up"}
    assert list(result["times"]) == [gpu.LFP] and len(result["times"][gpu.LFP]["rounds"]) == 3
    assert result["flops"] == 5e8
    assert gpu.time_interleaved({}, rounds=3, block_seconds=0.1) == {}


# -- the whole loop under the simulator ------------------------------------------------------


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATED, reason="needs NUMBA_ENABLE_CUDASIM=1: make test-cudasim")
def test_the_benchmark_loop_runs_on_the_simulated_cuda_backend(tmp_path, capsys):
    from lfp_ref.kernels.cuda import LAUNCHES

    out = tmp_path / "gpu.md"
    LAUNCHES.clear()
    status = gpu.main(["--smoke", "--simulate", "--no-peers", "--models", "vgg-small", "--out",
                       str(out)])  # fmt: skip
    assert status == 0
    text = out.read_text()
    assert capsys.readouterr().out.strip() == text.strip()  # the report on stdout too
    assert "Numba CUDA simulator" in text
    for batch in gpu.SMOKE_BATCHES:
        row = next(
            line for line in text.splitlines() if line.startswith(f"| vgg-small | {batch} |")
        )
        cells = [c.strip() for c in row.strip("|").split("|")]
        lfp_ms, gd_ms, ratio = float(cells[2]), float(cells[3]), float(cells[6])
        assert lfp_ms > 0 and gd_ms > 0 and ratio > 0
        assert cells[4] == cells[5] == ""  # no peers
    assert f"### Targets (issue 14, batch {max(gpu.SMOKE_BATCHES)})" in text
    assert "torch and lfprop skipped (--no-peers)" in text
    # the steps ran the cuda kernels: im2col, the pools, the stabiliser, the fused update
    assert {"im2col_samples", "maxpool2d_forward", "stabilized_ratio", "sgd_update"} <= set(
        LAUNCHES
    )


# -- the lfprop step on a device argument ----------------------------------------------------


@pytest.mark.crosscheck
def test_lfprop_step_with_a_device_is_the_peers_step():
    torch = pytest.importorskip("torch")
    from benchmarks import models, peers

    ok, why = peers.available()
    if not ok:
        pytest.skip(f"lfprop does not import: {why}")
    from lfp_ref.verify.interop import to_torch

    x, y = models.batch("lenet-5", batch_size=4, dtype=np.float32)
    tx, ty = peers.as_tensors(x, y)
    mine = to_torch(models.build("lenet-5"))
    theirs = copy.deepcopy(mine)
    step_mine = gpu.lfprop_step(mine, "cpu", 0.05, 0.9, 0.5)
    step_theirs = peers.lfprop_step(theirs, 0.05, 0.9, 0.5)
    for _ in range(2):
        step_mine(tx, ty)
        step_theirs(tx, ty)
    for (name, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items()):
        assert torch.equal(a, b), name
    assert not torch.equal(mine[0].weight, to_torch(models.build("lenet-5"))[0].weight)


@pytest.mark.crosscheck
def test_lfprop_imports_through_the_stand_in_for_transformers_utils_fx():
    pytest.importorskip("lfprop")
    # transformers 5 has no transformers.utils.fx: block it, as if it were removed
    proc = run_python(
        """
        import importlib.abc, sys

        class Removed(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "transformers.utils.fx":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Removed())
        try:
            from lfprop.propagation import propagator_lxt
        except ModuleNotFoundError as err:
            print("without the stand-in:", err.name)
        from benchmarks import gpu, peers
        print("note:", gpu.shim_transformers_fx())
        print("available:", peers.available())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "without the stand-in: transformers.utils.fx" in proc.stdout
    assert "note: transformers" in proc.stdout and "a stand-in module was installed" in proc.stdout
    assert "available: (True, '')" in proc.stdout


def test_every_model_of_the_cpu_suite_has_a_smoke_variant():
    # --smoke runs the default --models, which are the CPU suite's
    assert set(gpu.SMOKE_MODELS) == set(gpu.MODEL_ORDER)
