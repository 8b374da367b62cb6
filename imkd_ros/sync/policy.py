"""Time-sync policy: group six staggered camera images into keyframes and attach radar sweeps.

Pure Python (no ROS) so the node, the offline replay and the tests run the same logic. Every
decision is driven by message stamps and an explicit ``now`` (ROS time, or sim time when replaying
a bag), never by the wall clock, so results are reproducible.

How a keyframe forms:

1. ``push_camera`` puts an image into the pending *camera set* whose stamps it fits (all stamps of
   a set lie within ``max_spread_ns``; one image per camera), or opens a new set. A camera faster
   than the cycle keeps, per set, the frame nearest the other views (extra frames are counted).
2. ``poll(now)`` finalises pending sets oldest first: a set is final when it is complete, when every
   missing camera has already delivered a *newer* image that cannot fit the set (clock-free, data
   driven), or when ``camera_timeout_ns`` of ``now`` has passed since the set opened. Missing views
   are reported and their payload is ``None`` (the model masks them). Sets with fewer than
   ``min_cameras`` views are dropped.
3. The rate limiter keeps every ``emit_every_n``-th final set and at most one per ``min_interval_ns``
   (less a jitter tolerance), e.g. 2 Hz keyframes out of 12 Hz camera cycles.
4. A kept set waits (at most ``radar_wait_ns`` of ``now``; 0 = no wait) until every expected, live
   radar has a sweep at or after the keyframe stamp, then the newest ``radar_max_sweeps`` sweeps per
   radar in ``(stamp - radar_window_ns, stamp + radar_after_ns]`` are attached.

Timeouts are measured on ``now`` from the moment a set opened (the ``now`` of the last poll; its
first stamp before any poll), not against the stamps, so a node on wall-clock time replaying a bag
with old stamps (no use_sim_time) still waits properly instead of emitting partial sets.

Robustness: per-sensor duplicate / out-of-order / late stamps are dropped and counted; a stamp (or
``now``) more than ``backward_jump_ns`` behind the sensor's last one (a bag loop) resets all
buffers; every buffer is bounded and its drops are counted. Keyframes come out in stamp order.
Known limit: a single stamp glitching *forward* by less than ``backward_jump_ns`` makes that
camera's next frames "out of order" (and younger frames "late") until time catches up.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES

STAMP_SOURCES = ("reference", "latest", "earliest")

# Counters reported by SyncPolicy.stats(); all start at 0 so diagnostics always have every key.
COUNTERS: tuple[str, ...] = (
    "camera_received",
    "camera_accepted",
    "camera_duplicate",
    "camera_out_of_order",
    "camera_late",
    "camera_extra",
    "camera_replaced",
    "radar_received",
    "radar_accepted",
    "radar_duplicate",
    "radar_out_of_order",
    "radar_unknown",
    "radar_overflow",
    "resets",
    "pending_overflow",
    "waiting_overflow",
    "sets_complete",
    "sets_timed_out",
    "sets_superseded",
    "sets_flushed",
    "sets_too_few_cameras",
    "rate_limited",
    "radar_wait_timeouts",
    "keyframes_emitted",
    "keyframes_complete",
    "keyframes_partial",
)


@dataclass
class SyncConfig:
    """Sync policy parameters (all durations in nanoseconds).

    Defaults fit nuScenes: cameras at 12 Hz firing staggered over ~40-50 ms, radars at ~13 Hz,
    keyframes at 2 Hz (every 6th camera cycle), radar history of 0.5 s.
    """

    num_cameras: int = len(CAMERA_NAMES)
    # All images of one keyframe lie within this spread. Must be below the camera period (83 ms).
    max_spread_ns: int = 60_000_000
    # A set missing cameras is emitted (views masked) this long (in now) after it opened.
    camera_timeout_ns: int = 150_000_000
    # Sets with fewer cameras than this are dropped instead of emitted (1 = emit anything).
    min_cameras: int = 1
    # Keyframe stamp: "reference" (reference_camera's stamp; latest if that view is missing),
    # "latest" or "earliest" camera stamp of the set.
    stamp_source: str = "reference"
    reference_camera: int = 0
    # Radar sweeps attached: stamp in (kf - radar_window_ns, kf + radar_after_ns], newest N per radar.
    radar_window_ns: int = 500_000_000
    radar_after_ns: int = 0
    radar_max_sweeps: int = 6
    # Expected radars; None accepts any name (up to max_radars). Unknown names are dropped+counted.
    radar_names: tuple[str, ...] | None = RADAR_NAMES
    max_radars: int = 16
    # Hold a final keyframe until every expected radar reached its stamp, at most this long (in now).
    radar_wait_ns: int = 0
    # Rate limiter: keep every n-th final set, and at most one per min_interval_ns of stamp (e.g.
    # 500 ms for 2 Hz keyframes). Stamp jitter is absorbed by min_interval_tolerance_ns: a set is
    # kept once stamp - last kept >= min_interval - tolerance (keep tolerance < half a camera period).
    emit_every_n: int = 1
    min_interval_ns: int = 0
    min_interval_tolerance_ns: int = 20_000_000
    # A stamp this far behind the same sensor's last stamp (or now behind the last now) = bag loop.
    backward_jump_ns: int = 1_000_000_000
    # Bounds.
    max_pending_sets: int = 8
    max_waiting: int = 8
    radar_buffer_size: int = 32

    def __post_init__(self) -> None:
        if self.num_cameras < 1:
            raise ValueError("num_cameras must be >= 1")
        if self.stamp_source not in STAMP_SOURCES:
            raise ValueError(f"stamp_source must be one of {STAMP_SOURCES}, got {self.stamp_source!r}")
        if not 0 <= self.reference_camera < self.num_cameras:
            raise ValueError(f"reference_camera {self.reference_camera} not in 0..{self.num_cameras - 1}")
        if not 1 <= self.min_cameras <= self.num_cameras:
            raise ValueError(f"min_cameras must be in 1..{self.num_cameras}")
        for name in ("max_spread_ns", "camera_timeout_ns", "radar_window_ns", "radar_after_ns",
                     "radar_wait_ns", "min_interval_ns", "min_interval_tolerance_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("radar_max_sweeps", "emit_every_n", "max_pending_sets", "max_waiting",
                     "radar_buffer_size", "max_radars", "backward_jump_ns"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.radar_names is not None:
            self.radar_names = tuple(self.radar_names)


@dataclass(frozen=True)
class RadarSweep:
    """One radar message: sensor name, stamp and the caller's opaque payload."""

    name: str
    stamp_ns: int
    payload: Any = field(repr=False, compare=False)


