"""Starting a group of processes that talk through `torch.distributed`, and ending it cleanly when one fails.

Three ways in:
- `spawn(fn, world_size, *args)`: forks `world_size` processes on this machine, joins them into one gloo process
  group over 127.0.0.1 (a `TCPStore` the parent opens on a free port) and returns what `fn(*args)` returned on
  each rank. Tests, benchmarks and labs use it. A rank that raises, dies or outlives `timeout` ends the whole
  group (the others are terminated) with a `RankError` that names the rank and carries its traceback.
- `init_from_env()`: inside a process started by `torchrun`, which sets RANK, WORLD_SIZE, MASTER_ADDR and
  MASTER_PORT, joins the group it describes (gloo on CPU, NCCL on CUDA).
- `joined(strategy, device, timeout)`: what `nlplab train --strategy ...` runs in — the launcher's group joined for
  the block (unless the process is in one already) and left after it, the device of this process (cuda:LOCAL_RANK
  on CUDA), and a broken collective turned into a RankError that says what happened.

Both give the process group a timeout, so a collective waiting for a rank that is gone fails instead of hanging.
"""

from __future__ import annotations

import datetime
import functools
import multiprocessing as mp
import os
import pickle
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any

import torch
import torch.distributed as dist

from nlplab.errors import ConfigError, NlplabError

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class RankError(NlplabError):
    """A rank of a process group failed (raised, died or timed out); the message names it and how."""


def init_from_env(backend: str | None = None, timeout: float = 300.0) -> tuple[int, int]:
    """Join the process group a launcher such as `torchrun` describes in the environment; returns (rank, world
    size). backend None: NCCL when CUDA is available, else gloo. `timeout` (seconds) bounds every collective."""
    missing = [name for name in LAUNCHER_VARIABLES if name not in os.environ]
    if missing:
        raise RankError(f"no launcher: {', '.join(missing)} not set; start the command with "
                        "`torchrun --nproc-per-node N -m nlplab ...`")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return dist.get_rank(), dist.get_world_size()


