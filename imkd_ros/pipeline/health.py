"""Sensor and pipeline health over a sliding window: the signal /diagnostics is made of.

Why a window: lifetime counters only grow, so a level computed from them is WARN forever after one
dropped frame and an ERROR never clears. Here every level is computed from what happened in the
last ``window_s`` seconds: OK while healthy, WARN/ERROR while a fault lasts, OK again one window
after it ends, and each reason names its sensor. Wall-clock (monotonic) time: health is about the
node as it runs now, also when it replays a bag on sim time. Bounded memory: per (sensor, kind)
at most ``max_events`` timestamps are kept.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}
PIPELINE = "pipeline"
# Pipeline events that make the whole detector ERROR (no detections) vs WARN (degraded).
ERROR_KINDS = ("inference_error", "keyframe_skipped")


@dataclass
class SensorReport:
    name: str
    level: int
    message: str
    values: list[tuple[str, str]]


class HealthWindow:
    """Thread-safe event log per sensor; ``report()`` turns the last window into levels and reasons."""

    def __init__(self, sensors: Iterable[str], window_s: float = 3.0, stale_s: float = 2.0,
                 masked_fraction: float = 0.5, max_events: int = 4096,
                 clock: Callable[[], float] = time.monotonic, info_kinds: Iterable[str] = (),
                 event_only: Iterable[str] = ()) -> None:
        self.sensors = list(sensors)
        self.info_kinds = set(info_kinds)  # counted and shown, but do not raise the level
        self.event_only = set(event_only)  # sources that need not stream (e.g. TF: static only)
        self.window_s = window_s
        self.stale_s = stale_s
        self.masked_fraction = masked_fraction
        self.max_events = max_events
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._last_rx: dict[str, float] = {}
        self._keyframes: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=max_events)
        self._notes: dict[str, str] = {}  # standing conditions (e.g. "no CameraInfo"), set/cleared

    # -- recording (cheap; any thread) ---------------------------------------------------------
    def rx(self, sensor: str) -> None:
        self._last_rx[sensor] = self._clock()

    def event(self, sensor: str, kind: str, n: int = 1) -> None:
        if n <= 0:
            return
        t = self._clock()
        with self._lock:
            q = self._events.get((sensor, kind))
            if q is None:
                q = self._events[(sensor, kind)] = deque(maxlen=self.max_events)
            q.append((t, int(n)))

    def keyframe(self, masked: Iterable[str]) -> None:
        with self._lock:
            self._keyframes.append((self._clock(), tuple(masked)))

    def set_condition(self, sensor: str, text: str | None) -> None:
        """A standing condition of a sensor (WARN while set), e.g. a camera without calibration."""
        with self._lock:
            if text:
                self._notes[sensor] = text
            else:
                self._notes.pop(sensor, None)

    # -- evaluation ------------------------------------------------------------------------------
    def counts(self, sensor: str) -> dict[str, int]:
        """Events per kind of ``sensor`` within the window."""
        cut = self._clock() - self.window_s
        out: dict[str, int] = {}
        with self._lock:
            for (s, kind), q in self._events.items():
                if s != sensor:
                    continue
                while q and q[0][0] < cut:
                    q.popleft()
                n = sum(c for _, c in q)
                if n:
                    out[kind] = n
        return out

    def report(self) -> list[SensorReport]:
        """One report per sensor (in the order given) and the pipeline's, last."""
        now = self._clock()
        cut = now - self.window_s
        with self._lock:
            kfs = [m for t, m in self._keyframes if t >= cut]
            notes = dict(self._notes)
        reports = []
        any_rx = bool(self._last_rx)
        for sensor in self.sensors:
            level, reasons = OK, []
            faults = self.counts(sensor)
            if faults:
                level = WARN
                reasons.append(", ".join(f"{n} {k}" for k, n in sorted(faults.items())) + f" in {self.window_s:g} s")
            last = self._last_rx.get(sensor)
            if sensor in self.event_only:
                pass
            elif last is None:
                if any_rx:
                    level = WARN
                    reasons.append("no data received")
            elif now - last > self.stale_s:
                level = WARN
                reasons.append(f"no data for {now - last:.1f} s")
            if kfs:
                masked = sum(sensor in m for m in kfs)
                if masked and masked >= self.masked_fraction * len(kfs):
                    level = WARN
                    reasons.append(f"masked in {masked}/{len(kfs)} keyframes")
            if sensor in notes:
                level = WARN
                reasons.append(notes[sensor])
            values = [("level", LEVEL_NAMES[level])] + [(f"window {k}", str(v)) for k, v in sorted(faults.items())]
            reports.append(SensorReport(sensor, level, "; ".join(reasons) or "ok", values))
        faults = self.counts(PIPELINE)
        level, reasons = OK, []
        if not any_rx:
            level, reasons = WARN, ["waiting for sensor data"]
        for kind, n in sorted(faults.items()):
            if kind in self.info_kinds:
                continue
            level = max(level, ERROR if kind in ERROR_KINDS else WARN)
            reasons.append(f"{n} {kind} in {self.window_s:g} s")
        if PIPELINE in notes:
            level = max(level, WARN)
            reasons.append(notes[PIPELINE])
        bad = [r for r in reports if r.level > OK]
        for r in bad:
            level = max(level, r.level)
        sensor_reasons = [f"{r.name}: {r.message}" for r in bad]
        values = [("level", LEVEL_NAMES[level]), ("keyframes in window", str(len(kfs)))]
        values += [(f"window {k}", str(v)) for k, v in sorted(faults.items())]
        reports.append(SensorReport(PIPELINE, level, "; ".join(reasons + sensor_reasons) or "ok", values))
        return reports
