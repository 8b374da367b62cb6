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

Timeouts are measured on ``now`` from the moment a set opened (the ``now`` of the first poll that
saw it; its first stamp before any poll), not against the stamps, so a node on wall-clock time replaying a bag
with old stamps (no use_sim_time) still waits properly instead of emitting partial sets.

Robustness: per-sensor duplicate / out-of-order / late stamps are dropped and counted; a stamp (or
``now``) more than ``backward_jump_ns`` behind the sensor's last one (a bag loop) resets all
buffers; every buffer is bounded and its drops are counted. Keyframes come out in stamp order.
Known limit: a single stamp glitching *forward* by less than ``backward_jump_ns`` makes that
camera's next frames "out of order" (and younger frames "late") until time catches up.

Late and jittery stamps: each camera's firing stagger (phase within the cycle) is learned from the
finished sets and removed before matching, so a camera whose stamps jitter by 10-15 ms around a
40 ms stagger still lands in its own cycle, and a view arriving 100 ms late (per-topic order kept)
joins its cycle instead of making the next frame of another camera an "extra".
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES

STAMP_SOURCES = ("reference", "latest", "earliest")
_PHASE_ALPHA = 0.3  # EMA weight of one finished set in a camera's learned stagger
_PHASE_WARMUP = 1  # finished sets per camera before its stagger is trusted (until then: raw + jitter)

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
    # Matching removes each camera's learned firing stagger (EMA over finished sets) before the
    # max_spread_ns test, so stamp jitter on top of the stagger neither splits nor merges cycles;
    # the raw stamp spread of a set is still bounded by max_spread_ns + stamp_jitter_ns.
    learn_stagger: bool = True
    stamp_jitter_ns: int = 30_000_000
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
                     "radar_wait_ns", "min_interval_ns", "min_interval_tolerance_ns", "stamp_jitter_ns"):
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
    """One pending camera cycle. ``lo``/``hi`` bound the raw stamps; ``clo``/``chi`` the
    stagger-corrected ones (stamp minus the camera's learned phase offset) that matching uses."""

    __slots__ = ("payloads", "stamps", "cstamps", "count", "lo", "hi", "clo", "chi", "opened")

    def __init__(self, n: int) -> None:
        self.payloads: list[Any] = [None] * n
        self.stamps: list[int | None] = [None] * n
        self.cstamps: list[int | None] = [None] * n
        self.count = 0
        self.lo = self.hi = self.clo = self.chi = 0
        self.opened: int | None = 0  # `now` when the set opened (timeout reference)

    def _bounds(self) -> None:
        present = [t for t in self.stamps if t is not None]
        cpresent = [t for t in self.cstamps if t is not None]
        self.lo, self.hi = min(present), max(present)
        self.clo, self.chi = min(cpresent), max(cpresent)

    def add(self, cam: int, stamp: int, cstamp: int, payload: Any) -> None:
        self.payloads[cam] = payload
        self.stamps[cam] = stamp
        self.cstamps[cam] = cstamp
        self.count += 1
        self._bounds()

    def others(self, cam: int) -> list[int]:
        """Corrected stamps of the other present views."""
        return [t for k, t in enumerate(self.cstamps) if t is not None and k != cam]

    def raw_others(self, cam: int) -> list[int]:
        return [t for k, t in enumerate(self.stamps) if t is not None and k != cam]

    def replace(self, cam: int, stamp: int, cstamp: int, payload: Any) -> None:
        self.payloads[cam] = payload
        self.stamps[cam] = stamp
        self.cstamps[cam] = cstamp
        self._bounds()


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
        # Learned firing stagger per camera (ns; a property of the rig, so kept across resets).
        self._offset = [0.0] * self.config.num_cameras
        self._offset_n = [0] * self.config.num_cameras
        self._period: list[float | None] = [None] * self.config.num_cameras
        self._stamp_hist: list[deque[int]] = [deque(maxlen=9) for _ in range(self.config.num_cameras)]
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
            if self._final_watermark is not None and stamp_ns - self._phase(camera) < self._final_watermark:
                # Its set was already finalised (e.g. timed out without this view): too late.
                self._cam_last[camera] = stamp_ns
                c["camera_late"] += 1
                return False
            self._track_period(camera, last, stamp_ns)
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
            for s in self._pending:
                if s.opened is None:
                    s.opened = now_ns
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
            out["camera_phase_ms"] = [round(o / 1e6, 2) for o in self._offset]
            return out

    # ------------------------------------------------------------------ internals
    def _clear(self) -> None:
        n = self.config.num_cameras
        self._pending: list[_CameraSet] = []  # sorted by clo
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

    def _free_running(self, camera: int) -> bool:
        """A camera not at the cycle rate (e.g. 15 or 24 Hz next to 12 Hz) has no fixed phase."""
        own = self._period[camera]
        rates = sorted(p for p in self._period if p is not None)
        if own is None or len(rates) < 2:
            return False
        cycle = rates[len(rates) // 2]
        return abs(own - cycle) > 0.12 * cycle

    def _phase(self, camera: int) -> int:
        if not self.config.learn_stagger or self._free_running(camera):
            return 0
        return int(self._offset[camera])

    def _learned(self, cams: list[int]) -> bool:
        return not self.config.learn_stagger or all(
            self._offset_n[k] >= _PHASE_WARMUP or self._free_running(k) for k in cams)

    def _track_period(self, camera: int, last: int | None, stamp: int) -> None:
        """Camera period over its last stamps: (span) / (cycles in it), gaps of dropped frames
        counted as several cycles, so stamp jitter of +-15 ms moves it by < 5 %."""
        hist = self._stamp_hist[camera]
        if last is not None and stamp <= last:
            return
        hist.append(stamp)
        if len(hist) < 5:
            self._period[camera] = None
            return
        diffs = sorted(b - a for a, b in zip(hist, list(hist)[1:]))
        med = diffs[len(diffs) // 2]
        cycles = sum(max(1, round((b - a) / med)) for a, b in zip(hist, list(hist)[1:]))
        self._period[camera] = (hist[-1] - hist[0]) / cycles

    def _assign(self, camera: int, stamp: int, payload: Any) -> bool:
        """Put an accepted image into a set; False when it was an extra frame and dropped.

        Matching works on stagger-corrected stamps (stamp minus the camera's learned phase), so
        jitter on top of the rig's firing stagger neither splits a cycle nor merges two. Takes the
        oldest fitting set that lacks this camera (the nearest one for a free-running camera). A
        camera faster than the others (two frames fit one set) keeps, per set, the frame nearest
        the other views' mean stamp, so it neither opens spurious sets nor widens the skew. Two
        frames of one camera more than max_spread_ns apart are never one cycle (a late view of the
        previous cycle must not turn this camera's next frame into an "extra").
        """
        cfg = self.config
        spread = cfg.max_spread_ns
        raw_limit = spread + cfg.stamp_jitter_ns
        c = stamp - self._phase(camera)
        free = self._free_running(camera)
        best: _CameraSet | None = None
        best_d = 0
        occupied: list[_CameraSet] = []
        for s in self._pending:
            if s.stamps[camera] is not None:
                occupied.append(s)
                continue
            cams = [k for k, t in enumerate(s.stamps) if t is not None] + [camera]
            limit = spread if self._learned(cams) else raw_limit  # bootstrap: raw stamps + jitter
            if max(s.chi, c) - min(s.clo, c) > limit or max(s.hi, stamp) - min(s.lo, stamp) > raw_limit:
                continue
            # A camera at the cycle rate delivers its frames in stamp order, so the oldest set that
            # lacks it and fits is its cycle; a free-running camera takes the nearest set.
            d = abs(c - (s.clo + s.chi) // 2) if free else 0
            if best is None or d < best_d:
                best, best_d = s, d
        if best is None:
            for s in occupied:
                own = cast(int, s.cstamps[camera])  # occupied: this camera's slot is set
                if abs(c - own) > spread and not self._free_running(camera):
                    continue  # another cycle of this camera, not an extra frame of this one
                others = s.others(camera)
                raw = s.raw_others(camera)
                if not others or max(max(others), c) - min(min(others), c) > spread \
                        or max(max(raw), stamp) - min(min(raw), stamp) > raw_limit:
                    continue
                centre = sum(others) / len(others)
                if abs(c - centre) < abs(own - centre):
                    s.replace(camera, stamp, c, payload)
                    self._pending.sort(key=lambda x: x.clo)
                    self._counters["camera_replaced"] += 1
                    return True
                self._counters["camera_extra"] += 1
                return False
            best = _CameraSet(self.config.num_cameras)
            # Timeout reference: the first poll that sees the set (its arrival), or its stamp
            # before any poll.
            best.opened = None if self._last_now is not None else stamp
            self._pending.append(best)
        best.add(camera, stamp, c, payload)
        self._pending.sort(key=lambda s: s.clo)
        if len(self._pending) > self.config.max_pending_sets:
            self._finalise(None, flush=False)  # move out what is already final (no poll yet)
        while len(self._pending) > self.config.max_pending_sets:
            self._pending.pop(0)
            self._counters["pending_overflow"] += 1
        return True

    def _given_up(self, s: _CameraSet, camera: int) -> bool:
        """True when ``camera`` can no longer deliver an image that fits set ``s``."""
        last = self._cam_last[camera]
        return last is not None and last - self._phase(camera) >= s.clo + self.config.max_spread_ns

    def _learn_stagger(self, s: _CameraSet) -> None:
        """Update each camera's phase offset from a finished set (EMA of its residual)."""
        if not self.config.learn_stagger or s.count < 2:
            return
        present = [k for k, t in enumerate(s.stamps) if t is not None and not self._free_running(k)]
        if len(present) < 2:
            return
        corrected = sorted(cast(int, s.stamps[k]) - self._offset[k] for k in present)
        mid = len(corrected) // 2  # median: one odd view does not shift everyone's phase
        mean = corrected[mid] if len(corrected) % 2 else (corrected[mid - 1] + corrected[mid]) / 2
        lim = self.config.max_spread_ns
        for k in present:
            r = (cast(int, s.stamps[k]) - self._offset[k]) - mean
            a = 1.0 if self._offset_n[k] == 0 else _PHASE_ALPHA
            self._offset[k] = min(max(self._offset[k] + a * r, -lim), lim)
            self._offset_n[k] += 1

    def _finalise(self, now: int | None, flush: bool) -> None:
        cfg = self.config
        while self._pending:
            s = self._pending[0]
            if s.count == cfg.num_cameras:
                reason = "complete"
            elif all(self._given_up(s, k) for k in range(cfg.num_cameras) if s.stamps[k] is None):
                reason = "superseded"
            elif now is not None and s.opened is not None and now - s.opened >= cfg.camera_timeout_ns:
                reason = "timeout"
            elif flush:
                reason = "flushed"
            else:
                break  # keep stamp order: younger sets wait behind this one
            self._pending.pop(0)
            self._learn_stagger(s)
            wm = s.clo + cfg.max_spread_ns
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
