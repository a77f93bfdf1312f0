"""lfp_ref.crosscheck: lfp_ref vs lfprop 1.0.0, zennit 0.5.1 and torch autograd on the four
cross-check models, and the report machinery (the latter needs no torch)."""

import copy

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import crosscheck as cc

_HINT = "run `make crosscheck` (the crosscheck extra)"


def require_peers():
    pytest.importorskip("torch", reason=f"needs torch: {_HINT}")
    pytest.importorskip("lfprop", reason=f"needs lfprop==1.0.0: {_HINT}")
    pytest.importorskip("zennit", reason=f"needs zennit==0.5.1: {_HINT}")


# --------------------------------------------------------------------------- the four models


@pytest.mark.crosscheck
@pytest.mark.parametrize("name", list(cc.MODELS))
def test_every_parameter_matches_every_peer(name):
    require_peers()
    report = cc.crosscheck_model(name, seed=0)
    model, _, _ = cc.build_model(name, seed=0)
    params = list(model.parameters())
    by_check = {check: [r for r in report.rows if r.check == check] for check in cc.CHECKS}
    # one row per parameter for lfprop (+ the input reward), lfprop-mean and torch
    assert [r.quantity for r in by_check["lfprop"]] == [*params, "input reward"]
    assert [r.quantity for r in by_check["lfprop-mean"]] == params
    assert [r.quantity for r in by_check["torch"]] == params
    assert len(by_check["zennit"]) == len(cc.COMPOSITES)
    failures = [(r.check, r.quantity, r.max_rel) for r in report.rows if not r.passed]
    assert not failures
    assert report.passed and not report.unavailable
    assert max(r.max_rel for r in report.rows) <= cc.RTOL[np.dtype(np.float64)]


@pytest.mark.crosscheck
def test_other_seed_batch_size_and_float32():
    require_peers()
    report = cc.crosscheck_model("vgg-small", seed=1, batch_size=3, checks=("lfprop", "torch"))
    assert report.passed
    report32 = cc.crosscheck_model("lenet", seed=2, dtype=np.float32, checks=("lfprop", "torch"))
    assert report32.passed
    assert {r.tolerance for r in report32.rows} == {cc.RTOL[np.dtype(np.float32)]}
    # float32 is measurably less exact than float64, so its tolerance is not idle
    assert max(r.max_rel for r in report32.rows) > 1e-9


@pytest.mark.crosscheck
def test_a_perturbed_twin_fails():
    """The torch twin's Dense weight is scaled by 1 + 1e-7: the rows that depend on it fail, and
    the report fails."""
    require_peers()
    from lfp_ref import interop

    model, x, y = cc.build_model("lenet", seed=0)
    twin = interop.to_torch(model)
    with __import__("torch").no_grad():
        twin[7].weight.mul_(1 + 1e-7)
    report = cc.crosscheck(model, x, y, name="lenet", torch_model=twin, checks=("lfprop", "torch"))
    assert not report.passed
    failed = {(r.check, r.quantity) for r in report.failures}
    assert ("lfprop", "7.weight") in failed and ("torch", "7.weight") in failed
    assert "FAIL" in report.to_table()
    # the unperturbed twin passes the same comparison
    assert cc.crosscheck(model, x, y, checks=("lfprop", "torch")).passed


@pytest.mark.crosscheck
def test_a_torch_module_is_accepted_and_left_alone():
    require_peers()
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    ).double()
    before = copy.deepcopy(module.state_dict())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    report = cc.crosscheck(module, x, y, checks=("lfprop", "lfprop-mean", "torch"))
    assert report.passed
    # the bias right before the train-mode BN cancels by construction: judged on its layer's scale
    assert cc.zero_by_construction(cc.interop.from_torch(module)) == {"0.bias": "0.weight"}
    assert {r.check for r in report.rows if r.quantity == "0.bias" and "cancels" in r.note} == {
        "lfprop",
        "lfprop-mean",
        "torch",
    }
    for key, value in module.state_dict().items():  # BN's running statistics untouched
        assert torch.equal(value, before[key]), key


@pytest.mark.crosscheck
def test_lfp_ref_model_and_its_running_statistics_are_left_alone():
    require_peers()
    model, x, y = cc.build_model("vgg-small", seed=0)
    before = model.state_dict()
    assert cc.crosscheck(model, x, y, checks=("lfprop", "torch")).passed
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.crosscheck
def test_without_lfprops_sum_rule_the_residual_model_disagrees(monkeypatch):
    """The cause of a disagreement, pinned: lfprop applies its Sum rule only to its own Sum
    class; left as a plain addition, autograd copies the reward to both summands instead of
    splitting it, and every parameter below the first residual block differs at O(1)."""
    require_peers()
    from lfp_ref import peers

    monkeypatch.setattr(peers, "_replace_sums", lambda model, make_sum: 0)
    report = cc.crosscheck_model("resnet-small", seed=0, checks=("lfprop",))
    failed = {r.quantity for r in report.failures}
    assert "0.weight" in failed and "input reward" in failed
    assert min(r.max_rel for r in report.failures) > 0.1
    assert "9.weight" not in failed  # above the residual blocks nothing changes


