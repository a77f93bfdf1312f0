"""lfp_ref.interop: torch.nn <-> lfp_ref conversion, exact in both directions."""

import io
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import interop
from tests.tolerances import assert_close

_HINT = "needs torch: run `make crosscheck` (the crosscheck extra)"


def every_layer_torch(torch, seed, dtype):
    """A torch Sequential with every supported module, nested Sequentials, both kinds of
    residual block, and modules in both modes."""
    nn = torch.nn
    torch.manual_seed(seed)
    block = interop.TorchResidual(
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.SiLU()),
    )
    down = interop.TorchResidual(
        nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.ELU(0.7)),
        shortcut=nn.Sequential(nn.Conv2d(4, 6, 1, stride=2), nn.Identity()),
    )
    model = nn.Sequential(
        nn.Conv2d(2, 4, (3, 5), stride=(1, 2), padding=(1, 2), dilation=1),
        nn.ReLU(),
        block,
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(2, stride=1, padding=1),
        down,
        nn.AvgPool2d(2, padding=1),
        nn.Flatten(),
        nn.Sequential(nn.Dropout(0.3), nn.Linear(6 * 3 * 2, 7), nn.Tanh()),
        nn.BatchNorm1d(7, eps=1e-3, momentum=0.2),
        nn.Sigmoid(),
        nn.Linear(7, 3, bias=False),
    ).to(dtype)
    with torch.no_grad():  # BN state off its init, so copying it is tested
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.weight.uniform_(-1.5, 1.5)
                module.bias.normal_()
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked += 5
    model.eval()
    model[2].branch[1].train()  # a train-mode BN inside an eval-mode model
    return model


def assert_same_state(a, b):
    """Two state dicts (NumPy) with the same keys in the same order, bitwise equal."""
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert np.array_equal(a[key], b[key]), key


def torch_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


@pytest.mark.crosscheck
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_torch_round_trip_is_exact(rng, dtype_name):
    torch = pytest.importorskip("torch", reason=_HINT)
    dtype = getattr(torch, dtype_name)
    module = every_layer_torch(torch, int(rng.integers(1000)), dtype)
    model = interop.from_torch(module, dtype=np.dtype(dtype_name))
    # same names, same values (bitwise), same modes
    assert_same_state(model.state_dict(), torch_state(module))
    modes = {name: layer.training for name, layer in model.named_layers()}
    for name, sub in module.named_modules():
        if not name.endswith(".sum"):
            assert modes[name] == sub.training, name
    assert modes["2.branch.1"] and not modes["2.branch.0"]
    # and back
    back = interop.to_torch(model)
    assert_same_state(torch_state(back), torch_state(module))
    assert [(n, m.training) for n, m in back.named_modules()] == [
        (n, m.training) for n, m in module.named_modules()
    ]
    assert next(back.parameters()).dtype == dtype


@pytest.mark.crosscheck
def test_forward_agrees_to_rounding(rng):
    torch = pytest.importorskip("torch", reason=_HINT)
    module = every_layer_torch(torch, int(rng.integers(1000)), torch.float64)
    module[8][0].eval()  # Dropout masks differ between the two; compare in eval mode
    model = interop.from_torch(module)
    x = rng.normal(size=(5, 2, 9, 8))
    expected = module(torch.from_numpy(x)).detach().numpy()
    assert_close(model(x), expected)
    # the train-mode BN updated its running statistics the same way on both sides
    assert_close(model.state_dict()["2.branch.1.running_var"],
                 module.state_dict()["2.branch.1.running_var"].numpy())  # fmt: skip


@pytest.mark.crosscheck
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_lfp_ref_round_trip_is_exact(rng, dtype):
    pytest.importorskip("torch", reason=_HINT)
    model = lfp.Sequential(
        lfp.Conv2d(1, 3, 3, stride=2, padding=1, rng=rng, dtype=dtype),
        lfp.BatchNorm2d(3, dtype=dtype),
        lfp.ReLU(),
        lfp.Residual(lfp.Conv2d(3, 3, 3, padding=1, rng=rng, dtype=dtype)),
        lfp.Flatten(),
        lfp.Dense(3 * 4 * 4, 2, rng=rng, dtype=dtype),
    )
    model[1].training = False
    back = interop.from_torch(interop.to_torch(model), dtype=dtype)
    assert_same_state(back.state_dict(), model.state_dict())
    assert [(n, type(lay), lay.training) for n, lay in back.named_layers()] == [
        (n, type(lay), lay.training) for n, lay in model.named_layers()
    ]


@pytest.mark.crosscheck
def test_from_torch_casts_float32_to_float64_exactly():
    torch = pytest.importorskip("torch", reason=_HINT)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3))  # float32
    model = interop.from_torch(module)
    assert model.dtype == np.float64
    assert np.array_equal(model[0].weight, module[0].weight.detach().numpy().astype(np.float64))


@pytest.mark.crosscheck
def test_torch_residual_pickles():
    torch = pytest.importorskip("torch", reason=_HINT)
    module = every_layer_torch(torch, 0, torch.float64)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded[2]) is interop.TorchResidual
    assert_same_state(torch_state(loaded), torch_state(module))


