"""Run work in freshly spawned processes (one helper for parity, bench and the fp16 checks).

Spawned, never forked: a fork copies the parent's heap (a loaded UNet and its references) and any
thread state of torch / TensorFlow, and several runtimes in one process add their peaks up.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable


def spawn_pool(max_workers: int = 1, max_tasks_per_child: int | None = None) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor whose workers are spawned (a fresh interpreter each)."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                               max_tasks_per_child=max_tasks_per_child)


def run_spawned(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) in one spawned process; its result (or its exception) comes back."""
    with spawn_pool(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()
