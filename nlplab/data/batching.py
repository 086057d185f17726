"""From token ids to padded batches: truncate to the window, shuffle with a seeded generator, pad per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

Batch = dict[str, torch.Tensor]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest one: returns ids (B, T) and lengths (B,). Empty sequences get one pad."""
    lengths = torch.tensor([max(len(s), 1) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, lengths


def batches(ids: Sequence[Sequence[int]], labels: Sequence[int] | None, batch_size: int, pad_id: int,
            shuffle: bool = False, generator: torch.Generator | None = None) -> Iterator[Batch]:
    """Yield batches {"ids": (B,T), "lengths": (B,), "mask": (B,T) bool, "labels": (B,)} in order or shuffled."""
    order = torch.randperm(len(ids), generator=generator).tolist() if shuffle else range(len(ids))
    order = list(order)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, lengths = pad_batch([ids[r] for r in rows], pad_id)
        batch = {"ids": x, "lengths": lengths, "mask": torch.arange(x.shape[1]) < lengths[:, None]}
        if labels is not None:
            batch["labels"] = torch.tensor([labels[r] for r in rows], dtype=torch.long)
        yield batch


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
