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


def padded_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """`pad_batch` with its mask: {"ids": (B, T), "lengths": (B,), "mask": (B, T) bool, True at real tokens}."""
    ids, lengths = pad_batch(seqs, pad_id)
    return {"ids": ids, "lengths": lengths, "mask": torch.arange(ids.shape[1]) < lengths[:, None]}


def batch_rows(lengths: Sequence[int], batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
               bucket: int = 0) -> list[list[int]]:
    """Row indices of each batch. `shuffle` draws a random permutation from `generator`; `bucket > 0` then sorts
    each run of `bucket` batches by length (so a batch pads to similar lengths, not to the longest text in the
    data) and shuffles the order of the batches. Without shuffle, rows keep their order unless bucketed."""
    order = torch.randperm(len(lengths), generator=generator).tolist() if shuffle else list(range(len(lengths)))
    if bucket > 0:
        span = bucket * batch_size
        order = [row for s in range(0, len(order), span) for row in sorted(order[s : s + span], key=lengths.__getitem__)]
    groups = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if bucket > 0 and shuffle:
        groups = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
    return groups


def batches(ids: Sequence[Sequence[int]], labels: Sequence[int] | None, batch_size: int, pad_id: int,
            shuffle: bool = False, generator: torch.Generator | None = None, bucket: int = 0) -> Iterator[Batch]:
    """Yield batches {"ids": (B,T), "lengths": (B,), "mask": (B,T) bool, "rows": (B,), "labels": (B,)}, the rows
    grouped as `batch_rows` says; "rows" are the indices of the batch's examples in `ids`."""
    for rows in batch_rows([len(s) for s in ids], batch_size, shuffle, generator, bucket):
        batch = {**padded_batch([ids[r] for r in rows], pad_id), "rows": torch.tensor(rows)}
        if labels is not None:
            batch["labels"] = torch.tensor([labels[r] for r in rows], dtype=torch.long)
        yield batch


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
