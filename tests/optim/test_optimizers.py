"""Hand-written SGD / momentum / Nesterov / Adam / AdamW follow torch.optim step for step."""

from __future__ import annotations

import copy

import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.optim import OPTIMIZERS, SGD, Adam, AdamW, build_optimizer

CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=1e-2)),
    (Adam, torch.optim.Adam, dict()),
    (Adam, torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6)),
    (Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict()),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, betas=(0.5, 0.9), weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.0)),
]


@pytest.mark.parametrize(("ours", "reference", "kwargs"), CASES, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_trajectory_equals_torch(trajectory, ours, reference, kwargs):
    expected = trajectory(lambda ps: reference(ps, **kwargs))
    assert (expected[-1] - expected[0]).abs().max() > 1e-2
    torch.testing.assert_close(trajectory(lambda ps: ours(ps, **kwargs)), expected, atol=1e-10, rtol=0)


PAIRS = [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)]


@pytest.mark.parametrize(("ours", "reference"), PAIRS)
def test_defaults_equal_torch(ours, reference):
    p = [torch.zeros(2, requires_grad=True)]
    mine = ours(p).defaults
    assert mine == {k: reference(p).defaults[k] for k in mine}


@pytest.mark.parametrize("ours", [Adam, SGD])
def test_param_groups_with_own_lr(trajectory, ours):
    def groups(make):
        return lambda ps: make([{"params": ps[:2], "lr": 0.03}, {"params": ps[2:]}], lr=0.01, weight_decay=1e-2)

    reference = dict(PAIRS)[ours]
    expected = trajectory(lambda ps: groups(reference)(list(ps)), steps=30)
    torch.testing.assert_close(trajectory(lambda ps: groups(ours)(list(ps)), steps=30), expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True), lambda ps: Adam(ps, lr=1e-2)]
)
def test_resume_from_state_dict_continues_identically(make):
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 2).double()
    optimizer = make(model.parameters())
    batches = [(torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)) for _ in range(20)]

    def train(model, optimizer, batches):
        for x, y in batches:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()

    train(model, optimizer, batches[:10])
    resumed_model = copy.deepcopy(model)
    resumed = make(resumed_model.parameters())
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    train(model, optimizer, batches[10:])
    train(resumed_model, resumed, batches[10:])
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(q, p, atol=0, rtol=0)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_build_optimizer_manual_equals_fused(trajectory, name, weight_decay):
    def build(impl):
        return lambda ps: build_optimizer(name, ps, lr=0.02, weight_decay=weight_decay, momentum=0.8, impl=impl)

    fused, manual = build("fused"), build("manual")
    assert not isinstance(manual(iter([torch.zeros(1)])), type(fused(iter([torch.zeros(1)]))))
    torch.testing.assert_close(trajectory(manual), trajectory(fused), atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    ("name", "cls", "momentum", "nesterov"),
    [("sgd", SGD, 0.0, False), ("momentum", SGD, 0.7, False), ("nesterov", SGD, 0.7, True)],
)
def test_build_optimizer_sgd_variants(name, cls, momentum, nesterov):
    optimizer = build_optimizer(name, [torch.zeros(1)], lr=0.1, momentum=0.7, impl="manual")
    assert type(optimizer) is cls
    assert optimizer.defaults["momentum"] == momentum and optimizer.defaults["nesterov"] is nesterov


def test_build_optimizer_fused_gives_torch_classes():
    built = {name: build_optimizer(name, [torch.zeros(1)], lr=0.1, impl="fused") for name in OPTIMIZERS}
    assert type(built["nesterov"]) is torch.optim.SGD and built["nesterov"].defaults["nesterov"]
    assert type(built["adam"]) is torch.optim.Adam and type(built["adamw"]) is torch.optim.AdamW
    assert built["adamw"].defaults["fused"] is None


def test_build_optimizer_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="sgd, momentum, nesterov, adam, adamw"):
        build_optimizer("rmsprop", [torch.zeros(1)], lr=0.1)
    with pytest.raises(ConfigError, match="manual, fused"):
        build_optimizer("adam", [torch.zeros(1)], lr=0.1, impl="cuda")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGD(p, lr=-1.0),
        lambda p: SGD(p, lr=0.1, nesterov=True),
        lambda p: Adam(p, betas=(0.9, 1.0)),
        lambda p: AdamW(p, weight_decay=-0.1),
    ],
)
def test_bad_hyper_parameters_raise_config_error(make):
    with pytest.raises(ConfigError):
        make([torch.zeros(1)])