@pytest.mark.crosscheck
def test_train_mode_dropout_is_refused():
    require_peers()
    model, x, y = cc.build_model("lenet", seed=0)
    model.train()
    with pytest.raises(ValueError, match="Dropout '9' is in training mode.*model.eval()"):
        cc.crosscheck(model, x, y)


# --------------------------------------------------------------------------- no torch needed


def test_compare_is_relative_to_the_peers_scale():
    ours, peer = np.array([1.0, 2.0, -4.0]), np.array([1.0, 2.0, -4.0 + 1e-12])
    max_abs, max_rel = cc.compare(ours, peer)
    assert max_abs == pytest.approx(1e-12, rel=1e-3)
    assert max_rel == pytest.approx(1e-12 / 4, rel=1e-3)
    assert cc.compare(np.zeros(3), np.zeros(3)) == (0.0, 0.0)
    assert cc.compare(np.ones(3), np.zeros(3))[1] == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        cc.compare(np.zeros(3), np.zeros(4))


def test_report_passes_only_when_something_passed_and_nothing_failed():
    tol = cc.RTOL[np.dtype(np.float64)]
    ok = cc.Row("m", "torch", "0.weight", 1e-17, 1e-16, tol, True)
    bad = cc.Row("m", "torch", "0.bias", 1e-3, 1e-2, tol, False)
    na = cc.Row("m", "zennit", "EpsilonPlus input relevance", None, None, tol, None, "why")
    assert cc.Report([ok, na]).passed
    assert not cc.Report([ok, bad, na]).passed
    assert not cc.Report([na]).passed
    assert not cc.Report().passed
    table = cc.Report([ok, bad, na]).to_table("plain")
    assert "n/a (why)" in table and "FAIL" in table
    assert table.splitlines()[-1] == "2 compared, 1 failed, 1 not available: FAIL"
    markdown = cc.Report([ok]).to_table()
    assert markdown.startswith("| model | check |") and markdown.endswith(": PASS")
    with pytest.raises(ValueError, match="style"):
        cc.Report([ok]).to_table("html")


@pytest.mark.parametrize("name", list(cc.MODELS))
def test_models_are_seeded_and_shaped(name):
    model, x, y = cc.build_model(name, seed=3, batch_size=4)
    again, x2, y2 = cc.build_model(name, seed=3, batch_size=4)
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(),
                                                     again.state_dict().values()))  # fmt: skip
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (4, *cc.MODELS[name].input_shape)
    assert model.forward(x).shape == (4, cc.MODELS[name].num_classes)
    other, _, _ = cc.build_model(name, seed=4)
    assert not np.array_equal(next(iter(model.parameters().values())),
                              next(iter(other.parameters().values())))  # fmt: skip


def test_model_modes_are_the_advertised_ones():
    lenet, _, _ = cc.build_model("lenet")
    vgg, _, _ = cc.build_model("vgg-small")
    resnet, _, _ = cc.build_model("resnet-small")
    assert not any(layer.training for _, layer in lenet.named_layers())
    assert any(isinstance(layer, lfp.MaxPool2d) for _, layer in lenet.named_layers())
    assert all(lay.training for _, lay in vgg.named_layers() if isinstance(lay, lfp.BatchNorm2d))
    assert any(isinstance(layer, lfp.Residual) for _, layer in resnet.named_layers())


def test_models_come_from_the_zoo():
    """The cross-check models are models of the one catalog, lfp_ref.zoo, with options."""
    from lfp_ref import zoo

    assert {name: spec.model for name, spec in cc.MODELS.items()} == {
        "mlp": "mlp",
        "lenet": "lenet-tiny",
        "vgg-small": "vgg-tiny",
        "resnet-small": "resnet-tiny",
    }
    for spec in cc.MODELS.values():
        assert spec.model in zoo.known_models()
    assert cc.MODELS["vgg-small"].options["bias_before_norm"] is False
    model, _, _ = cc.build_model("vgg-small")
    # no bias before a train-mode BatchNorm, so nothing cancels by construction
    assert cc.zero_by_construction(model) == {}
    assert model.dtype == np.float64


def test_zero_by_construction_finds_weighted_layers_before_norms():
    model = lfp.Sequential(
        lfp.Conv2d(1, 2, 3), lfp.BatchNorm2d(2), lfp.ReLU(),
        lfp.Flatten(), lfp.Dense(2, 3), lfp.BatchNorm1d(3), lfp.Dense(3, 2),
    )  # fmt: skip
    assert cc.zero_by_construction(model) == {"0.bias": "0.weight", "4.bias": "4.weight"}
    model[1].eval()  # an eval-mode BN with running statistics does not remove the bias
    assert cc.zero_by_construction(model) == {"4.bias": "4.weight"}


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="choose from mlp, lenet, vgg-small, resnet-small"):
        cc.build_model("alexnet")
    with pytest.raises(ValueError, match="at least 2"):
        cc.build_model("mlp", batch_size=1)
