"""LRP relevances of lfp_ref's rules and composites vs zennit 0.5.1, in float64 (crosscheck).

Every zennit composite on an MLP and on CNNs with bias (AvgPool, MaxPool, Dropout in eval mode,
BatchNorm in eval mode both passed through and merged with zennit's canonizer), from both starts
("logit" and "one_hot"); and every single rule on a Dense and a Conv2d layer from an arbitrary
relevance. The torch twins are built here from the lfp_ref model's state dict.
"""

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import peers
from lfp_ref.attribution import attribute
from lfp_ref.composites import Composite, merge_batchnorm
from lfp_ref.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, WSquare, ZBox, ZPlus
from tests.tolerances import assert_close

torch = pytest.importorskip("torch", reason="needs the crosscheck extra (make crosscheck)")
zennit = pytest.importorskip("zennit", reason="needs the crosscheck extra (make crosscheck)")

pytestmark = pytest.mark.crosscheck

LOW, HIGH = -1.0, 1.0  # EpsilonGammaBox's input bounds; inputs are drawn inside them


def twin(rng, layers):
    """An lfp_ref model and its torch.nn.Sequential twin with the same weights (float64).

    ``layers``: ("conv", C, O, k, padding, stride), ("dense", I, O), ("bn2d", C), ("relu",),
    ("avgpool", k), ("maxpool", k), ("flatten",), ("dropout", p).
    """
    nn = torch.nn
    ours, theirs = [], []
    for kind, *args in layers:
        if kind == "conv":
            c, o, k, padding, stride = args
            ours.append(lfp.Conv2d(c, o, k, stride=stride, padding=padding, rng=rng))
            theirs.append(nn.Conv2d(c, o, k, stride=stride, padding=padding))
        elif kind == "dense":
            ours.append(lfp.Dense(*args, rng=rng))
            theirs.append(nn.Linear(*args))
        elif kind == "bn2d":
            (n,) = args
            bn = lfp.BatchNorm2d(n, eps=1e-3)
            bn.weight[...], bn.bias[...] = rng.uniform(0.5, 2, n), rng.uniform(-0.5, 0.5, n)
            bn.running_mean[...] = rng.uniform(-1, 1, n)
            bn.running_var[...] = rng.uniform(0.5, 2, n)
            ours.append(bn)
            theirs.append(nn.BatchNorm2d(n, eps=1e-3))
        elif kind == "dropout":
            ours.append(lfp.Dropout(*args, rng=0))
            theirs.append(nn.Dropout(*args))
        else:
            pairs = {
                "relu": (lfp.ReLU, nn.ReLU),
                "flatten": (lfp.Flatten, nn.Flatten),
                "avgpool": (lfp.AvgPool2d, nn.AvgPool2d),
                "maxpool": (lfp.MaxPool2d, nn.MaxPool2d),
            }
            ours.append(pairs[kind][0](*args))
            theirs.append(pairs[kind][1](*args))
        if kind in ("conv", "dense"):
            # torch's init draws biases ~U(-1/sqrt(fan_in), ..): make them matter more
            ours[-1].bias[...] = rng.uniform(-0.5, 0.5, ours[-1].bias.shape)
    model = lfp.Sequential(*ours)
    torch_model = nn.Sequential(*theirs).double()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return model, torch_model


MLP = [("dense", 6, 8), ("relu",), ("dense", 8, 7), ("relu",), ("dense", 7, 3)]
CNN = [
    ("conv", 2, 4, 3, 1, 1),
    ("relu",),
    ("conv", 4, 5, 3, 0, 2),
    ("relu",),
    ("avgpool", 2),
    ("flatten",),
    ("dense", 20, 6),
    ("relu",),
    ("dense", 6, 3),
]
CNN_BN = [
    ("conv", 2, 4, 3, 1, 1),
    ("bn2d", 4),
    ("relu",),
    ("maxpool", 2),
    ("conv", 4, 5, 3, 1, 1),
    ("relu",),
    ("avgpool", 2),
    ("flatten",),
    ("dropout", 0.3),
    ("dense", 20, 3),
]
MODELS = {"mlp": (MLP, (5, 6)), "cnn": (CNN, (5, 2, 9, 9)), "cnn_bn": (CNN_BN, (5, 2, 8, 8))}


def composite_kwargs(name):
    return {"low": LOW, "high": HIGH} if name == "EpsilonGammaBox" else {}


@pytest.mark.parametrize("start", ["logit", "one_hot"])
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("composite", peers.ZENNIT_COMPOSITES)
def test_composite_matches_zennit(rng, composite, model_name, start):
    layers, x_shape = MODELS[model_name]
    model, torch_model = twin(rng, layers)
    model.eval()
    torch_model.eval()
    x = rng.uniform(LOW, HIGH, x_shape)
    y = rng.integers(0, 3, x_shape[0])
    kwargs = composite_kwargs(composite)
    ours = attribute(model, x, y, composite=composite, start=start, **kwargs)
    theirs = peers.zennit_relevance(torch_model, x, y, composite, start=start, **kwargs)
    assert np.count_nonzero(theirs) > theirs.size // 2  # a relevance map, not zeros
    assert_close(ours, theirs)