@dataclass
class SyncedKeyframe:
    """One keyframe: per-camera payloads/stamps (None = missing view) and the attached radar.

    ``radar`` is ordered by radar (config order, else by name) and, within a radar, newest first,
    so index-within-radar is the nuScenes "sweep" number.
    """

    seq: int
    stamp_ns: int
    camera_payloads: list[Any | None] = field(repr=False)
    camera_stamps_ns: list[int | None]
    radar: list[RadarSweep]
    missing_cameras: tuple[int, ...]
    missing_radars: tuple[str, ...]
    skew_ns: int  # max - min camera stamp of the present views
    reason: str  # why the set was final: complete | superseded | timeout | flushed

    @property
    def complete(self) -> bool:
        return not self.missing_cameras

    @property
    def camera_valid(self) -> list[bool]:
        return [p is not None for p in self.camera_payloads]


class _CameraSet:
    __slots__ = ("payloads", "stamps", "count", "lo", "hi", "opened")

    def __init__(self, n: int) -> None:
        self.payloads: list[Any] = [None] * n
        self.stamps: list[int | None] = [None] * n
        self.count = 0
        self.lo = 0
        self.hi = 0
        self.opened = 0  # `now` when the set opened (timeout reference)

    def add(self, cam: int, stamp: int, payload: Any) -> None:
        if self.count == 0:
            self.lo = self.hi = stamp
        else:
            self.lo = min(self.lo, stamp)
            self.hi = max(self.hi, stamp)
        self.payloads[cam] = payload
        self.stamps[cam] = stamp
        self.count += 1

    def others(self, cam: int) -> list[int]:
        return [t for k, t in enumerate(self.stamps) if t is not None and k != cam]

    def replace(self, cam: int, stamp: int, payload: Any) -> None:
        self.payloads[cam] = payload
        self.stamps[cam] = stamp
        present = [t for t in self.stamps if t is not None]
        self.lo, self.hi = min(present), max(present)


@dataclass
class _Final:
    cset: _CameraSet
    stamp: int
    reason: str
    final_at: int  # `now` when it became final (radar-wait reference)


