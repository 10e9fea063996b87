"""FinishQueue: frame-size post-processing of each batch on one worker thread, one batch behind the model.

Why: resizing labels to the frame and copying them out costs a small model as much as a quarter of
its forward. The memory only needs model-size labels, so the next batch can go through the model
while this one is finished; results still come out in order. The worker runs torch with one
intra-op thread, so that it never competes with the model's threads for cores (an oversubscribed
OpenMP team stalls on its barriers).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Generic, Iterator, List, TypeVar

import torch

T = TypeVar("T")


class FinishQueue(Generic[T]):
    """Runs `submit`ted functions on one worker thread; `results` yields their outputs in order."""

    def __init__(self, device: torch.device):
        self._pool = one_thread_worker(device, "vos-finish")
        self._queue: Deque[Future] = deque()

    def submit(self, make_results: Callable[[], List[T]]) -> None:
        self._queue.append(self._pool.submit(make_results))

    def results(self, keep: int) -> Iterator[T]:
        """Results of the oldest batches, in order, until at most `keep` are still in flight."""
        while len(self._queue) > keep:
            yield from self._queue.popleft().result()

    def close(self) -> None:
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True)


def one_thread_worker(device: torch.device, name: str) -> ThreadPoolExecutor:
    """One worker thread whose torch ops use one intra-op thread on a CPU (see the module docstring)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix=name)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        pool.submit(_use_one_thread).result()
        torch.set_num_threads(threads)  # the setting is also a process-wide default: put it back
    return pool


def _use_one_thread() -> None:
    torch.get_num_threads()  # torch sets a thread's count on first use: do it now, then override it
    torch.set_num_threads(1)


__all__ = ["FinishQueue", "one_thread_worker"]
