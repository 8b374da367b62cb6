"""Tests for the time-sync policy (no ROS): rates, staggering, timeouts, drops, resets, bounds."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import pytest

from imkd_ros.constants import RADAR_NAMES
from imkd_ros.sync import COUNTERS, SyncConfig, SyncedKeyframe, SyncPolicy

MS = 1_000_000
CAM_PERIOD = 83_333_334  # 12 Hz (rounded up so 1 s holds exactly 12 cycles)
RADAR_PERIOD = 76_923_077  # 13 Hz
STAGGER = 8 * MS  # six cameras over 40 ms, as nuScenes


@dataclass
class Event:
    arrival: int
    kind: str  # "cam" | "radar"
    sensor: int | str
    stamp: int


def rig_events(
    duration_ns: int,
    t0: int = 10**12,
    cam_latency: int = 20 * MS,
    radar_latency: int = 5 * MS,
    drop: set[tuple[int, int]] | None = None,
    cam_period: dict[int, int] | None = None,
    jitter_ns: int = 0,
    seed: int = 0,
) -> list[Event]:
    """Six staggered cameras at 12 Hz and five radars at 13 Hz, sorted by arrival time."""
    rng = random.Random(seed)
    events = []
    for cam in range(6):
        period = (cam_period or {}).get(cam, CAM_PERIOD)
        i = 0
        while i * period < duration_ns:
            stamp = t0 + i * period + cam * STAGGER
            if not drop or (cam, i) not in drop:
                lat = cam_latency + (rng.randrange(jitter_ns) if jitter_ns else 0)
                events.append(Event(stamp + lat, "cam", cam, stamp))
            i += 1
    for r, name in enumerate(RADAR_NAMES):
        i = 0
        while i * RADAR_PERIOD < duration_ns:
            stamp = t0 + i * RADAR_PERIOD + r * 11 * MS
            lat = radar_latency + (rng.randrange(jitter_ns) if jitter_ns else 0)
            events.append(Event(stamp + lat, "radar", name, stamp))
            i += 1
    events.sort(key=lambda e: (e.arrival, e.kind, str(e.sensor)))
    return events


def run(policy: SyncPolicy, events: list[Event], poll_every: int = 1) -> list[SyncedKeyframe]:
    """Feed events in arrival order, polling with now = arrival time (sim clock)."""
    out: list[SyncedKeyframe] = []
    for i, e in enumerate(events):
        if e.kind == "cam":
            policy.push_camera(e.sensor, e.stamp, ("img", e.sensor, e.stamp))
        else:
            policy.push_radar(e.sensor, e.stamp, ("radar", e.sensor, e.stamp))
        if i % poll_every == 0:
            out += policy.poll(e.arrival)
    if events:
        out += policy.poll(events[-1].arrival + 10**9)
    return out


def check_keyframe_invariants(kfs: list[SyncedKeyframe], cfg: SyncConfig) -> None:
    stamps = [k.stamp_ns for k in kfs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [k.seq for k in kfs] == list(range(kfs[0].seq, kfs[0].seq + len(kfs))) if kfs else True
    for k in kfs:
        present = [s for s in k.camera_stamps_ns if s is not None]
        assert max(present) - min(present) == k.skew_ns <= cfg.max_spread_ns
        for cam, (p, s) in enumerate(zip(k.camera_payloads, k.camera_stamps_ns)):
            assert (p is None) == (s is None) == (cam in k.missing_cameras)
            if p is not None:
                assert p == ("img", cam, s)
        per_radar: dict[str, list[int]] = {}
        for sw in k.radar:
            assert k.stamp_ns - cfg.radar_window_ns < sw.stamp_ns <= k.stamp_ns + cfg.radar_after_ns
            assert sw.payload == ("radar", sw.name, sw.stamp_ns)
            per_radar.setdefault(sw.name, []).append(sw.stamp_ns)
        for stamps_r in per_radar.values():
            assert stamps_r == sorted(stamps_r, reverse=True)  # newest first
            assert len(stamps_r) <= cfg.radar_max_sweeps


# ---------------------------------------------------------------------------- config
def test_config_validation():
    with pytest.raises(ValueError, match="stamp_source"):
        SyncConfig(stamp_source="middle")
    with pytest.raises(ValueError, match="reference_camera"):
        SyncConfig(reference_camera=6)
    with pytest.raises(ValueError, match="min_cameras"):
        SyncConfig(min_cameras=7)
    with pytest.raises(ValueError, match="max_spread_ns"):
        SyncConfig(max_spread_ns=-1)
    with pytest.raises(ValueError, match="emit_every_n"):
        SyncConfig(emit_every_n=0)
    with pytest.raises(ValueError, match="camera index"):
        SyncPolicy().push_camera(6, 0, None)


def test_stats_has_every_counter_from_start():
    st = SyncPolicy().stats()
    for name in COUNTERS:
        assert st[name] == 0
    assert st["missing_per_camera"] == [0] * 6
    assert st["pending_sets"] == 0 and st["radar_buffered"] == 0


# ---------------------------------------------------------------------------- steady state
def test_staggered_cameras_every_cycle_complete():
    cfg = SyncConfig()
    pol = SyncPolicy(cfg)
    events = rig_events(2 * 10**9)
    kfs = run(pol, events)
    n_cycles = len([e for e in events if e.kind == "cam" and e.sensor == 0])
    assert len(kfs) == n_cycles
    assert all(k.complete and k.reason == "complete" for k in kfs)
    check_keyframe_invariants(kfs, cfg)
    # Keyframe stamp = CAM_FRONT stamp; staggered skew = 5 * 8 ms.
    assert all(k.stamp_ns == k.camera_stamps_ns[0] for k in kfs)
    assert all(k.skew_ns == 5 * STAGGER for k in kfs)
    st = pol.stats()
    assert st["keyframes_complete"] == n_cycles and st["keyframes_partial"] == 0
    assert st["camera_duplicate"] == st["camera_out_of_order"] == st["camera_late"] == 0


def test_radar_window_newest_n_per_radar():
    cfg = SyncConfig(radar_max_sweeps=3, radar_window_ns=500 * MS)
    pol = SyncPolicy(cfg)
    kfs = run(pol, rig_events(3 * 10**9))
    check_keyframe_invariants(kfs, cfg)
    late = [k for k in kfs if k.stamp_ns > 10**12 + 600 * MS]
    assert late
    for k in late:
        names = [s.name for s in k.radar]
        assert names == [n for n in RADAR_NAMES for _ in range(3)]  # config order, 3 each
        assert k.missing_radars == ()
        for name in RADAR_NAMES:
            mine = [s.stamp_ns for s in k.radar if s.name == name]
            # They are the 3 newest sweeps at or before the keyframe stamp: consecutive sweeps.
            assert mine[0] <= k.stamp_ns < mine[0] + RADAR_PERIOD
            assert [a - b for a, b in zip(mine, mine[1:])] == [RADAR_PERIOD] * 2 or all(
                abs(a - b - RADAR_PERIOD) <= 1 for a, b in zip(mine, mine[1:])
            )


def test_first_keyframe_reports_missing_radar():
    pol = SyncPolicy(SyncConfig())
    for cam in range(6):
        pol.push_camera(cam, 1000 + cam, cam)
    (kf,) = pol.poll(2000)
    assert kf.radar == [] and kf.missing_radars == RADAR_NAMES


@pytest.mark.parametrize("source,expected_cam", [("latest", 5), ("earliest", 0), ("reference", 2)])
def test_stamp_source(source, expected_cam):
    pol = SyncPolicy(SyncConfig(stamp_source=source, reference_camera=2))
    for cam in (3, 1, 5, 0, 2, 4):  # arrival order differs from stamp order
        pol.push_camera(cam, 10**9 + cam * STAGGER, cam)
    (kf,) = pol.poll(10**9 + 50 * MS)
    assert kf.stamp_ns == 10**9 + expected_cam * STAGGER


def test_reference_missing_falls_back_to_latest():
    pol = SyncPolicy(SyncConfig(stamp_source="reference", reference_camera=0))
    for cam in range(1, 6):
        pol.push_camera(cam, 10**9 + cam * STAGGER, cam)
    (kf,) = pol.poll(10**9 + 10**9)
    assert kf.missing_cameras == (0,)
    assert kf.stamp_ns == 10**9 + 5 * STAGGER


# ---------------------------------------------------------------------------- missing / late
def test_missing_camera_emitted_after_timeout_only():
    cfg = SyncConfig(camera_timeout_ns=150 * MS)
    pol = SyncPolicy(cfg)
    t0 = 10**9
    for cam in (0, 1, 2, 4, 5):
        pol.push_camera(cam, t0 + cam * STAGGER, cam)
    assert pol.poll(t0 + 149 * MS) == []  # still waiting for camera 3
    assert pol.stats()["pending_sets"] == 1
    (kf,) = pol.poll(t0 + 150 * MS)
    assert kf.missing_cameras == (3,) and not kf.complete and kf.reason == "timeout"
    assert kf.camera_payloads[3] is None and kf.camera_stamps_ns[3] is None
    assert kf.camera_valid == [True, True, True, False, True, True]
    st = pol.stats()
    assert st["sets_timed_out"] == 1 and st["keyframes_partial"] == 1
    assert st["missing_per_camera"] == [0, 0, 0, 1, 0, 0]
    # The late image for that keyframe is dropped, not turned into a stale keyframe.
    assert pol.push_camera(3, t0 + 3 * STAGGER, 3) is False
    assert pol.stats()["camera_late"] == 1
    assert pol.poll(t0 + 10**9) == []


def test_dead_camera_every_keyframe_masked_in_order():
    cfg = SyncConfig()
    pol = SyncPolicy(cfg)
    events = [e for e in rig_events(2 * 10**9) if not (e.kind == "cam" and e.sensor == 4)]
    kfs = run(pol, events)
    assert len(kfs) == 24
    assert all(k.missing_cameras == (4,) for k in kfs)
    check_keyframe_invariants(kfs, cfg)
    assert pol.stats()["missing_per_camera"][4] == 24


def test_missing_camera_superseded_without_waiting_for_timeout():
    """Camera 2 skips one frame: its next image proves the gap, so no timeout wait is needed."""
    cfg = SyncConfig(camera_timeout_ns=10 * 10**9)  # timeout would never fire in this test
    pol = SyncPolicy(cfg)
    events = rig_events(1 * 10**9, drop={(2, 3)})
    kfs = run(pol, events)
    assert len(kfs) == 12
    gap = kfs[3]
    assert gap.missing_cameras == (2,) and gap.reason == "superseded"
    assert all(k.complete for i, k in enumerate(kfs) if i != 3)
    check_keyframe_invariants(kfs, cfg)


def test_min_cameras_drops_sparse_sets():
    pol = SyncPolicy(SyncConfig(min_cameras=4))
    t0 = 10**9
    for cam in (0, 1, 2):
        pol.push_camera(cam, t0 + cam * STAGGER, cam)
    assert pol.poll(t0 + 10**9) == []
    assert pol.stats()["sets_too_few_cameras"] == 1


def test_half_rate_camera():
    """One camera at 6 Hz: every other keyframe misses it, none are delayed by the timeout."""
    cfg = SyncConfig(camera_timeout_ns=10 * 10**9)
    pol = SyncPolicy(cfg)
    kfs = run(pol, rig_events(2 * 10**9, cam_period={5: 2 * CAM_PERIOD}))
    # The last cycle's set (camera 5 absent) has no newer camera-5 image: it stays pending.
    assert len(kfs) == 23
    assert [k.missing_cameras for k in kfs] == [(), (5,)] * 11 + [()]
    check_keyframe_invariants(kfs, cfg)
    assert len(pol.flush()) == 1


@pytest.mark.parametrize("jitter_ms", [0, 30])
def test_faster_camera_keeps_on_cycle_frame(jitter_ms):
    """Camera 2 at 24 Hz: its extra frames neither open spurious sets nor widen the skew."""
    cfg = SyncConfig()
    pol = SyncPolicy(cfg)
    events = rig_events(2 * 10**9, cam_period={2: CAM_PERIOD // 2}, jitter_ns=jitter_ms * MS, seed=5)
    kfs = run(pol, events)
    assert len(kfs) == 24 and all(k.complete for k in kfs)
    check_keyframe_invariants(kfs, cfg)
    for k in kfs:  # the on-cycle frame (2 * STAGGER after CAM_FRONT), never the one 42 ms later
        assert k.camera_stamps_ns[2] - k.camera_stamps_ns[0] == 2 * STAGGER
    st = pol.stats()
    assert st["camera_extra"] + st["camera_replaced"] + st["camera_late"] >= 23


@pytest.mark.parametrize("period_ms", [66.667, 55.0])
def test_other_camera_rates_no_spurious_keyframes(period_ms):
    """A camera at 15 or 18 Hz next to 12 Hz ones: one keyframe per 12 Hz cycle, skew bounded."""
    cfg = SyncConfig(min_cameras=2)  # the fast camera's frame after the data ends is alone
    pol = SyncPolicy(cfg)
    kfs = run(pol, rig_events(3 * 10**9, cam_period={4: int(period_ms * MS)}))
    assert len(kfs) == 36
    assert pol.stats()["sets_too_few_cameras"] <= 1
    check_keyframe_invariants(kfs, cfg)
    assert sum(k.complete for k in kfs) >= 30
    assert all(set(k.missing_cameras) <= {4} for k in kfs)


def test_flush_emits_pending():
    pol = SyncPolicy(SyncConfig(camera_timeout_ns=10**12))
    pol.push_camera(0, 5, "a")
    assert pol.poll(6) == []
    (kf,) = pol.flush()
    assert kf.reason == "flushed" and kf.missing_cameras == (1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------- drops
def test_duplicates_dropped_and_counted():
    cfg = SyncConfig()
    pol = SyncPolicy(cfg)
    events = rig_events(1 * 10**9)
    doubled = []
    for e in events:
        doubled += [e, e]
    kfs = run(pol, doubled)
    assert len(kfs) == 12 and all(k.complete for k in kfs)
    check_keyframe_invariants(kfs, cfg)
    st = pol.stats()
    n_cam = sum(1 for e in events if e.kind == "cam")
    n_radar = len(events) - n_cam
    assert st["camera_duplicate"] == n_cam and st["camera_accepted"] == n_cam
    assert st["radar_duplicate"] == n_radar and st["radar_accepted"] == n_radar
    # No duplicated sweep inside a keyframe.
    for k in kfs:
        keys = [(s.name, s.stamp_ns) for s in k.radar]
        assert len(keys) == len(set(keys))


def test_out_of_order_same_sensor_dropped():
    pol = SyncPolicy(SyncConfig())
    t0 = 10**9
    assert pol.push_camera(0, t0 + CAM_PERIOD, "new")
    assert pol.push_camera(0, t0, "old") is False
    assert pol.push_radar("RADAR_FRONT", t0 + 100, "r1")
    assert pol.push_radar("RADAR_FRONT", t0, "r0") is False
    st = pol.stats()
    assert st["camera_out_of_order"] == 1 and st["radar_out_of_order"] == 1


def test_cross_camera_arrival_order_is_free():
    """Shuffled arrival across sensors (same-sensor order kept) still yields complete keyframes."""
    cfg = SyncConfig(camera_timeout_ns=300 * MS)
    pol = SyncPolicy(cfg)
    kfs = run(pol, rig_events(2 * 10**9, jitter_ns=60 * MS, seed=3))
    # Same-sensor reordering from jitter is possible; those frames are dropped and counted.
    st = pol.stats()
    assert st["camera_out_of_order"] == 0  # 60 ms jitter < 83 ms period keeps per-camera order
    assert len(kfs) == 24 and all(k.complete for k in kfs)
    check_keyframe_invariants(kfs, cfg)


def test_unknown_radar_dropped_and_any_radar_mode():
    pol = SyncPolicy(SyncConfig())
    assert pol.push_radar("RADAR_ROOF", 1, None) is False
    assert pol.stats()["radar_unknown"] == 1
    pol = SyncPolicy(SyncConfig(radar_names=None, max_radars=2))
    assert pol.push_radar("b", 1, "b1") and pol.push_radar("a", 1, "a1")
    assert pol.push_radar("c", 1, "c1") is False
    for cam in range(6):
        pol.push_camera(cam, 10 + cam, cam)
    (kf,) = pol.poll(100)
    assert [s.name for s in kf.radar] == ["a", "b"]


# ---------------------------------------------------------------------------- bag loop
def test_backward_jump_resets_buffers():
    cfg = SyncConfig()
    pol = SyncPolicy(cfg)
    events = rig_events(2 * 10**9)  # longer than backward_jump_ns, so the first message detects the loop
    first = run(pol, events)
    assert len(first) == 24
    # The bag loops: the same stamps again.
    looped = run(pol, events)
    assert pol.stats()["resets"] == 1
    assert pol.stats()["camera_out_of_order"] == pol.stats()["radar_out_of_order"] == 0
    assert len(looped) == 24 and all(k.complete for k in looped)
    check_keyframe_invariants(looped, cfg)
    # No radar sweep from "the future" (the first pass) leaked into the looped keyframes, and none
    # of the new pass was lost: the second pass matches the first one exactly.
    for k in looped:
        assert all(s.stamp_ns <= k.stamp_ns for s in k.radar)
    assert [(k.stamp_ns, k.camera_stamps_ns, [(s.name, s.stamp_ns) for s in k.radar]) for k in looped] == [
        (k.stamp_ns, k.camera_stamps_ns, [(s.name, s.stamp_ns) for s in k.radar]) for k in first
    ]


def test_loop_with_radar_first_keeps_radar_history():
    """After a loop, radar arriving (and polls happening) before any camera must not be pruned away."""
    cfg = SyncConfig(radar_max_sweeps=6)
    pol = SyncPolicy(cfg)
    run(pol, rig_events(2 * 10**9, t0=50 * 10**9))
    events = rig_events(1 * 10**9, t0=10 * 10**9)  # the loop: 40 s earlier
    radar = [e for e in events if e.kind == "radar"]
    cams = [e for e in events if e.kind == "cam"]
    for e in radar:
        pol.push_radar(e.sensor, e.stamp, ("radar", e.sensor, e.stamp))
        pol.poll(e.arrival)
    for e in cams:
        pol.push_camera(e.sensor, e.stamp, ("img", e.sensor, e.stamp))
    kfs = pol.poll(cams[-1].arrival + 10**9)
    assert pol.stats()["resets"] == 1
    last = kfs[-1]
    assert len(last.radar) == 5 * 6  # full history per radar


def test_backward_now_resets():
    pol = SyncPolicy(SyncConfig(camera_timeout_ns=10**12))
    pol.push_camera(0, 10 * 10**9, "x")
    pol.poll(10 * 10**9)
    assert pol.stats()["pending_sets"] == 1
    pol.poll(1 * 10**9)  # sim clock jumped back 9 s
    st = pol.stats()
    assert st["resets"] == 1 and st["pending_sets"] == 0


def test_small_backward_step_is_not_a_reset():
    pol = SyncPolicy(SyncConfig())
    pol.push_camera(0, 10**10, "a")
    pol.push_camera(0, 10**10 - 500 * MS, "b")
    st = pol.stats()
    assert st["resets"] == 0 and st["camera_out_of_order"] == 1


# ---------------------------------------------------------------------------- rate limiting
def test_emit_every_n():
    cfg = SyncConfig(emit_every_n=6)
    pol = SyncPolicy(cfg)
    kfs = run(pol, rig_events(2 * 10**9))
    assert len(kfs) == 4
    assert [k.seq for k in kfs] == [0, 1, 2, 3]
    gaps = {b.stamp_ns - a.stamp_ns for a, b in zip(kfs, kfs[1:])}
    assert gaps == {6 * CAM_PERIOD} or all(abs(g - 6 * CAM_PERIOD) <= 6 for g in gaps)
    assert pol.stats()["rate_limited"] == 20


@pytest.mark.parametrize("interval_ms", [450, 500])
def test_min_interval_2hz_with_jitter(interval_ms):
    """2 Hz out of 12 Hz cycles: exactly every 6th cycle is kept despite +-3 ms stamp jitter."""
    cfg = SyncConfig(min_interval_ns=interval_ms * MS)
    pol = SyncPolicy(cfg)
    rng = random.Random(1)
    t = 10**12
    kfs: list[SyncedKeyframe] = []
    for _cycle in range(60):  # 5 s of camera cycles with +-3 ms jitter
        base = t + rng.randrange(-3 * MS, 3 * MS)
        for cam in range(6):
            pol.push_camera(cam, base + cam * STAGGER, cam)
        kfs += pol.poll(base + 60 * MS)
        t += CAM_PERIOD
    gaps = [b.stamp_ns - a.stamp_ns for a, b in zip(kfs, kfs[1:])]
    assert all(6 * CAM_PERIOD - 6 * MS <= g <= 6 * CAM_PERIOD + 6 * MS for g in gaps), gaps
    assert len(kfs) == 10
    assert pol.stats()["rate_limited"] == 50


def test_min_interval_without_tolerance_skips_jittered_cycles():
    """The tolerance is what keeps 2 Hz at 2 Hz: without it, early-jittered cycles slip to the 7th."""
    cfg = SyncConfig(min_interval_ns=500 * MS, min_interval_tolerance_ns=0)
    pol = SyncPolicy(cfg)
    kfs: list[SyncedKeyframe] = []
    t = 10**12
    for cycle in range(60):
        base = t + (-2 * MS if cycle % 6 == 0 and cycle else 0)  # every 6th cycle fires 2 ms early
        for cam in range(6):
            pol.push_camera(cam, base + cam * STAGGER, cam)
        kfs += pol.poll(base + 60 * MS)
        t += CAM_PERIOD
    gaps = {b.stamp_ns - a.stamp_ns for a, b in zip(kfs, kfs[1:])}
    assert 7 * CAM_PERIOD in gaps or 7 * CAM_PERIOD - 2 * MS in gaps


# ---------------------------------------------------------------------------- radar wait
def test_radar_wait_holds_keyframe_until_radar_catches_up():
    cfg = SyncConfig(radar_names=("R",), radar_wait_ns=100 * MS, radar_after_ns=0)
    pol = SyncPolicy(cfg)
    t0 = 10**9
    pol.push_radar("R", t0 - 50 * MS, "old")
    for cam in range(6):
        pol.push_camera(cam, t0 + cam * STAGGER, cam)
    assert pol.poll(t0 + 50 * MS) == []  # radar has not reached the keyframe stamp yet
    assert pol.stats()["waiting_keyframes"] == 1
    pol.push_radar("R", t0 + 20 * MS, "new")  # proves no in-window sweep is still coming
    (kf,) = pol.poll(t0 + 51 * MS)
    assert [s.payload for s in kf.radar] == ["old"]  # new one is after the keyframe stamp


def test_radar_wait_times_out():
    cfg = SyncConfig(radar_names=("R",), radar_wait_ns=100 * MS)
    pol = SyncPolicy(cfg)
    pol.push_radar("R", 10**9 - 70 * MS, "last")  # alive, but its next sweep is late
    for cam in range(6):
        pol.push_camera(cam, 10**9 + cam, cam)
    assert pol.poll(10**9 + 10 * MS) == []  # final now; radar wait starts here
    assert pol.poll(10**9 + 109 * MS) == []
    (kf,) = pol.poll(10**9 + 110 * MS)
    assert [s.payload for s in kf.radar] == ["last"]
    assert pol.stats()["radar_wait_timeouts"] == 1


def test_radar_wait_skips_dead_radars():
    """A radar silent for a whole window (or never seen) does not delay keyframes."""
    cfg = SyncConfig(radar_names=("A", "B", "C"), radar_wait_ns=100 * MS, radar_window_ns=500 * MS)
    pol = SyncPolicy(cfg)
    t0 = 10**9
    pol.push_radar("A", t0 - 600 * MS, "stale")  # last sweep older than the window: dead
    pol.push_radar("B", t0 + 5 * MS, "fresh")  # already past the keyframe stamp
    for cam in range(6):
        pol.push_camera(cam, t0 + cam, cam)
    (kf,) = pol.poll(t0 + 10 * MS)  # C never seen, A dead, B done: no wait
    assert kf.missing_radars == ("A", "B", "C")  # B's sweep is after the stamp, not attached
    assert pol.stats()["radar_wait_timeouts"] == 0


def test_radar_after_ns_includes_slightly_later_sweep():
    cfg = SyncConfig(radar_names=("R",), radar_after_ns=30 * MS)
    pol = SyncPolicy(cfg)
    pol.push_radar("R", 10**9 + 20 * MS, "just_after")
    pol.push_radar("R", 10**9 + 40 * MS, "too_late")
    for cam in range(6):
        pol.push_camera(cam, 10**9 + cam, cam)
    (kf,) = pol.poll(10**9 + 10**8)
    assert [s.payload for s in kf.radar] == ["just_after"]


# ---------------------------------------------------------------------------- bounded memory
def test_bounded_memory_under_flood():
    cfg = SyncConfig(max_pending_sets=8, radar_buffer_size=32, max_waiting=8)
    pol = SyncPolicy(cfg)
    rng = random.Random(7)
    t = 10**12
    # 50k messages, never polled: each camera sends distinct, increasing stamps at random.
    for i in range(50_000):
        t += rng.randrange(1, 5 * MS)
        if i % 3:
            pol.push_camera(rng.randrange(6), t, i)
        else:
            pol.push_radar(RADAR_NAMES[i % 5], t, i)
        st = pol.stats() if i % 997 == 0 else None
        if st:
            assert st["pending_sets"] <= 8
            assert st["radar_buffered"] <= 5 * 32
    st = pol.stats()
    assert st["pending_sets"] <= 8 and st["radar_buffered"] <= 160
    assert st["radar_overflow"] > 0
    # Complete cycles pushed without any poll: final sets move on, queues stay bounded.
    pol.flush()
    before = pol.stats()
    for i in range(2000):
        for cam in range(6):
            pol.push_camera(cam, t + i * CAM_PERIOD + cam, i)
        st = pol.stats() if i % 101 == 0 else None
        if st:
            assert st["pending_sets"] <= 8 and st["waiting_keyframes"] <= 8
    st = pol.stats()
    assert st["waiting_overflow"] - before["waiting_overflow"] >= 2000 - 16
    assert st["pending_overflow"] == before["pending_overflow"]  # complete sets are never lost there
    kfs = pol.poll(t + 2001 * CAM_PERIOD)
    assert 8 <= len(kfs) <= 16 and all(k.complete for k in kfs)
    assert kfs[-1].camera_payloads[0] == 1999  # the newest survive, in order
    assert pol.stats()["pending_sets"] == 0


def test_pending_overflow_counted():
    pol = SyncPolicy(SyncConfig(max_pending_sets=3, camera_timeout_ns=10**12))
    for i in range(10):  # camera 0 only: every image opens a new set that stays pending
        pol.push_camera(0, 10**9 + i * 10**8, i)
    st = pol.stats()
    # Sets whose camera 0 image was superseded are not finalised before a poll: overflow drops.
    assert st["pending_sets"] == 3 and st["pending_overflow"] == 7


def test_radar_pruned_after_keyframes():
    cfg = SyncConfig(radar_buffer_size=1000, radar_window_ns=500 * MS)
    pol = SyncPolicy(cfg)
    run(pol, rig_events(5 * 10**9))
    # Only sweeps within one window of the last keyframe (+ newest) remain, ~7 per radar.
    assert pol.stats()["radar_buffered"] <= 5 * 9
    assert pol.stats()["radar_overflow"] == 0


def test_camera_backward_jump_alone_resets():
    pol = SyncPolicy(SyncConfig(camera_timeout_ns=10**12))
    for cam in range(3):
        pol.push_camera(cam, 20 * 10**9 + cam, cam)
    assert pol.stats()["pending_sets"] == 1
    assert pol.push_camera(1, 2 * 10**9, "looped") is True  # accepted after the reset
    st = pol.stats()
    assert st["resets"] == 1 and st["pending_sets"] == 1 and st["camera_out_of_order"] == 0
    (kf,) = pol.flush()
    assert kf.camera_payloads[1] == "looped" and kf.missing_cameras == (0, 2, 3, 4, 5)


def test_radar_backward_jump_alone_resets():
    pol = SyncPolicy(SyncConfig())
    pol.push_radar("RADAR_FRONT", 20 * 10**9, "a")
    pol.push_radar("RADAR_BACK_LEFT", 20 * 10**9, "b")
    assert pol.push_radar("RADAR_FRONT", 2 * 10**9, "looped")
    st = pol.stats()
    assert st["resets"] == 1 and st["radar_buffered"] == 1


@pytest.mark.parametrize("offset_s", [0, 8 * 365 * 86400, -3600])
def test_timeouts_tolerate_clock_offset_between_now_and_stamps(offset_s):
    """Node on wall time, bag stamps years old (or sensor clock ahead): polls every 20 ms while the
    staggered cameras arrive must not cut sets short; a dead camera still times out on `now`."""
    cfg = SyncConfig(camera_timeout_ns=150 * MS)
    pol = SyncPolicy(cfg)
    offset = offset_s * 10**9
    events = [e for e in rig_events(2 * 10**9, jitter_ns=30 * MS) if not (e.kind == "cam" and e.sensor == 4)]
    kfs: list[SyncedKeyframe] = []
    next_poll = events[0].arrival
    for e in events:
        while next_poll <= e.arrival:  # a 50 Hz poll timer on the node clock
            kfs += pol.poll(next_poll + offset)
            next_poll += 20 * MS
        if e.kind == "cam":
            pol.push_camera(e.sensor, e.stamp, ("img", e.sensor, e.stamp))
        else:
            pol.push_radar(e.sensor, e.stamp, ("radar", e.sensor, e.stamp))
    for _ in range(20):
        kfs += pol.poll(next_poll + offset)
        next_poll += 20 * MS
    assert len(kfs) == 24
    assert all(k.missing_cameras == (4,) for k in kfs)  # only the dead camera is ever missing
    st = pol.stats()
    assert st["camera_late"] == 0 and st["resets"] == 0
    check_keyframe_invariants(kfs, cfg)


def test_thread_safe_concurrent_push_and_poll():
    """Camera and radar callbacks on different threads, a poll timer on a third: no lost sets."""
    cfg = SyncConfig(camera_timeout_ns=10**12, max_pending_sets=64, max_waiting=64)
    pol = SyncPolicy(cfg)
    events = rig_events(2 * 10**9)
    cams = [e for e in events if e.kind == "cam"]
    radars = [e for e in events if e.kind == "radar"]
    out: list[SyncedKeyframe] = []
    done = threading.Event()

    def feed(evts):
        for e in evts:
            if e.kind == "cam":
                pol.push_camera(e.sensor, e.stamp, ("img", e.sensor, e.stamp))
            else:
                pol.push_radar(e.sensor, e.stamp, ("radar", e.sensor, e.stamp))

    def poller():
        while not done.is_set():
            out.extend(pol.poll(10**12))  # now before any timeout: only complete sets come out

    threads = [threading.Thread(target=feed, args=(cams,)), threading.Thread(target=feed, args=(radars,))]
    p = threading.Thread(target=poller)
    p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    p.join()
    out += pol.poll(10**12)
    assert len(out) == 24 and all(k.complete for k in out)
    stamps = [k.stamp_ns for k in out]
    assert stamps == sorted(stamps)