class SyncPolicy:
    """Stateful sync policy; thread-safe (one lock), so ROS callbacks may call it from any thread."""

    _last_now: int | None  # the `now` of the last poll (set in _clear)

    def __init__(self, config: SyncConfig | None = None) -> None:
        self.config = config or SyncConfig()
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._missing_per_camera = [0] * self.config.num_cameras
        self._last_skew_ns: int | None = None
        self._last_emit_stamp: int | None = None
        self._seq = 0
        self._clear()

    # ------------------------------------------------------------------ public API
    def push_camera(self, camera: int, stamp_ns: int, payload: Any) -> bool:
        """Offer one image. False when dropped (duplicate, out of order, late, extra frame)."""
        cfg = self.config
        if not 0 <= camera < cfg.num_cameras:
            raise ValueError(f"camera index {camera} not in 0..{cfg.num_cameras - 1}")
        stamp_ns = int(stamp_ns)
        with self._lock:
            c = self._counters
            c["camera_received"] += 1
            last = self._cam_last[camera]
            if last is not None and stamp_ns < last - cfg.backward_jump_ns:
                self._reset_locked()
                last = None
            if last is not None and stamp_ns == last:
                c["camera_duplicate"] += 1
                return False
            if last is not None and stamp_ns < last:
                c["camera_out_of_order"] += 1
                return False
            if self._final_watermark is not None and stamp_ns < self._final_watermark:
                # Its set was already finalised (e.g. timed out without this view): too late.
                self._cam_last[camera] = stamp_ns
                c["camera_late"] += 1
                return False
            self._cam_last[camera] = stamp_ns
            if not self._assign(camera, stamp_ns, payload):
                return False
            c["camera_accepted"] += 1
            return True

    def push_radar(self, name: str, stamp_ns: int, payload: Any) -> bool:
        """Offer one radar sweep. Returns False when it was dropped."""
        cfg = self.config
        stamp_ns = int(stamp_ns)
        with self._lock:
            c = self._counters
            c["radar_received"] += 1
            buf = self._radar.get(name)
            if buf is None:
                known = cfg.radar_names is None or name in cfg.radar_names
                if not known or len(self._radar) >= cfg.max_radars:
                    c["radar_unknown"] += 1
                    return False
                buf = self._radar[name] = deque()
            if buf:
                last = buf[-1].stamp_ns
                if stamp_ns < last - cfg.backward_jump_ns:
                    self._reset_locked()
                    buf = self._radar[name] = deque()
                elif stamp_ns == last:
                    c["radar_duplicate"] += 1
                    return False
                elif stamp_ns < last:
                    c["radar_out_of_order"] += 1
                    return False
            if len(buf) >= cfg.radar_buffer_size:
                buf.popleft()
                c["radar_overflow"] += 1
            buf.append(RadarSweep(name, stamp_ns, payload))
            c["radar_accepted"] += 1
            return True

    def poll(self, now_ns: int) -> list[SyncedKeyframe]:
        """Advance the policy clock to ``now_ns`` and return the keyframes now ready, oldest first.

        ``now_ns`` is the node's clock (ROS time; sim time when replaying). Timeouts are measured
        on it, so it need not agree with the sensor stamps; it must only not run backwards by more
        than ``backward_jump_ns`` (that is taken as a /clock loop and resets the buffers).
        """
        now_ns = int(now_ns)
        with self._lock:
            if self._last_now is not None and now_ns < self._last_now - self.config.backward_jump_ns:
                self._reset_locked()
            self._last_now = now_ns
            self._finalise(now_ns, flush=False)
            self._release(now_ns, flush=False)
            return self._take_ready()

    def flush(self) -> list[SyncedKeyframe]:
        """Finalise everything pending now (end of a bag, shutdown) and return it."""
        with self._lock:
            self._finalise(None, flush=True)
            self._release(None, flush=True)
            return self._take_ready()

    def reset(self) -> None:
        """Drop all buffered data (counted as a reset), e.g. on a /clock jump seen by the node."""
        with self._lock:
            self._reset_locked()

    def stats(self) -> dict[str, Any]:
        """Counters plus current buffer sizes, for diagnostics."""
        with self._lock:
            out: dict[str, Any] = dict(self._counters)
            out["missing_per_camera"] = list(self._missing_per_camera)
            out["pending_sets"] = len(self._pending)
            out["waiting_keyframes"] = len(self._waiting)
            out["ready_keyframes"] = len(self._ready)
            out["radar_buffered"] = sum(len(b) for b in self._radar.values())
            out["last_skew_ns"] = self._last_skew_ns
            out["last_keyframe_stamp_ns"] = self._last_emit_stamp
            return out

    # ------------------------------------------------------------------ internals
    def _clear(self) -> None:
        n = self.config.num_cameras
        self._pending: list[_CameraSet] = []  # sorted by lo
        self._waiting: deque[_Final] = deque()  # final, rate-limited, waiting for radar
        self._ready: deque[SyncedKeyframe] = deque()
        self._radar: dict[str, deque[RadarSweep]] = {}
        self._cam_last: list[int | None] = [None] * n
        self._final_watermark: int | None = None
        self._last_now = None
        self._final_count = 0
        self._last_kept_stamp: int | None = None
        self._emit_floor: int | None = None  # last emitted stamp since the last reset (radar pruning)

    def _reset_locked(self) -> None:
        self._clear()
        self._counters["resets"] += 1

    def _assign(self, camera: int, stamp: int, payload: Any) -> bool:
        """Put an accepted image into a set; False when it was an extra frame and dropped.

        Prefers the nearest set that lacks this camera. A camera faster than the others (two
        frames fit one set) keeps, per set, the frame nearest the other views' mean stamp, so it
        neither opens spurious sets nor widens the skew.
        """
        spread = self.config.max_spread_ns
        best: _CameraSet | None = None
        best_d = 0
        occupied: list[_CameraSet] = []
        for s in self._pending:
            if s.stamps[camera] is not None:
                occupied.append(s)
                continue
            if max(s.hi, stamp) - min(s.lo, stamp) > spread:
                continue
            d = abs(stamp - (s.lo + s.hi) // 2)
            if best is None or d < best_d:
                best, best_d = s, d
        if best is None:
            for s in occupied:
                others = s.others(camera)
                if not others or max(max(others), stamp) - min(min(others), stamp) > spread:
                    continue
                centre = sum(others) / len(others)
                if abs(stamp - centre) < abs(cast(int, s.stamps[camera]) - centre):
                    s.replace(camera, stamp, payload)
                    self._pending.sort(key=lambda x: x.lo)
                    self._counters["camera_replaced"] += 1
                    return True
                self._counters["camera_extra"] += 1
                return False
            best = _CameraSet(self.config.num_cameras)
            best.opened = self._last_now if self._last_now is not None else stamp
            self._pending.append(best)
        best.add(camera, stamp, payload)
        self._pending.sort(key=lambda s: s.lo)
        if len(self._pending) > self.config.max_pending_sets:
            self._finalise(None, flush=False)  # move out what is already final (no poll yet)
        while len(self._pending) > self.config.max_pending_sets:
            self._pending.pop(0)
            self._counters["pending_overflow"] += 1
        return True

    def _given_up(self, s: _CameraSet, camera: int) -> bool:
        """True when ``camera`` can no longer deliver an image that fits set ``s``."""
        last = self._cam_last[camera]
        return last is not None and last >= s.lo + self.config.max_spread_ns

    def _finalise(self, now: int | None, flush: bool) -> None:
        cfg = self.config
        while self._pending:
            s = self._pending[0]
            if s.count == cfg.num_cameras:
                reason = "complete"
            elif all(self._given_up(s, k) for k in range(cfg.num_cameras) if s.stamps[k] is None):
                reason = "superseded"
            elif now is not None and now - s.opened >= cfg.camera_timeout_ns:
                reason = "timeout"
            elif flush:
                reason = "flushed"
            else:
                break  # keep stamp order: younger sets wait behind this one
            self._pending.pop(0)
            wm = s.lo + cfg.max_spread_ns
            if self._final_watermark is None or wm > self._final_watermark:
                self._final_watermark = wm
            self._counters[f"sets_{'timed_out' if reason == 'timeout' else reason}"] += 1
            if s.count < cfg.min_cameras:
                self._counters["sets_too_few_cameras"] += 1
                continue
            stamp = self._keyframe_stamp(s)
            if not self._rate_ok(stamp):
                self._counters["rate_limited"] += 1
                continue
            final_at = now if now is not None else (self._last_now if self._last_now is not None else s.hi)
            self._waiting.append(_Final(s, stamp, reason, final_at))
            while len(self._waiting) > cfg.max_waiting:
                self._waiting.popleft()
                self._counters["waiting_overflow"] += 1

    def _keyframe_stamp(self, s: _CameraSet) -> int:
        cfg = self.config
        if cfg.stamp_source == "reference":
            ref = s.stamps[cfg.reference_camera]
            return s.hi if ref is None else ref
        return s.hi if cfg.stamp_source == "latest" else s.lo

    def _rate_ok(self, stamp: int) -> bool:
        cfg = self.config
        self._final_count += 1
        if (self._final_count - 1) % cfg.emit_every_n != 0:
            return False
        last = self._last_kept_stamp
        min_gap = cfg.min_interval_ns - cfg.min_interval_tolerance_ns
        if cfg.min_interval_ns and last is not None and stamp - last < min_gap:
            return False
        self._last_kept_stamp = stamp
        return True

    def _radar_done(self, stamp: int) -> bool:
        """True when no expected, live radar can still deliver a sweep for this keyframe.

        A radar with no sweep in the window before the keyframe counts as dead and is not waited
        for, so a failed radar does not add radar_wait_ns of latency to every keyframe.
        """
        cfg = self.config
        if not cfg.radar_names:
            return True
        need = stamp + cfg.radar_after_ns
        alive_after = stamp - cfg.radar_window_ns
        for name in cfg.radar_names:
            buf = self._radar.get(name)
            if not buf or buf[-1].stamp_ns <= alive_after:
                continue  # dead or never seen
            if buf[-1].stamp_ns < need:
                return False
        return True

    def _release(self, now: int | None, flush: bool) -> None:
        cfg = self.config
        while self._waiting:
            f = self._waiting[0]
            if not (flush or cfg.radar_wait_ns == 0 or self._radar_done(f.stamp)):
                if now is None or now - f.final_at < cfg.radar_wait_ns:
                    break
                self._counters["radar_wait_timeouts"] += 1
            self._waiting.popleft()
            self._emit(f)
        self._prune_radar()

    def _emit(self, f: _Final) -> None:
        cfg = self.config
        s = f.cset
        lo_ex = f.stamp - cfg.radar_window_ns
        hi_in = f.stamp + cfg.radar_after_ns
        names = cfg.radar_names if cfg.radar_names is not None else tuple(sorted(self._radar))
        sweeps: list[RadarSweep] = []
        missing_radars = []
        for name in names:
            chosen = [r for r in reversed(self._radar.get(name, ())) if lo_ex < r.stamp_ns <= hi_in]
            chosen = chosen[: cfg.radar_max_sweeps]
            if not chosen:
                missing_radars.append(name)
            sweeps.extend(chosen)
        missing = tuple(k for k in range(cfg.num_cameras) if s.stamps[k] is None)
        for k in missing:
            self._missing_per_camera[k] += 1
        kf = SyncedKeyframe(
            seq=self._seq,
            stamp_ns=f.stamp,
            camera_payloads=list(s.payloads),
            camera_stamps_ns=list(s.stamps),
            radar=sweeps,
            missing_cameras=missing,
            missing_radars=tuple(missing_radars),
            skew_ns=s.hi - s.lo,
            reason=f.reason,
        )
        self._seq += 1
        self._last_skew_ns = kf.skew_ns
        self._last_emit_stamp = self._emit_floor = f.stamp
        c = self._counters
        c["keyframes_emitted"] += 1
        c["keyframes_complete" if kf.complete else "keyframes_partial"] += 1
        self._ready.append(kf)  # bounded: drained by every poll, fed only from bounded queues

    def _prune_radar(self) -> None:
        """Drop sweeps no future keyframe can use (older than the oldest stamp still to come)."""
        floor: int | None = self._emit_floor
        for cand in [f.stamp for f in self._waiting] + [s.lo for s in self._pending]:
            floor = cand if floor is None else min(floor, cand)
        if floor is None:
            return
        cut = floor - self.config.radar_window_ns
        for buf in self._radar.values():
            # Keep the newest sweep per radar so the radar-wait watermark and dedupe still work.
            while len(buf) > 1 and buf[0].stamp_ns <= cut:
                buf.popleft()

    def _take_ready(self) -> list[SyncedKeyframe]:
        out = list(self._ready)
        self._ready.clear()
        return out
