"""Checkpoints: round trip, atomic writes (a crash mid-write, a killed writer), corrupt and
foreign files, restoring model + optimizer + schedule + dropout streams, mismatches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lfp_ref import checkpoint as ckpt
from lfp_ref import zoo
from lfp_ref.engine import lfp_step
from lfp_ref.optim import SGD, Adam, OneCycleLR, StepLR

REPO_ROOT = Path(__file__).resolve().parents[1]


def _model(seed=0, widths=None, name="lenet", shape=(1, 12, 12)):
    if name == "lenet":
        shape = (1, 28, 28)
    return zoo.build(name, num_classes=4, input_shape=shape, seed=seed, widths=widths)


def _train_a_little(model, optimizer, scheduler, steps, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.random((6, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 4, 6)
        lfp_step(model, optimizer, x, y, clip_norm=3.0)
        if scheduler is not None:
            scheduler.step()


def _assert_states_equal(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype, key
            assert a[key].tobytes() == b[key].tobytes(), key
        else:
            assert a[key] == b[key], key


def test_round_trip_keeps_every_bit(tmp_path, rng):
    state = {
        "model/w": rng.normal(size=(3, 4)).astype(np.float32),
        "model/v": rng.normal(size=5),
        "trainer/step": 7,
        "trainer/loss": 0.1 + 0.2,
        "trainer/name": "lenet",
        "trainer/flag": True,
    }
    path = tmp_path / "c.npz"
    ckpt.save(path, state)
    loaded = ckpt.load(path)
    _assert_states_equal(loaded, state)
    assert isinstance(loaded["trainer/step"], int) and isinstance(loaded["trainer/name"], str)


def test_crash_mid_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    ckpt.save(path, {"trainer/step": 1, "model/w": np.arange(4.0)})
    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(file.tell() // 2)  # half the new file is on disk...
        raise OSError("disk full")  # ...when the writer dies

    monkeypatch.setattr(ckpt.np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(path, {"trainer/step": 2, "model/w": np.arange(4.0) + 1})
    monkeypatch.undo()
    loaded = ckpt.load(path)
    assert loaded["trainer/step"] == 1
    np.testing.assert_array_equal(loaded["model/w"], np.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # no temp file left behind


def test_a_killed_writer_never_leaves_a_torn_checkpoint(tmp_path):
    """A subprocess rewrites one checkpoint in a loop (1 MB each, step k holds the value k);
    SIGKILL lands at arbitrary points of a write; the file always loads and is consistent."""
    writer = textwrap.dedent(
        """
        import sys
        import numpy as np
        from lfp_ref import checkpoint
        path = sys.argv[1]
        for step in range(1, 10**6):
            checkpoint.save(path, {"trainer/step": step, "model/w": np.full(2**17, float(step))})
        """
    )
    path = tmp_path / "last.npz"
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", writer, str(path)], cwd=REPO_ROOT)
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05 + 0.07 * attempt)
        assert proc.poll() is None, "the writer ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = ckpt.load(path)
        assert state["trainer/step"] >= 1
        assert (state["model/w"] == state["trainer/step"]).all()


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "last.npz"
    ckpt.save(path, {"model/w": np.arange(1000.0)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="not a readable checkpoint"):
        ckpt.load(path)
    np.savez(tmp_path / "other.npz", w=np.zeros(3))
    with pytest.raises(ckpt.CheckpointError, match="not an lfp_ref checkpoint"):
        ckpt.load(tmp_path / "other.npz")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint at"):
        ckpt.load(tmp_path / "missing.npz")


def test_reserved_and_object_entries_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        ckpt.save(tmp_path / "c.npz", {"format": 1})
    with pytest.raises(TypeError, match="not an array"):
        ckpt.save(tmp_path / "c.npz", {"trainer/x": {"a": 1}})


@pytest.mark.parametrize("kind", ["sgd-onecycle", "adam-steplr"])
def test_restore_continues_exactly(tmp_path, kind):
    """Train 3 steps, checkpoint, train 2 more: a fresh model restored from the checkpoint and
    trained the same 2 steps ends bitwise equal (weights, momentum/Adam state, lr, masks)."""

    def build():
        model = _model()
        if kind == "sgd-onecycle":
            optimizer = SGD(model, lr=0.05, momentum=0.9)
            scheduler = OneCycleLR(optimizer, max_lr=0.05, total_steps=10)
        else:
            optimizer = Adam(model, lr=1e-3)
            scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
        return model, optimizer, scheduler

    model, optimizer, scheduler = build()
    _train_a_little(model, optimizer, scheduler, 3)
    ckpt.save(tmp_path / "c.npz", ckpt.capture(model, optimizer, scheduler, {"step": 3}))
    _train_a_little(model, optimizer, scheduler, 2, seed=2)

    model2, optimizer2, scheduler2 = build()
    extra = ckpt.restore(ckpt.load(tmp_path / "c.npz"), model2, optimizer2, scheduler2)
    assert extra == {"step": 3}
    _train_a_little(model2, optimizer2, scheduler2, 2, seed=2)
    _assert_states_equal(
        ckpt.capture(model, optimizer, scheduler), ckpt.capture(model2, optimizer2, scheduler2)
    )


def test_dropout_streams_are_saved_per_layer():
    model = _model()
    state = ckpt.capture(model, SGD(model))
    assert sorted(k for k in state if k.startswith("rng/")) == ["rng/12", "rng/9"]


def test_mismatched_model_is_a_clear_error():
    small = _model(name="mlp", widths=(8,), shape=(1, 5, 5))
    large = _model(name="mlp", widths=(9,), shape=(1, 5, 5))
    state = ckpt.capture(small, SGD(small))
    with pytest.raises(ckpt.CheckpointError, match=r"does not fit the model: .*mis-shaped"):
        ckpt.restore(state, large, SGD(large))


def test_mismatched_optimizer_and_scheduler_are_clear_errors():
    model = _model(name="toy", shape=(2,))
    sgd = SGD(model, momentum=0.9)
    state = ckpt.capture(model, sgd, StepLR(sgd, step_size=1))
    other = _model(name="toy", shape=(2,))
    with pytest.raises(ckpt.CheckpointError, match="does not fit the optimizer"):
        ckpt.restore(state, other, Adam(other))
    with pytest.raises(ckpt.CheckpointError, match="saved with StepLR, but this run uses no"):
        ckpt.restore(state, other, SGD(other))


def test_missing_dropout_state_is_an_error():
    model = _model()
    state = ckpt.capture(model, SGD(model))
    del state["rng/9"]
    fresh = _model()
    with pytest.raises(ckpt.CheckpointError, match="random-number states"):
        ckpt.restore(state, fresh, SGD(fresh))


def test_atomic_write_cleans_up_on_interrupt(tmp_path):
    path = tmp_path / "config.json"

    def interrupted(file):
        file.write(b"{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_write(path, interrupted)
    assert os.listdir(tmp_path) == []


class _FixedFeedback:
    """A stand-in training method holding a fixed random matrix and a counter (the state a
    Feedback Alignment method keeps)."""

    def __init__(self, seed):
        self.matrix = np.random.default_rng(seed).normal(size=(3, 4))
        self.steps = 0

    def state_dict(self):
        return {"matrix": self.matrix, "steps": self.steps}

    def load_state_dict(self, state):
        if set(state) != {"matrix", "steps"}:
            raise ValueError(f"expected matrix and steps, got {sorted(state)}")
        self.matrix, self.steps = np.array(state["matrix"]), int(state["steps"])


def test_a_methods_state_round_trips(tmp_path):
    model = _model(name="toy", shape=(2,))
    method = _FixedFeedback(seed=1)
    method.steps = 7
    ckpt.save(tmp_path / "c.npz", ckpt.capture(model, SGD(model), method=method))
    method.matrix[0, 0] = 99.0  # the capture is a copy
    state = ckpt.load(tmp_path / "c.npz")
    assert sorted(k for k in state if k.startswith("method/")) == ["method/matrix", "method/steps"]
    fresh, restored = _model(name="toy", shape=(2,)), _FixedFeedback(seed=2)
    ckpt.restore(state, fresh, SGD(fresh), method=restored)
    assert restored.steps == 7
    assert restored.matrix.tobytes() == _FixedFeedback(seed=1).matrix.tobytes()
    with pytest.raises(ckpt.CheckpointError, match="holds a training method's state"):
        ckpt.restore(state, fresh, SGD(fresh))
    del state["method/steps"]
    with pytest.raises(ckpt.CheckpointError, match="does not fit the method"):
        ckpt.restore(state, fresh, SGD(fresh), method=restored)


def test_remove_temporaries_removes_only_atomic_writes_leftovers(tmp_path):
    names = [".last.npz.tmp-123", ".config.json.tmp-9", ".metrics.jsonl.tmp-77"]
    keep = ["last.npz", "x.tmp-1", ".hidden", ".last.npz.tmp-abc", "notes.txt"]
    for name in names + keep:
        (tmp_path / name).write_text("x")
    assert ckpt.remove_temporaries(tmp_path) == sorted(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert ckpt.remove_temporaries(tmp_path / "missing") == []


def test_non_finite_state_is_neither_written_nor_restored(tmp_path):
    model = _model()
    optimizer, scheduler = SGD(model, lr=0.1, momentum=0.9), None
    state = ckpt.capture(model, optimizer)
    ckpt.save(tmp_path / "good.npz", state)
    state["model/0.weight"].flat[3] = np.nan
    with pytest.raises(ckpt.NonFiniteStateError, match=r"model/0\.weight \(1 value\)"):
        ckpt.save(tmp_path / "bad.npz", state)
    assert not (tmp_path / "bad.npz").exists()
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(ckpt.NonFiniteStateError, match="holds non-finite values"):
        ckpt.restore(state, model, optimizer, scheduler)
    assert issubclass(ckpt.NonFiniteStateError, ckpt.CheckpointError)
    assert issubclass(ckpt.NonFiniteStateError, FloatingPointError)
