"""Data-parallel training over processes and machines: torchrun + DistributedDataParallel.

``torchrun --nproc-per-node N -m lstm_asr train RECIPE`` starts N copies of the command, one per GPU (or CPU
share), on each of ``--nnodes`` machines; torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous
address, and :func:`distributed_session` joins the processes into one group (``nccl`` on CUDA, ``gloo`` on CPU).
Outside torchrun it is a no-op: one process, nothing changes.

How the training loop stays one run rather than N:

* every process builds the same epoch of length-bucketed batches (a pure function of seed and epoch) and takes an
  equal, disjoint share of it (:func:`shard_batches`), so all do the same number of steps and none waits forever
  in an all-reduce; the per-rank index of the next batch stays the exact-resume sampler position;
* ``DistributedDataParallel`` averages the gradients, so the weights stay identical on every process;
* decisions are taken once: the finiteness of each step's loss is agreed by all processes (a step is dropped on
  all or none); the dev error is computed on rank 0 and broadcast, so learning-rate schedule, best checkpoint,
  early stopping and the weight-noise stage agree; the wall-clock budget is decided by any-of;
* only rank 0 writes: the experiment folder, checkpoints, metrics, results, the progress bar and console output
  (the other ranks' stdout is silenced; their errors still reach stderr). Checkpoints and feature stores are read
  by rank 0 and broadcast, so multi-node runs need the shared filesystem only for the corpus and feature store.

A resume must use the same number of processes: the sampler position and the per-process random states depend on
it (a different count is a one-line error).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch import nn

from lstm_asr.errors import LstmAsrError
from lstm_asr.training.devices import select_device

T = TypeVar("T")

# Rank 0 alone decodes the dev set, and prepares features, while the others wait in a collective: the default
# 10-30 minute timeouts are too short for a full prep of a large corpus.
TIMEOUT = timedelta(hours=2)
# A folder: every process saves its final weights there as rank<N>.pt (a check that the processes stayed in sync).
RANK_WEIGHTS_ENV = "LSTM_ASR_RANK_WEIGHTS"


def torchrun_environment(env: Mapping[str, str] = os.environ) -> tuple[int, int, int]:
    """(world size, rank, local rank) as torchrun sets them; (1, 0, 0) outside torchrun."""
    if "WORLD_SIZE" not in env:
        return 1, 0, 0
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    try:
        world, rank, local = (int(env.get(k, "0")) for k in names)
    except ValueError:
        got = ", ".join(f"{k}={env.get(k)!r}" for k in names)
        raise LstmAsrError(f"torchrun environment: {got}: expected integers") from None
    if world < 1 or not 0 <= rank < world or local < 0 or (world > 1 and "RANK" not in env):
        raise LstmAsrError(f"torchrun environment: RANK={env.get('RANK')!r} is not a process of WORLD_SIZE={world}")
    return world, rank, local


def shard_batches(batches: list[T], rank: int, world_size: int) -> list[T]:
    """This process's share of an epoch's batches: disjoint between processes and the same count for all.

    Process ``r`` takes batches ``r, r + W, r + 2W, ...`` of the (shuffled) epoch; when the count is not a
    multiple of ``W`` the first few batches are reused to fill the last round (as torch's DistributedSampler
    pads), so every utterance is seen each epoch and all processes step together. ``W = 1`` returns ``batches``.
    """
    if world_size == 1:
        return batches
    if not batches:
        return []
    rounds = math.ceil(len(batches) / world_size)
    padded = [batches[i % len(batches)] for i in range(rounds * world_size)]
    return padded[rank::world_size]


@dataclass
class Distributed:
    """This process's place in the run, and the few collectives the training loop needs.

    With ``world_size == 1`` every method is the identity (no process group is involved)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collective tensors live

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        """The seed of this process's random generators once the (identical) model is built: dropout, masking and
        weight noise then draw differently on each process. ``seed`` itself on rank 0."""
        return (seed + 1_000_003 * self.rank) % 2**32

    def default_threads(self) -> int:
        """Torch threads per process when the recipe says 0: the node's cores shared between its processes."""
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.active else 1
        return max(1, (os.cpu_count() or 1) // max(per_node, 1))

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train through: DDP (averaging gradients in the backward pass) when distributed."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # Buffer syncing stays at its default: the only buffers are the normaliser's few statistics.
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def shard(self, batches: list[T]) -> list[T]:
        return shard_batches(batches, self.rank, self.world_size)

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (any picklable value)."""
        if not self.active:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def _reduce(self, values: list[float], op: tdist.ReduceOp) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=op)
        return t.tolist()

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` is true on every rank."""
        return flag if not self.active else bool(self._reduce([float(flag)], tdist.ReduceOp.MIN)[0])

    def any_true(self, flag: bool) -> bool:
        """True when ``flag`` is true on some rank."""
        return flag if not self.active else bool(self._reduce([float(flag)], tdist.ReduceOp.MAX)[0])

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over ranks (the values themselves with one process)."""
        return values if not self.active else self._reduce([float(v) for v in values], tdist.ReduceOp.SUM)

    def _on_main(self, fn: Callable[[], T]) -> tuple[T | None, str | None]:
        """``(fn(), None)`` on rank 0, ``(None, message)`` if it raised an LstmAsrError; ``(None, None)`` elsewhere."""
        if not self.is_main:
            return None, None
        try:
            return fn(), None
        except LstmAsrError as exc:
            return None, str(exc)

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and give its result to every rank (e.g. loading a checkpoint, the dev error).

        An :class:`LstmAsrError` raised by ``fn`` is raised on every rank, so no rank waits for the others forever.
        """
        if not self.active:
            return fn()
        result, error = self.broadcast(self._on_main(fn))
        if error is not None:
            raise LstmAsrError(error)
        return result  # type: ignore[return-value]

    def main_first(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0, then on the other ranks (e.g. feature preparation: rank 0 prepares, the others
        find the store up to date). An error on rank 0 is raised on every rank."""
        if not self.active:
            return fn()
        result, error = self._on_main(fn)
        error = self.broadcast(error)
        if error is not None:
            raise LstmAsrError(error)
        return result if self.is_main else fn()  # type: ignore[return-value]

    def check_resume(self, ckpt: Mapping[str, Any], path: Any) -> None:
        """Refuse a checkpoint written by another number of processes (one-line error)."""
        saved = int(ckpt.get("world_size", 1))
        if saved != self.world_size:
            raise LstmAsrError(f"{path}: cannot resume: it was written by a run of {saved} training process"
                               f"{'es' if saved != 1 else ''} and this run has {self.world_size} (the sampler "
                               f"position and random states depend on it): resume with {saved} in all "
                               "(torchrun --nnodes x --nproc-per-node)")

    def rank_states(self, per_rank: dict[str, Any]) -> dict[str, Any]:
        """Checkpoint entries for per-process state (random generators, loss sums): ``{"ranks": [...]}`` with every
        rank's ``per_rank``, or nothing with one process (whose state the checkpoint holds already)."""
        return {"ranks": self.gather(per_rank)} if self.active else {}

    def own_state(self, ckpt: Mapping[str, Any]) -> dict[str, Any] | None:
        """This rank's entry of :meth:`rank_states` in a checkpoint (None with one process)."""
        return ckpt["ranks"][self.rank] if self.active else None

    def dump_weights(self, model: nn.Module) -> None:
        """With ``$LSTM_ASR_RANK_WEIGHTS`` set, save this process's weights there as ``rank<N>.pt``."""
        folder = os.environ.get(RANK_WEIGHTS_ENV)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                       Path(folder) / f"rank{self.rank}.pt")


@contextmanager
def distributed_session(device_name: str) -> Iterator[tuple[Distributed, torch.device]]:
    """Join the torchrun process group, if any, for the duration of a training run; yields the process's place and
    its device (``training.device`` resolved for its local rank). The group is destroyed on the way out."""
    world, rank, local = torchrun_environment()
    device = select_device(device_name, local)
    if world == 1:
        yield Distributed(), device
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    stdout = sys.stdout
    try:
        tdist.init_process_group(backend, timeout=TIMEOUT)
    except (RuntimeError, ValueError) as exc:
        raise LstmAsrError(f"torchrun: cannot join the {backend} process group of {world} processes "
                           f"({str(exc).splitlines()[0][:160]})") from None
    try:
        if rank != 0:  # only rank 0 talks; the others' errors still reach stderr
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - closed below
        yield Distributed(world, rank, local, device), device
        # Leave together: rank 0 decodes dev and test after the last epoch while the others are done, and a gloo
        # group torn down by one side while the other still holds its connections can abort that process at exit
        # ("terminate called without an active exception"). Only on a normal exit: after an error the peers may
        # never arrive.
        tdist.barrier()
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
        tdist.destroy_process_group()



class NullWriter:
    """Stands in for a writer (the metrics log) on the ranks that do not write: every method does nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0: the process that reports (the CLI prints results only there)."""
    return os.environ.get("RANK", "0") == "0"
