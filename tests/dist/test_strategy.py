"""Strategies behind one training loop: every strategy, PyTorch's engine and the hand-written one, trains a GPT on
2 processes to the weights of one process (float64, uneven shards of the global batch, gradient clipping), and
gives the whole model's state dict on rank 0; bad choices fail with a message that says what to do."""

import pytest
import torch
import torch.distributed as dist

from nlplab.dist.launch import spawn
from nlplab.dist.strategy import STRATEGIES, build_strategy
from nlplab.errors import ConfigError

MAX_NORM = 0.05
ROWS = 7


def loop(name: str, impl: str, gpt) -> tuple[dict[str, torch.Tensor], list[float], list[float]] | None:
    """The training loop a generic trainer runs; returns (state dict, losses, gradient norms) on the main rank.
    Rank 1 starts from other weights: wrapping must give every rank rank 0's."""
    strategy = build_strategy(name, impl)
    model = gpt.tiny()
    if strategy.rank == 1:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5)
    model = strategy.wrap(model)
    optimizer = strategy.build_optimizer(lambda params: torch.optim.Adam(params, lr=0.01))

    def step(batch):
        logits, _ = model(batch["ids"])
        return gpt.cross_entropy(logits, batch["targets"]), batch["targets"].numel(), {}

    losses, norms = [], []
    for ids in gpt.batches(rows=ROWS):
        strategy.zero_grad(optimizer)
        loss, count, _ = strategy.forward_backward(step, {"ids": ids[:, :-1], "targets": ids[:, 1:]})
        total = strategy.reduce_sum({"loss": float(loss) * count, "count": count})
        losses.append(total["loss"] / total["count"])
        norms.append(float(strategy.clip_grad_norm(MAX_NORM)))
        strategy.step(optimizer)
    state = strategy.state_dict()
    return ({k: v.detach().clone() for k, v in state.items()}, losses, norms) if strategy.is_main else None


def all_strategies(gpt) -> dict[tuple[str, str], tuple]:
    """Every strategy but fsdp (zero3 under another name), both implementations, one after the other."""
    return {(name, impl): loop(name, impl, gpt) for name in STRATEGIES[1:] for impl in ("fused", "manual")
            if name != "fsdp"}


def test_every_strategy_trains_as_one_process(gpt):
    reference, losses, norms = loop("single", "fused", gpt)
    assert min(norms) > MAX_NORM, "clipping is exercised"
    results = spawn(all_strategies, 2, gpt)
    assert all(value is None for value in results[1].values()), "only rank 0 gets the consolidated weights"
    for (name, impl), (state, their_losses, their_norms) in results[0].items():
        assert gpt.max_difference(state, reference) < 1e-10, (name, impl)
        torch.testing.assert_close(their_losses, losses, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(their_norms, norms, rtol=1e-10, atol=1e-12)


def refusals(gpt) -> list[str]:
    messages = []
    for name, model in (("tp", torch.nn.Linear(2, 2)), ("pp", torch.nn.Linear(2, 2)), ("pp", gpt.tiny(n_layer=1))):
        try:
            build_strategy(name, "manual").wrap(model)
        except ConfigError as error:
            messages.append(str(error))
    return messages


def test_bad_strategies_fail_clearly(gpt):
    with pytest.raises(ConfigError, match="unknown strategy 'zero4'; choose one of single, ddp, zero1"):
        build_strategy("zero4")
    assert not dist.is_initialized()
    with pytest.raises(ConfigError, match=r"--strategy ddp runs on several processes; start it with `torchrun"):
        build_strategy("ddp")
    messages = spawn(refusals, 2, gpt)[0]
    assert messages[0].startswith("--strategy tp splits transformer blocks; this model has none")
    assert messages[1].startswith("--strategy pp splits a GPT into stages")
    assert messages[2].startswith("a pipeline of 2 stages needs at least 2 layers, the model has 1")
