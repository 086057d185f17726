"""Pipeline parallelism by hand: GPipe and 1F1B over GPT stages give the gradients of one process (float64), with
uneven micro-batches; the schedules run each micro-batch's forward before its backward and 1F1B holds at most
p − s of them; more stages than layers is refused."""

import pytest
import torch

from nlplab.dist.collectives import Group
from nlplab.dist.launch import spawn
from nlplab.dist.pipeline import GPTStage, Pipeline, gpipe_schedule, one_f_one_b_schedule, replay, split_layers
from nlplab.errors import ConfigError


def pipeline_gradients(schedule: str, micro_batches: int, gpt) -> tuple[float, float | None, int]:
    """(max gradient difference to one process, loss difference on the last stage, most micro-batches held)."""
    group = Group()
    ids = gpt.batches(1, rows=7)[0]
    stage = GPTStage(gpt.tiny(n_layer=4), group.rank, group.size)
    pipeline = Pipeline(stage, group, gpt.cross_entropy, hidden=8, schedule=schedule, tied=stage.tied)
    report = pipeline.train_step(ids[:, :-1], ids[:, 1:], micro_batches)
    dense = gpt.tiny(n_layer=4)
    loss = gpt.loss(dense, ids)
    loss.backward()
    grads = dict(dense.named_parameters())
    difference = max((p.grad - grads[name].grad).abs().max().item() for name, p in stage.named_parameters())
    return difference, None if report.loss is None else report.loss - loss.item(), report.max_in_flight


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_pipeline_gradients_equal_one_process(world, schedule, gpt):
    micro_batches = 3
    ranks = spawn(pipeline_gradients, world, schedule, micro_batches, gpt)
    for stage, (difference, loss, held) in enumerate(ranks):
        assert difference < 1e-12
        assert (loss is None) == (stage < world - 1)
        assert held == (micro_batches if schedule == "gpipe" else min(world - stage, micro_batches))
    assert abs(ranks[-1][1]) < 1e-12


@pytest.mark.parametrize("schedule", [gpipe_schedule, one_f_one_b_schedule])
def test_schedules_run_every_micro_batch_once_forward_before_backward(schedule):
    for stages in (1, 2, 4):
        for stage in range(stages):
            order = schedule(6, stage, stages)
            assert sorted(order) == sorted([("F", i) for i in range(6)] + [("B", i) for i in range(6)])
            assert all(order.index(("F", i)) < order.index(("B", i)) for i in range(6))
    assert one_f_one_b_schedule(4, 0, 2) == [("F", 0), ("F", 1), ("B", 0), ("F", 2), ("B", 1), ("F", 3), ("B", 2),
                                             ("B", 3)]


def test_split_layers():
    assert split_layers(5, 2) == [range(0, 3), range(3, 5)]
    with pytest.raises(ConfigError, match="a pipeline of 3 stages needs at least 3 layers, the model has 2"):
        split_layers(2, 3)
    with pytest.raises(ConfigError, match="unknown pipeline schedule"):
        Pipeline(torch.nn.Linear(1, 1), None, lambda y, t: y, 1, schedule="zigzag")


@pytest.mark.parametrize("schedule", [gpipe_schedule, one_f_one_b_schedule])
def test_replayed_schedules_idle_as_the_formula(schedule):
    """Equal costs (forward 1, backward 2) on p dedicated processors: idle fraction (p − 1)/(m + p − 1)."""
    for stages, micro_batches in ((2, 1), (2, 8), (4, 4), (4, 16)):
        durations = [[(kind, i, 1.0 if kind == "F" else 2.0) for kind, i in schedule(micro_batches, s, stages)]
                     for s in range(stages)]
        makespan, busy = replay(durations)
        assert makespan == 3 * (micro_batches + stages - 1)
        assert 1 - sum(busy) / stages / makespan == pytest.approx((stages - 1) / (micro_batches + stages - 1))
    with pytest.raises(ValueError, match="deadlock"):
        replay([[("B", 0, 1.0), ("F", 0, 1.0)], [("F", 0, 1.0), ("B", 0, 1.0)]])
