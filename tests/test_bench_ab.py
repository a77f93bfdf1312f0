"""benchmarks.ab's one-process mode: both trees' steps timed in one worker, each tree from its
own modules (here the same checkout twice: the A/A run that shows the method's noise)."""

import json

from benchmarks import ab


def test_in_process_times_both_trees_steps_in_one_worker():
    both = ab.run_both(ab.ROOT, "mlp-256", "float32", repeats=1, threads=1)
    assert sorted(both) == ["new GD", "new LFP", "old GD", "old LFP"]
    assert all(0 < seconds < 1 for seconds in both.values())
    json.dumps(both)


def test_in_process_report_has_one_ratio_per_step(monkeypatch, capsys):
    calls = []

    def fake_both(baseline, name, dtype, repeats, threads):
        calls.append((name, dtype))
        return {"old LFP": 0.010, "new LFP": 0.011, "old GD": 0.010, "new GD": 0.009}

    monkeypatch.setattr(ab, "run_both", fake_both)
    monkeypatch.setattr(ab, "run_tree", lambda *a: (_ for _ in ()).throw(AssertionError(a)))
    ab.main(["--baseline", "/nowhere", "--in-process", "--models", "mlp-256",
             "--dtypes", "float32", "--rounds", "3"])  # fmt: skip
    out = capsys.readouterr().out
    assert calls == [("mlp-256", "float32")] * 3
    assert "| mlp-256 | float32 | LFP | 10.00 | 11.00 | 1.100 (1.100-1.100) |" in out
    assert "| mlp-256 | float32 | GD | 10.00 | 9.00 | 0.900 (0.900-0.900) |" in out
