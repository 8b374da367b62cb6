"""Inference off the executor thread, with a bounded queue that drops the OLDEST frame.

Why oldest: when the model is slower than the sensors, the newest keyframe is the one worth
detecting on; a backlog only adds latency. Every drop is counted and reported in diagnostics.
"""

from __future__ import annotations

import collections
import threading
import traceback
from collections.abc import Callable
from typing import Any


class InferenceWorker:
    """One worker thread running `job(item)`; `submit` never blocks the caller."""

    def __init__(self, job: Callable[[Any], None], capacity: int = 1, name: str = "imkd-inference",
                 on_error: Callable[[BaseException, str], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._job = job
        self._queue: collections.deque = collections.deque()
        self._capacity = capacity
        self._cv = threading.Condition()
        self._stop = False
        self._busy = False
        self._on_error = on_error
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

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._queue or self._stop)
                if self._stop and not self._queue:
                    return
                item = self._queue.popleft()
                self._busy = True
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
