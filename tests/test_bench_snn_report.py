"""benchmarks/run.py's spiking section on made-up timings: one row per model and environment
(SNN_ENVIRONMENTS), ratios within each process, and the two targets judged per row."""

from benchmarks import run


def result(per_process):
    return {
        "batch": 64,
        "timesteps": run.SNN_STEPS,
        "times": {
            k: {"median": sorted(v)[len(v) // 2], "per_process": v} for k, v in per_process.items()
        },  # fmt: skip
    }


def test_one_row_per_model_and_environment_with_its_own_targets():
    slow = result({"lfp_ref SNN LFP": [150.0, 160.0], "lfp_ref SNN BPTT": [140.0, 140.0],
                   "lfprop SNN LFP": [250.0, 250.0], "snntorch BPTT": [190.0, 190.0]})  # fmt: skip
    fast = result({"lfp_ref SNN LFP": [110.0, 120.0], "lfp_ref SNN BPTT": [100.0, 100.0],
                   "lfprop SNN LFP": [250.0, 250.0], "snntorch BPTT": [190.0, 190.0]})  # fmt: skip
    environment = "OPENBLAS_THREAD_TIMEOUT=4"
    snn = {"snn-cnn": slow, run.snn_key("snn-cnn", environment): fast}
    rows = run.snn_rows(snn)
    assert [r["model"] for r in rows] == ["snn-cnn", f"snn-cnn, {environment}"]
    assert abs(rows[0]["lfp_lfprop"] - (150 / 250 + 160 / 250) / 2) < 1e-12
    targets = dict((name, met) for name, _, met in run.snn_targets(rows))
    assert targets["snn-cnn: SNN LFP <= 0.5x lfprop's"] is False
    assert targets[f"snn-cnn, {environment}: SNN LFP <= 0.5x lfprop's"] is True
    # each at its best: the faster row's LFP median over the faster row's lfprop median
    best = [v for name, v, _ in run.snn_targets(rows) if name.endswith("each at its best")]
    assert best == [rows[1]["lfp"] / 250] and rows[1]["lfp"] < rows[0]["lfp"]
    text = "\n".join(run.snn_markdown(snn))
    assert f"| snn-cnn, {environment} | 64 |" in text
    assert environment in text.split("| model |")[0]  # the note says what the variant is


def test_every_environment_variant_says_what_it_sets():
    assert run.SNN_ENVIRONMENTS[""] == {}
    for label, variables in run.SNN_ENVIRONMENTS.items():
        for k, v in variables.items():
            assert (f"{k} unset" if v is None else f"{k}={v}") in label


def test_a_variable_set_to_none_is_removed_from_the_workers_environment():
    env = {"A": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert run._with(env, {"OMP_WAIT_POLICY": None, "B": "2"}) == {"A": "1", "B": "2"}
    assert run._with(env, {}) == env