@pytest.mark.crosscheck
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda nn: nn.GELU(), TypeError, r"module '1' is GELU.*supported: Sequential, Linear"),
        (lambda nn: nn.Conv1d(3, 3, 1), TypeError, r"module '1' is Conv1d"),
        (lambda nn: nn.Conv2d(4, 4, 3, groups=2), ValueError, r"groups=1"),
        (lambda nn: nn.Conv2d(4, 4, 3, padding="same"), ValueError, r"padding='same'"),
        (lambda nn: nn.AvgPool2d(2, ceil_mode=True), ValueError, r"ceil_mode=False"),
        (lambda nn: nn.AvgPool2d(2, count_include_pad=False), ValueError, "count_include_pad"),
        (lambda nn: nn.MaxPool2d(2, dilation=2), ValueError, r"dilation=1"),
        (lambda nn: nn.BatchNorm2d(4, bias=False), ValueError, r"bias=False"),
        (lambda nn: nn.Flatten(2), ValueError, r"start_dim=1"),
    ],
    ids=["gelu", "conv1d", "groups", "same", "ceil", "count_include_pad", "dilation", "bn-bias",
         "flatten-dim"],
)  # fmt: skip
def test_unsupported_modules_are_named(make, error, match):
    torch = pytest.importorskip("torch", reason=_HINT)
    module = torch.nn.Sequential(torch.nn.Identity(), make(torch.nn))
    with pytest.raises(error, match=match):
        interop.from_torch(module)


@pytest.mark.crosscheck
def test_named_sequential_children_are_rejected():
    torch = pytest.importorskip("torch", reason=_HINT)
    module = torch.nn.Sequential(OrderedDict(fc=torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"children are named \['fc'\].*nn.Sequential\(\*layers\)"):
        interop.from_torch(module)
    with pytest.raises(TypeError, match="expects a torch.nn.Module"):
        interop.from_torch(lfp.Dense(2, 2))


@pytest.mark.crosscheck
def test_to_torch_rejects_layers_without_a_torch_twin():
    pytest.importorskip("torch", reason=_HINT)
    with pytest.raises(TypeError, match=r"Step\(\) has no torch counterpart.*supported"):
        interop.to_torch(lfp.Sequential(lfp.Dense(2, 2), lfp.Step()))


# --------------------------------------------------------------------------- the registry


@pytest.mark.crosscheck
def test_one_registration_adds_a_layer_type():
    """A new lfp_ref layer type converts both ways after one ``register`` call."""
    torch = pytest.importorskip("torch", reason=_HINT)

    class Softplus(lfp.layers.base.Activation):
        def function(self, x):
            return np.logaddexp(0, x)

        def derivative(self, x, y):
            return 1 / (1 + np.exp(-x))

    model = lfp.Sequential(lfp.Dense(3, 4, rng=0), Softplus(), lfp.Dense(4, 2, rng=1))
    with pytest.raises(TypeError, match=r"Softplus\(\) has no torch counterpart"):
        interop.to_torch(model)
    try:
        interop.register(
            Softplus,
            "Softplus",
            to_torch=lambda layer, nn, convert: nn.Softplus(),
            from_torch=lambda module, ctx: Softplus(),
        )
        twin = interop.to_torch(model)
        assert type(twin[1]) is torch.nn.Softplus
        back = interop.from_torch(twin)
        assert [type(layer) for layer in back] == [lfp.Dense, Softplus, lfp.Dense]
        assert_same_state(back.state_dict(), model.state_dict())
        x = np.random.default_rng(0).normal(size=(5, 3))
        assert_close(back(x), twin(torch.from_numpy(x)).detach().numpy())
    finally:
        del interop.CONVERSIONS[Softplus]
        interop._from_torch_classes.cache_clear()
    assert "Softplus" not in interop.supported_torch()


@pytest.mark.crosscheck
def test_lfp_ref_subclasses_convert_as_their_base_torch_subclasses_do_not():
    """to_torch looks a layer's class up along its MRO; from_torch takes exact torch classes (a
    torch subclass may override forward)."""
    torch = pytest.importorskip("torch", reason=_HINT)

    class MyReLU(lfp.ReLU):
        pass

    class MyLinear(torch.nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    assert type(interop.to_torch(lfp.Sequential(lfp.Dense(2, 2), MyReLU()))[1]) is torch.nn.ReLU
    with pytest.raises(TypeError, match=r"module '0' is MyLinear.*supported: Sequential, Linear"):
        interop.from_torch(torch.nn.Sequential(MyLinear(2, 2)))


def test_registry_lists_what_it_converts():
    assert interop.SUPPORTED_TORCH == interop.supported_torch()
    assert interop.SUPPORTED_TORCH[:2] == ("Sequential", "Linear")
    assert interop.SUPPORTED_TORCH[-1] == "TorchResidual"
    assert set(interop.supported_layers()) >= {"Dense", "Conv2d", "BatchNorm2d", "Residual"}
    with pytest.raises(ValueError, match="'Linear' already converts to Dense"):
        interop.register(lfp.Identity, "Linear", to_torch=None, from_torch=None)
    assert interop.CONVERSIONS[lfp.Identity].torch_name == "Identity"


def test_interop_imports_without_torch(tmp_path):
    """The module imports without torch; using it says how to install torch."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('simulated: torch is not installed')\n")
    code = (
        "import lfp_ref.interop as i\n"
        "try:\n"
        "    i.to_torch(None)\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "make crosscheck" in out.stdout


@pytest.mark.crosscheck
@pytest.mark.parametrize(
    ("setup", "given", "expected"),
    [
        ("", None, "PASSIVE"),  # lfp_ref loads torch: its OpenMP workers sleep when idle
        ("", "ACTIVE", "ACTIVE"),  # the user's choice stays
        ("import torch\n", None, "unset"),  # torch loaded first: too late, nothing changed
    ],
)
def test_import_torch_sets_a_passive_openmp_wait_policy_only_before_torch_loads(
    setup, given, expected
):
    pytest.importorskip("torch", reason=_HINT)
    code = (
        f"{setup}import os\n"
        "from lfp_ref.verify import interop, peers\n"
        "interop.import_torch(); peers._torch()\n"
        "print(os.environ.get('OMP_WAIT_POLICY', 'unset'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == expected
