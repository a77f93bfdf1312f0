"""benchmarks/profile.py (the per-layer, per-phase and per-kernel tables of ``make bench``) runs
against the current engine: its phases call the engine's own functions, so a renamed one breaks
here and not in the middle of a 35-minute benchmark run."""

import numpy as np

from benchmarks import profile
from benchmarks.models import batch, build


def test_profile_tables_cover_every_layer_phase_and_the_kernels():
    lines = profile.markdown("mlp-256", np.float64, repeats=1)
    model = build("mlp-256", np.float64)
    layer_rows = [line for line in lines if line.startswith("| ") and "Dense(" in line]
    assert len(layer_rows) == sum("Dense" in type(layer).__name__ for layer in model.layers)
    for phase in ("forward", "reward", "feedback walk", "norms", "clip coefficient", "optimizer"):
        assert any(line.startswith(f"| {phase}") for line in lines), phase
    kernels = [line for line in lines if line.startswith("| dense.")]
    assert kernels, "no Dense kernel in the cProfile table"
    assert lines[-1].startswith("| everything else |")


def test_profile_phases_make_one_lfp_step():
    # the phases, run in order once, update the weights as engine.lfp_step does
    from lfp_ref import engine, optim

    x, y = batch("mlp-256", dtype=np.float64)
    reference, profiled = build("mlp-256", np.float64), build("mlp-256", np.float64)
    engine.lfp_step(reference, optim.SGD(reference, lr=1e-3, momentum=0.9), x, y, clip_norm=3.0)
    for phase in profile.step_phases(profiled, x, y).values():
        phase()
    for (name, a), (_, b) in zip(reference.named_parameters(), profiled.named_parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)
