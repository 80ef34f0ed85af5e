"""A bidirectional layer's two directions run at the same time on a CPU, one core each.

The two directions of a layer are independent recurrences. Run one after the other, each ``nn.LSTM`` call spreads
its small per-step matrix products over all OpenMP threads and synchronises them at every step; on 2 cores at a
batch of 8 that synchronisation costs more than the second core gives. Here each direction runs in its own worker
thread with a single OpenMP thread, forward and backward (a custom autograd function computes each direction's
gradients in its worker), so both cores stay busy without per-step hand-offs. Each direction computes exactly the
ops it computes alone, so nothing changes in what the layer computes; ``bench/RESULTS.md`` (issue 16) has the
speed-up.

Used when the input is on the CPU, float32, outside autocast, with torch set to 2 threads or more, the layer's work
is large enough to pay for the hand-off (:data:`MIN_FLOPS_PER_DIRECTION`), and the process's OpenMP runtime can be
told to use one thread in the workers (GNU, LLVM or Intel OpenMP); otherwise the directions run one after the other
as before.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_omp_set_num_threads: Callable[[int], None] | None = None
_searched = False


def _find_omp_setter() -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime torch loaded (found in this process's memory map)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split()[-1] if line.split() else ""
        if any(name in Path(path).name for name in ("libgomp", "libiomp5", "libomp")):
            try:
                return ctypes.CDLL(path).omp_set_num_threads
            except (OSError, AttributeError):
                continue
    return None


def _one_thread_worker() -> None:
    torch.get_num_threads()  # torch's per-thread OpenMP set-up first (it would reset what follows) ...
    assert _omp_set_num_threads is not None
    _omp_set_num_threads(1)  # ... then one OpenMP thread for everything this worker runs


def _worker_pool() -> ThreadPoolExecutor | None:
    global _pool, _omp_set_num_threads, _searched
    with _lock:
        if not _searched:
            _searched = True
            _omp_set_num_threads = _find_omp_setter()
            if _omp_set_num_threads is not None:
                _pool = ThreadPoolExecutor(2, thread_name_prefix="lstm-asr-direction", initializer=_one_thread_worker)
        return _pool


def _forget_pool_after_fork() -> None:
    """A forked child has none of its parent's worker threads: it makes its own pool on first use."""
    global _pool, _lock, _searched
    _pool, _lock, _searched = None, threading.Lock(), False


os.register_at_fork(after_in_child=_forget_pool_after_fork)


# Below this much work per direction (multiply-adds x 2 of one forward pass) the directions run one after the other.
# Measured gains (bench/RESULTS.md, issue 16) are for the 3x250 network at the full frame rate, 2-4 GFLOP per
# direction at 8 x 330 frames; the demo recipe's layers (16 x 110 steps, 4 x 160 gates, ~500 inputs: ~1.1 GFLOP)
# trained no faster per epoch with them, and a toy layer was 3x slower (the hand-off costs ~0.1-0.5 ms a call).
MIN_FLOPS_PER_DIRECTION = 1.5e9


def can_run_concurrently(x: torch.Tensor, hidden: int) -> bool:
    """Whether :func:`run_directions` runs the two directions at the same time for this input (B, T, D) to a layer
    of ``hidden`` units per direction."""
    flops = 2.0 * x.shape[0] * x.shape[1] * 4 * hidden * (x.shape[-1] + hidden)
    return (x.device.type == "cpu" and x.dtype == torch.float32 and flops >= MIN_FLOPS_PER_DIRECTION
            and torch.get_num_threads() >= 2 and not torch.is_autocast_enabled("cpu")
            and not torch.jit.is_scripting() and not torch.jit.is_tracing() and _worker_pool() is not None)


def _run(module: nn.Module, x: torch.Tensor, grad: bool, inference: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One direction in a worker: its own graph on a detached copy of the input when gradients are wanted."""
    if not grad:
        with torch.inference_mode(inference), torch.no_grad():
            return x, module(x)[0]
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(x.requires_grad)
        return leaf, module(leaf)[0]


class _TwoDirections(torch.autograd.Function):
    """Both directions' forward passes in the workers; their backward passes too, each in its worker."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, x_rev: torch.Tensor, fwd: nn.Module, bwd: nn.Module,  # type: ignore[override]
                *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool = _worker_pool()
        assert pool is not None
        jobs = [pool.submit(_run, m, inp, True, False) for m, inp in ((fwd, x), (bwd, x_rev))]
        (leaf_f, out_f), (leaf_b, out_b) = (j.result() for j in jobs)
        ctx.graphs = ((leaf_f, out_f, fwd), (leaf_b, out_b, bwd))
        return out_f.detach(), out_b.detach()

    @staticmethod
    def backward(ctx, grad_f: torch.Tensor, grad_b: torch.Tensor):  # type: ignore[override]
        pool = _worker_pool()
        assert pool is not None

        def direction_grads(leaf: torch.Tensor, out: torch.Tensor, module: nn.Module,
                            grad: torch.Tensor) -> list[torch.Tensor | None]:
            wanted = [leaf, *module.parameters()]
            needs = [t.requires_grad for t in wanted]
            got = iter(torch.autograd.grad(out, [t for t, n in zip(wanted, needs, strict=True) if n], grad,
                                           allow_unused=True)) if any(needs) else iter(())
            return [next(got) if n else None for n in needs]

        jobs: list[Future] = [pool.submit(direction_grads, *g, gr)
                              for g, gr in zip(ctx.graphs, (grad_f, grad_b), strict=True)]
        (dx, *dp_f), (dx_rev, *dp_b) = (j.result() for j in jobs)
        del ctx.graphs
        return (dx, dx_rev, None, None, *dp_f, *dp_b)


def run_directions(fwd: nn.Module, bwd: nn.Module, x: torch.Tensor,
                   x_rev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``fwd(x)[0]`` and ``bwd(x_rev)[0]`` computed at the same time, one core each (see the module docstring);
    the caller checks :func:`can_run_concurrently` first."""
    params = [*fwd.parameters(), *bwd.parameters()]
    if not torch.is_grad_enabled() or not (x.requires_grad or x_rev.requires_grad
                                           or any(p.requires_grad for p in params)):
        pool = _worker_pool()
        assert pool is not None
        inference = torch.is_inference_mode_enabled()
        jobs = [pool.submit(_run, m, inp, False, inference) for m, inp in ((fwd, x), (bwd, x_rev))]
        return jobs[0].result()[1], jobs[1].result()[1]
    return _TwoDirections.apply(x, x_rev, fwd, bwd, *params)