def launched() -> tuple[int, int]:
    """(rank, world size) that a launcher gave this process in its environment; (0, 1) when none did."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextmanager
def joined(strategy: str, device: torch.device, timeout: float) -> Iterator[torch.device]:
    """The block runs in the launcher's process group unless `strategy` is "single": joined here (NCCL for a CUDA
    `device`, else gloo; every collective bounded by `timeout` seconds) unless this process is in a group already,
    and left at the end. Yields the device to work on: cuda:LOCAL_RANK for CUDA, else `device`. A collective that
    breaks because another process died, was stopped or stayed silent for `timeout` seconds raises RankError.
    "single" refuses to run as one of several launched processes (they would all write the same run)."""
    world_size = launched()[1]
    if strategy == "single":
        if world_size > 1:
            raise ConfigError(f"started as {world_size} processes with --strategy single: each would train the same run "
                              "alone; choose --strategy ddp (or zero1, zero2, zero3, fsdp, tp, pp), or start one process")
        yield device
        return
    owned = not dist.is_initialized()
    if owned:
        if any(name not in os.environ for name in LAUNCHER_VARIABLES):
            raise ConfigError(f"--strategy {strategy} runs on several processes: start it with `torchrun "
                              "--nproc-per-node N -m nlplab train ...` (one machine; see README for several), or use "
                              "--strategy single")
        init_from_env("nccl" if device.type == "cuda" else "gloo", timeout)
    try:
        yield torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if device.type == "cuda" else device
    except RuntimeError as error:
        if not (isinstance(error, dist.DistError) or "gloo" in str(error)):
            raise
        cause = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0]).split(". ")[0]
        raise RankError(f"rank {dist.get_rank()} lost contact with the others ({cause}): a process died, was stopped or "
                        f"did not answer within --dist-timeout {timeout:g} s; the run keeps its last checkpoint, "
                        "continue it with --resume") from None
    finally:
        if owned:
            dist.destroy_process_group()


def _run_rank(fn: Callable[..., Any], args: tuple[Any, ...], rank: int, world_size: int, store_path: str,
              timeout: float, conn: Connection) -> None:
    """The body of one forked rank: join the group, run fn, send back ("ok", result) or ("error", traceback)."""
    os.environ.update(GLOO_SOCKET_IFNAME="lo", RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    try:
        store = dist.FileStore(store_path, world_size)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
        dist.barrier()
        message = ("ok", fn(*args))
        dist.barrier()
    except BaseException:  # noqa: BLE001 (whatever happened goes back to the parent as text)
        message = ("error", traceback.format_exc())
    conn.send_bytes(pickle.dumps(message))
    conn.close()
    if dist.is_initialized():
        dist.destroy_process_group()
    os._exit(0)


@functools.cache
def preload() -> None:
    """Load in this (parent) process what PyTorch loads lazily on first use — an optimizer's first step pulls in
    torch._dynamo, seconds on a busy machine — so that forked ranks inherit it instead of each loading it again."""
    import torch.distributed.fsdp  # noqa: F401
    import torch.distributed.optim  # noqa: F401

    param = torch.nn.Parameter(torch.zeros(1))
    param.grad = torch.zeros(1)
    torch.optim.Adam([param]).step()


def spawn(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 60.0) -> list[Any]:
    """[fn(*args) on rank 0, ..., on rank world_size-1], each rank a forked process in one gloo group on
    127.0.0.1 using one thread. fn finds its rank with `torch.distributed.get_rank()`. The results travel back
    pickled through a pipe (from our own children only). Raises RankError when a rank raises (with its
    traceback), exits without a result, or when the group is not done within `timeout` seconds."""
    if world_size < 1:
        raise RankError(f"world_size must be >= 1, got {world_size}")
    preload()
    store = tempfile.TemporaryDirectory(prefix="nlplab-spawn-")
    ctx = mp.get_context("fork")
    pipes = [ctx.Pipe(duplex=False) for _ in range(world_size)]
    procs = [ctx.Process(target=_run_rank, daemon=True,
                         args=(fn, args, rank, world_size, f"{store.name}/store", timeout, pipes[rank][1]))
             for rank in range(world_size)]
    for proc in procs:
        proc.start()
    for _, send in pipes:
        send.close()
    results: dict[int, Any] = {}
    try:
        _collect(procs, [recv for recv, _ in pipes], results, time.monotonic() + timeout, timeout)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        store.cleanup()
    return [results[rank] for rank in range(world_size)]


def _collect(procs: list[Any], pipes: list[Connection], results: dict[int, Any], deadline: float,
             timeout: float) -> None:
    """Read each rank's message as it comes; raise RankError at the first failure, death or the deadline. A rank
    that dies closes its end of the pipe, which reads as end-of-file here."""
    waiting = {pipe: rank for rank, pipe in enumerate(pipes)}
    while waiting:
        ready = wait(list(waiting), timeout=max(deadline - time.monotonic(), 0))
        if not ready:
            ranks = ", ".join(str(rank) for rank in sorted(waiting.values()))
            raise RankError(f"rank(s) {ranks} did not finish within {timeout:g} s; the group was stopped")
        for pipe in ready:
            rank = waiting.pop(pipe)
            try:
                status, value = pickle.loads(pipe.recv_bytes())
            except EOFError:
                procs[rank].join(1)
                raise RankError(f"rank {rank} died (exit code {procs[rank].exitcode}) before returning a result") from None
            if status == "error":
                raise RankError(f"rank {rank} failed{_dead(procs)}:\n{value}")
            results[rank] = value


def _dead(procs: list[Any]) -> str:
    """', after rank 0 died (exit code 3)' when other ranks are already gone without finishing (a failure at one
    rank usually shows first as a broken connection at another)."""
    time.sleep(0.2)
    dead = [f"rank {rank} died (exit code {proc.exitcode})" for rank, proc in enumerate(procs)
            if proc.exitcode not in (None, 0)]
    return f", after {', '.join(dead)}" if dead else ""
