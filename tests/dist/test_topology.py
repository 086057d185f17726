"""3D parallelism: the rank grid (tensor fastest, then data, then pipeline) and its groups; a GPT trained on 4
processes as data 2 × tensor 2 and as data 2 × pipeline 2 reaches the weights of one process (float64)."""

import pytest
import torch
import torch.distributed as dist

from nlplab.dist.data_parallel import DataParallel, shard_batch
from nlplab.dist.launch import RankError, spawn
from nlplab.dist.pipeline import GPTStage, Pipeline
from nlplab.dist.tensor_parallel import full_state_dict, tensor_parallel_
from nlplab.dist.topology import Topology, process_groups
from nlplab.errors import ConfigError
from nlplab.optim import Adam


def test_grid_coordinates_and_groups():
    grid = Topology(dp=2, pp=2, tp=2)
    assert [grid.coords(r) for r in (0, 1, 2, 5, 7)] == [(0, 0, 0), (0, 0, 1), (1, 0, 0), (0, 1, 1), (1, 1, 1)]
    assert all(grid.rank(*grid.coords(r)) == r for r in range(8))
    assert grid.groups("tp") == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert grid.groups("dp") == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert grid.groups("pp") == [[0, 4], [1, 5], [2, 6], [3, 7]]
    lines = Topology(dp=2, pp=2, tp=1).describe().splitlines()
    assert lines[0] == "4 ranks = data 2 × pipeline 2 × tensor 1"
    assert lines[2].split() == ["0", "0", "0", "0", "[0]", "[0,", "1]", "[0,", "2]"]
    with pytest.raises(ConfigError, match="axis must be dp, pp or tp"):
        grid.groups("ep")


def train_on_grid(grid: Topology, gpt) -> dict[str, torch.Tensor]:
    """This rank's part of the model (dense names, pieces gathered) after 3 Adam steps."""
    groups = process_groups(grid)
    d, s, _ = grid.coords(dist.get_rank())
    model = gpt.tiny(n_layer=2)
    if grid.pp > 1:
        model = GPTStage(model, s, grid.pp)
    if grid.tp > 1:
        tensor_parallel_(model, groups["tp"])
    replicas = DataParallel(model, groups["dp"])
    optimizer = Adam(model.parameters(), lr=0.01)
    pipeline = Pipeline(model, groups["pp"], gpt.cross_entropy, 8, tied=model.tied) if grid.pp > 1 else None
    for ids in gpt.batches(rows=8):
        optimizer.zero_grad()
        local = shard_batch(ids, d, grid.dp)
        if pipeline is not None:
            pipeline.train_step(local[:, :-1], local[:, 1:], micro_batches=2)
        else:
            gpt.loss(model, local).backward()
        replicas.sync_gradients()
        optimizer.step()
    return full_state_dict(model)


@pytest.mark.parametrize("grid", [Topology(dp=2, pp=1, tp=2), Topology(dp=2, pp=2, tp=1)])
def test_3d_grid_trains_as_one_process(grid, gpt):
    reference = gpt.train_single(lambda params: Adam(params, lr=0.01), rows=8)
    seen = set()
    for state in spawn(train_on_grid, 4, grid, gpt):
        assert max((state[name] - reference[name]).abs().max().item() for name in state) < 1e-10
        seen |= set(state)
    assert seen == set(reference)


def wrong_world() -> None:
    process_groups(Topology(dp=2, tp=2))


def test_grid_must_match_the_processes():
    with pytest.raises(RankError, match=r"the grid needs 4 processes \(dp 2 × pp 1 × tp 2\), 2 were started"):
        spawn(wrong_world, 2)
