"""Strategies behind one training loop: every strategy, PyTorch's engine and the hand-written one, trains a GPT on
2 processes to the weights of one process (float64, uneven shards of the global batch, gradient clipping), gives
the whole model's state dict and one process's optimizer state on rank 0, and resumes from them; bad choices fail
with a message that says what to do."""

import copy

import pytest
import torch
import torch.distributed as dist

from nlplab.dist.launch import spawn
from nlplab.dist.strategy import STRATEGIES, build_strategy
from nlplab.errors import ConfigError
from nlplab.train.checkpoint import load_state, save_state

MAX_NORM = 0.05
ROWS = 7
RESUME_AT = 2


def loop(name: str, impl: str, gpt, folder) -> tuple | None:
    """The training loop a generic trainer runs, stopped after RESUME_AT steps and resumed in a new strategy from a
    checkpoint of rank 0's consolidated weights and optimizer state; returns (state dict, optimizer state at the
    checkpoint, losses, gradient norms) on the main rank. Rank 1 starts from other weights: wrapping must give every
    rank rank 0's."""
    losses, norms, saved = [], [], None
    steps = gpt.batches(rows=ROWS)
    for part in (steps[:RESUME_AT], steps[RESUME_AT:]):
        strategy = build_strategy(name, impl)
        model = gpt.tiny()
        if strategy.rank == 1:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.5)
        if saved is not None:
            model.load_state_dict(saved["model"])
        model = strategy.wrap(model)
        optimizer = strategy.build_optimizer(lambda params: torch.optim.Adam(params, lr=0.01))
        if saved is not None:
            strategy.load_optimizer_state_dict(optimizer, saved["optimizer"])

        def step(batch):
            logits, _ = model(batch["ids"])
            return gpt.cross_entropy(logits, batch["targets"]), batch["targets"].numel(), {}

        for ids in part:
            strategy.zero_grad(optimizer)
            loss, count, _ = strategy.forward_backward(step, {"ids": ids[:, :-1], "targets": ids[:, 1:]})
            total = strategy.reduce_sum({"loss": loss.item() * count, "count": count})
            losses.append(total["loss"] / total["count"])
            norms.append(float(strategy.clip_grad_norm(MAX_NORM)))
            strategy.step(optimizer)
        state = {"model": strategy.state_dict(), "optimizer": strategy.optimizer_state_dict(optimizer)}
        if saved is None:
            if strategy.is_main:
                save_state(folder / f"{name}-{impl}.safetensors", state)
            strategy.barrier()
            saved = load_state(folder / f"{name}-{impl}.safetensors")
            moments = copy.deepcopy(saved["optimizer"])  # the optimizer steps the loaded step counters in place
    return ({k: v.detach().clone() for k, v in state["model"].items()}, moments, losses, norms) \
        if strategy.is_main else None


def all_strategies(gpt, folder) -> dict[tuple[str, str], tuple]:
    """Every strategy but fsdp (zero3 under another name), both implementations, one after the other."""
    return {(name, impl): loop(name, impl, gpt, folder) for name in STRATEGIES[1:] for impl in ("fused", "manual")
            if name != "fsdp"}


def assert_same_optimizer_state(ours, reference):
    assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in reference["param_groups"]]
    assert ours["state"].keys() == reference["state"].keys()
    for i, values in reference["state"].items():
        assert values.keys() == ours["state"][i].keys()
        for key, value in values.items():
            torch.testing.assert_close(torch.as_tensor(ours["state"][i][key]), value, rtol=0, atol=1e-10)


def test_every_strategy_trains_as_one_process_and_resumes_from_one_state(gpt, tmp_path):
    reference, moments, losses, norms = loop("single", "fused", gpt, tmp_path)
    assert min(norms) > MAX_NORM, "clipping is exercised"
    assert moments["state"][0]["exp_avg"].abs().sum() > 0
    results = spawn(all_strategies, 2, gpt, tmp_path)
    assert all(value is None for value in results[1].values()), "only rank 0 gets the consolidated weights"
    for (name, impl), (state, their_moments, their_losses, their_norms) in results[0].items():
        assert gpt.max_difference(state, reference) < 1e-10, (name, impl)
        assert_same_optimizer_state(their_moments, moments)
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
