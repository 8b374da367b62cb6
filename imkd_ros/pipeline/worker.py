"""Inference off the executor thread, with a bounded queue that drops the OLDEST frame.

Why oldest: when the model is slower than the sensors, the newest keyframe is the one worth
detecting on; a backlog only adds latency. Every drop is counted and reported in diagnostics.
"""

from __future__ import annotations

import collections
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any


class InferenceWorker:
    """One worker thread running `job(item)`; `submit` never blocks the caller."""

    def __init__(self, job: Callable[[Any], None], capacity: int = 1, name: str = "imkd-inference",
                 on_error: Callable[[BaseException, str], None] | None = None,
                 before_take: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._job = job
        self._queue: collections.deque = collections.deque()
        self._capacity = capacity
        self._cv = threading.Condition()
        self._stop = False
        self._busy = False
        self._on_error = on_error
        self._before_take = before_take  # blocks until the worker may take its next item
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue an item; returns False if an older pending item had to be dropped for it."""
        with self._cv:
            self.submitted += 1
            dropped = False
            while len(self._queue) >= self._capacity:
                self._queue.popleft()
                self.dropped += 1
                dropped = True
            self._queue.append(item)
            self._cv.notify()
        return not dropped

    def pending(self) -> int:
        with self._cv:
            return len(self._queue)

    def idle(self) -> bool:
        with self._cv:
            return not self._queue and not self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and not self._busy, timeout)

    def wait_for_room(self) -> None:
        """Block until the queue has room (or the worker stops): a feeding stage calls this before
        it takes its next item, so it prepares the newest one, just in time."""
        with self._cv:
            self._cv.wait_for(lambda: len(self._queue) < self._capacity or self._stop)

    def _run(self) -> None:
        while True:
            if self._before_take is not None:
                self._before_take()
            with self._cv:
                self._cv.wait_for(lambda: self._queue or self._stop)
                if self._stop and not self._queue:
                    return
                item = self._queue.popleft()
                self._busy = True
                self._cv.notify_all()  # room for a feeding stage (wait_for_room)
            try:
                self._job(item)
                self.processed += 1
            except Exception as exc:  # keep the node alive; the error is counted and logged
                self.failed += 1
                if self._on_error:
                    self._on_error(exc, traceback.format_exc())
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def close(self, drain: bool = False, timeout: float = 10.0) -> None:
        with self._cv:
            if not drain:
                self.dropped += len(self._queue)
                self._queue.clear()
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        return {"submitted": self.submitted, "processed": self.processed, "dropped": self.dropped,
                "failed": self.failed, "pending": self.pending()}


class StagedWorker:
    """Two workers in a row: ``first(item)`` returns what ``second`` gets (None: nothing more to do).

    Why: the node's keyframe work splits into preprocessing (Python, holds the GIL) and the network
    (a TorchScript trace that does not). On two threads, keyframe k+1 is decoded and preprocessed
    while keyframe k is in the network. The first stage queues ``capacity`` items and drops the
    OLDEST, as ``InferenceWorker`` does; it takes its next item only when the second stage has
    room for the result, so it always prepares the newest keyframe and never prepares one the
    network would drop (no wasted preprocessing; drops are counted where they happen, before the
    model). The same interface as ``InferenceWorker`` (the node's status reads ``processed`` /
    ``dropped``).
    """

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], None], capacity: int = 1,
                 names: tuple[str, str] = ("imkd-prepare", "imkd-inference"),
                 on_error: Callable[[BaseException, str], None] | None = None) -> None:
        self._second = InferenceWorker(second, capacity=1, name=names[1], on_error=on_error)
        self._done_first = 0  # items the first stage finished itself (e.g. skipped keyframes)
        self._dropped_offset = 0

        def run_first(item: Any) -> None:
            out = first(item)
            if out is None:
                self._done_first += 1
            else:
                self._second.submit(out)

        self._first = InferenceWorker(run_first, capacity=capacity, name=names[0], on_error=on_error,
                                      before_take=self._second.wait_for_room)

    def submit(self, item: Any) -> bool:
        return self._first.submit(item)

    @property
    def submitted(self) -> int:
        return self._first.submitted

    @property
    def processed(self) -> int:
        return self._second.processed + self._done_first

    @property
    def dropped(self) -> int:
        return self._first.dropped + self._second.dropped + self._dropped_offset

    @dropped.setter
    def dropped(self, value: int) -> None:  # tests set lifetime drops directly
        self._dropped_offset += value - self.dropped

    @property
    def failed(self) -> int:
        return self._first.failed + self._second.failed

    def pending(self) -> int:
        return self._first.pending() + self._second.pending()

    def idle(self) -> bool:
        return self._first.idle() and self._second.idle() and self._first.idle()

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not (self._first.wait_idle(left) and self._second.wait_idle(left)):
                return False
            if self._first.idle():  # nothing slipped from the first stage into the second meanwhile
                return True

    def close(self, drain: bool = False, timeout: float = 10.0) -> None:
        self._first.close(drain, timeout)
        self._second.close(drain, timeout)

    def stats(self) -> dict[str, int]:
        return {"submitted": self.submitted, "processed": self.processed, "dropped": self.dropped,
                "failed": self.failed, "pending": self.pending(),
                "dropped_before_preprocess": self._first.dropped,
                "dropped_before_network": self._second.dropped}
