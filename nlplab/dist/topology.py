"""3D parallelism: data × pipeline × tensor parallel ranks on one grid (Narayanan et al., 2021; DeepSpeed's 3D).

dp · pp · tp ranks, each with coordinates (d, s, t): tensor-parallel index t varies fastest, then the data-parallel
replica d, then the pipeline stage s:

    rank = t + tp · (d + dp · s)

so the ranks of one tensor-parallel group, which all-reduce activations twice per layer, are neighbours (on one
machine), and a pipeline stage — the only traffic between stages is one activation per micro-batch — spans the
slowest links. Each rank belongs to three groups: the tp ranks sharing (d, s) split each layer; the dp ranks
sharing (s, t) hold the same piece of the model and average its gradients; the pp ranks sharing (d, t) form one
pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist

from nlplab.dist.collectives import Group
from nlplab.errors import ConfigError


@dataclass(frozen=True)
class Topology:
    """A grid of dp × pp × tp ranks (see the module docstring)."""

    dp: int = 1
    pp: int = 1
    tp: int = 1

    def __post_init__(self) -> None:
        if min(self.dp, self.pp, self.tp) < 1:
            raise ConfigError(f"every parallel degree must be >= 1, got dp={self.dp} pp={self.pp} tp={self.tp}")

    @property
    def world_size(self) -> int:
        return self.dp * self.pp * self.tp

    def rank(self, d: int, s: int, t: int) -> int:
        return t + self.tp * (d + self.dp * s)

    def coords(self, rank: int) -> tuple[int, int, int]:
        """(d, s, t) of a rank."""
        return (rank // self.tp) % self.dp, rank // (self.tp * self.dp), rank % self.tp

    def groups(self, axis: str) -> list[list[int]]:
        """Every group along `axis` ("dp", "pp" or "tp"): the ranks that differ only in that coordinate."""
        if axis not in ("dp", "pp", "tp"):
            raise ConfigError(f"axis must be dp, pp or tp, got {axis!r}")
        found: dict[tuple[int, ...], list[int]] = {}
        for rank in range(self.world_size):
            d, s, t = self.coords(rank)
            key = {"dp": (s, t), "pp": (d, t), "tp": (d, s)}[axis]
            found.setdefault(key, []).append(rank)
        return list(found.values())

    def describe(self) -> str:
        """The grid as text: one line per rank with its coordinates and groups."""
        lines = [f"{self.world_size} ranks = data {self.dp} × pipeline {self.pp} × tensor {self.tp}",
                 "rank  data  stage  tensor   tp group   dp group   pp group"]
        member = {axis: {r: g for g in self.groups(axis) for r in g} for axis in ("tp", "dp", "pp")}
        for rank in range(self.world_size):
            d, s, t = self.coords(rank)
            lines.append(f"{rank:>4}  {d:>4}  {s:>5}  {t:>6}   " + "   ".join(
                f"{str(member[axis][rank]):<8}" for axis in ("tp", "dp", "pp")))
        return "\n".join(lines)


def process_groups(topology: Topology, torch_groups: bool = False) -> dict[str, Group]:
    """This process's {"dp", "pp", "tp"} groups. Every rank must call it (in the same order) when torch_groups is
    True: `torch.distributed.new_group` then creates each group's torch process group, for the "torch" algorithm."""
    if dist.get_world_size() != topology.world_size:
        raise ConfigError(f"the grid needs {topology.world_size} processes (dp {topology.dp} × pp {topology.pp} × "
                          f"tp {topology.tp}), {dist.get_world_size()} were started")
    mine: dict[str, Group] = {}
    for axis in ("dp", "pp", "tp"):
        for ranks in topology.groups(axis):
            torch_group = dist.new_group(ranks) if torch_groups else None
            if dist.get_rank() in ranks:
                mine[axis] = Group(ranks, torch_group)
    return mine