@pytest.mark.parametrize("composite", peers.ZENNIT_COMPOSITES)
def test_merged_batchnorm_matches_zennit_canonizer(rng, composite):
    # zennit's SequentialMergeBatchNorm keeps BN's eps in an identity-ish BN: replicate it
    model, torch_model = twin(rng, CNN_BN)
    model.eval()
    torch_model.eval()
    x = rng.uniform(LOW, HIGH, (5, 2, 8, 8))
    y = rng.integers(0, 3, 5)
    kwargs = composite_kwargs(composite)
    merged = merge_batchnorm(model, keep_bn_eps=True)
    ours = attribute(merged, x, y, composite=composite, start="logit", **kwargs)
    theirs = peers.zennit_relevance(
        torch_model, x, y, composite, start="logit", merge_batchnorm=True, **kwargs
    )
    assert_close(ours, theirs)
    # without the eps quirk the relevances differ (by far more than rounding)
    exact = attribute(merge_batchnorm(model), x, y, composite=composite, start="logit", **kwargs)
    assert np.abs(exact - theirs).max() > 1e3 * 1e-10 * np.abs(theirs).max()


def zennit_rule(rule):
    """The zennit 0.5.1 rule with the same parameters."""
    zr = zennit.rules
    if isinstance(rule, Norm):
        return zr.Norm(stabilizer=rule.stabilizer)
    if isinstance(rule, Epsilon):
        return zr.Epsilon(epsilon=rule.eps)
    if isinstance(rule, ZPlus):
        return zr.ZPlus(stabilizer=rule.stabilizer)
    if isinstance(rule, AlphaBeta):
        return zr.AlphaBeta(alpha=rule.alpha, beta=rule.beta, stabilizer=rule.stabilizer)
    if isinstance(rule, Gamma):
        return zr.Gamma(gamma=rule.gamma, stabilizer=rule.stabilizer)
    if isinstance(rule, Flat):
        return zr.Flat(stabilizer=rule.stabilizer)
    if isinstance(rule, WSquare):
        return zr.WSquare(stabilizer=rule.stabilizer)
    if isinstance(rule, ZBox):
        low, high = (torch.as_tensor(np.asarray(v, np.float64)) for v in (rule.low, rule.high))
        return zr.ZBox(low=low, high=high, stabilizer=rule.stabilizer)
    raise TypeError(rule)


def zennit_layer_relevance(torch_model, x, relevance, rule):
    """Input relevance with ``rule`` on every Linear/Conv2d/AvgPool2d, from ``relevance``."""
    types = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.AvgPool2d)
    composite = zennit.composites.LayerMapComposite([(types, zennit_rule(rule))])
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    start = torch.from_numpy(relevance.copy())
    with zennit.attribution.Gradient(model=torch_model, composite=composite) as attributor:
        _, result = attributor(xt, lambda output: start)
    return result.detach().numpy()


SINGLE_RULES = {
    "epsilon": Epsilon(0.01),
    "zplus": ZPlus(),
    "alpha2beta1": AlphaBeta(2, 1),
    "alpha1beta0": AlphaBeta(1, 0),
    "gamma": Gamma(0.25),
    "gamma2": Gamma(2.0, stabilizer=1e-3),
    "flat": Flat(),
    "wsquare": WSquare(),
    "zbox": ZBox(LOW, HIGH),
    "zbox-channels": ZBox(np.array([[-1.0, -0.5]]), np.array([[1.0, 2.0]])),
}
LAYERS = {
    "dense": ([("dense", 2, 5)], (4, 2)),
    "conv": ([("conv", 2, 3, 3, 1, 2)], (4, 2, 7, 7)),
}


@pytest.mark.parametrize("layer_name", list(LAYERS))
@pytest.mark.parametrize("rule_name", list(SINGLE_RULES))
def test_single_rule_matches_zennit(rng, rule_name, layer_name):
    rule = SINGLE_RULES[rule_name]
    layers, x_shape = LAYERS[layer_name]
    if isinstance(rule, ZBox) and np.ndim(rule.low) and layer_name == "conv":
        rule = ZBox(rule.low[..., None, None], rule.high[..., None, None])  # (1, C, 1, 1)
    model, torch_model = twin(rng, layers)
    # inputs of both signs, inside every box below (feature/channel 1 in [-0.5, 0.5])
    scale = np.array([1.0, 0.5]).reshape((2,) + (1,) * (len(x_shape) - 2))
    x = rng.uniform(-1.0, 1.0, x_shape) * scale
    relevance = rng.standard_normal(model(x).shape)
    ours = attribute(model, x, relevance, composite=Composite(rule))
    theirs = zennit_layer_relevance(torch_model, x, relevance, rule)
    assert_close(ours, theirs)


def test_norm_on_avgpool_matches_zennit(rng):
    model, torch_model = twin(rng, [("avgpool", 2), ("flatten",)])
    x = rng.uniform(0.1, 1.0, (3, 2, 6, 6))
    relevance = rng.standard_normal(model(x).shape)
    ours = attribute(model, x, relevance, composite=Composite(stabilizer=1e-4))
    theirs = zennit_layer_relevance(torch_model, x, relevance, Norm(1e-4))
    assert_close(ours, theirs)
