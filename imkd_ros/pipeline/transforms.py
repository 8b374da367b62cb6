"""A small time-indexed transform tree: the core's stand-in for tf2_ros.Buffer.

Why not tf2_ros: it is not on PyPI, and the replay must run without ROS. On a vehicle the ROS shell
may feed a real tf2 buffer instead; this class keeps the same idea (static + timed transforms,
lookups between any two frames at a time, interpolation) behind one seam: `lookup(target, source,
stamp_ns) -> 4x4`. History is bounded by duration, so memory stays flat on a long drive.

Policy (what a vehicle can trust): frames published on /tf_static are owned by it; a timed
transform for such a frame is rejected. A transform that would give a frame a second parent
(re-parenting) or close a loop is rejected, so one misdirected message (``base_link -> odom`` on
/tf) can never break every lookup; a static frame may become static-owned from timed, never the
other way. Every rejection raises TransformRejected (the caller counts it) and is tallied in
``rejected`` by reason.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from imkd_ros.rig.geometry import quat_normalize, quat_to_rotmat, rigid_inverse, rotmat_to_quat


class TransformError(LookupError):
    """A transform that cannot be resolved (unknown frame, no common root, outside history)."""


class TransformRejected(ValueError):
    """A transform refused by the tree policy; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


REJECT_REASONS = ("self_parent", "static_owned", "reparent", "loop")


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        return quat_normalize(q0 + t * (q1 - q0))
    theta = np.arccos(dot)
    return (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)


@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)  # sorted ns
    quats: list[np.ndarray] = field(default_factory=list)  # (w, x, y, z)
    trans: list[np.ndarray] = field(default_factory=list)


class TransformBuffer:
    """parent <- child transforms, static or timed, with bounded history and interpolation."""

    def __init__(self, history_ns: int = 10_000_000_000, extrapolation_ns: int = 100_000_000) -> None:
        self.history_ns = history_ns
        self.extrapolation_ns = extrapolation_ns  # allowed hold beyond the newest/oldest sample
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()
        self.version = 0  # bumps when a static transform changes (calibration caches key on it)
        self._static_cache: dict[tuple[str, str], np.ndarray] = {}
        self._static_cache_version = -1
        self.rejected: Counter[str] = Counter()

    def set_transform(self, parent: str, child: str, matrix: np.ndarray, stamp_ns: int = 0,
                      static: bool = False) -> None:
        """Add `parent <- child` (maps child coordinates into parent); TransformRejected when the
        tree policy refuses it (the tree is unchanged then)."""
        q = rotmat_to_quat(np.asarray(matrix[:3, :3], np.float64))
        t = np.asarray(matrix[:3, 3], np.float64).copy()
        with self._lock:
            edge = self._edges.get(child)
            self._check_policy(parent, child, static, edge)
            if edge is None or edge.static != static:
                edge = self._edges[child] = _Edge(parent, static)
                if static:
                    self.version += 1
            if static:
                if edge.quats and np.allclose(edge.quats[0], q, atol=1e-9) and np.allclose(edge.trans[0], t):
                    return
                edge.stamps, edge.quats, edge.trans = [0], [q], [t]
                self.version += 1
                return
            i = bisect.bisect_left(edge.stamps, stamp_ns)
            if i < len(edge.stamps) and edge.stamps[i] == stamp_ns:
                edge.quats[i], edge.trans[i] = q, t
            else:
                edge.stamps.insert(i, stamp_ns)
                edge.quats.insert(i, q)
                edge.trans.insert(i, t)
            cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.history_ns)
            if cut:
                del edge.stamps[:cut], edge.quats[:cut], edge.trans[:cut]

    def _check_policy(self, parent: str, child: str, static: bool, edge: _Edge | None) -> None:
        def reject(reason: str, text: str) -> TransformRejected:
            self.rejected[reason] += 1
            return TransformRejected(reason, f"{parent} -> {child} rejected: {text}")

        if parent == child:
            raise reject("self_parent", "a frame cannot be its own parent")
        if edge is not None:
            if edge.static and not static:
                raise reject("static_owned", f"{child} is a static frame (owned by /tf_static)")
            if edge.parent != parent:
                raise reject("reparent", f"{child} already has parent {edge.parent}")
            return
        frame = parent  # a new edge: it must not close a loop (child an ancestor of parent)
        seen = {parent}
        while frame in self._edges:
            frame = self._edges[frame].parent
            if frame == child:
                raise reject("loop", f"{child} is an ancestor of {parent}: the tree would loop")
            if frame in seen:
                break
            seen.add(frame)

    def clear_dynamic(self) -> None:
        """Forget timed transforms (time jumped backwards, e.g. a bag loop); statics stay."""
        with self._lock:
            for edge in self._edges.values():
                if not edge.static:
                    edge.stamps.clear()
                    edge.quats.clear()
                    edge.trans.clear()

    def has_frame(self, frame: str) -> bool:
        with self._lock:
            return frame in self._edges or any(e.parent == frame for e in self._edges.values())

    def _edge_matrix(self, child: str, edge: _Edge, stamp_ns: int) -> np.ndarray:
        if not edge.stamps:
            raise TransformError(f"no transform {edge.parent} <- {child} yet")
        if edge.static:
            q, t = edge.quats[0], edge.trans[0]
        else:
            s = edge.stamps
            if stamp_ns < s[0] - self.extrapolation_ns or stamp_ns > s[-1] + self.extrapolation_ns:
                raise TransformError(
                    f"{edge.parent} <- {child} at {stamp_ns} ns is outside the buffered range [{s[0]}, {s[-1]}]"
                )
            i = bisect.bisect_left(s, stamp_ns)
            if i <= 0:
                q, t = edge.quats[0], edge.trans[0]
            elif i >= len(s):
                q, t = edge.quats[-1], edge.trans[-1]
            else:
                a = (stamp_ns - s[i - 1]) / (s[i] - s[i - 1])
                q = _slerp(edge.quats[i - 1], edge.quats[i], a)
                t = (1 - a) * edge.trans[i - 1] + a * edge.trans[i]
        m = np.eye(4)
        m[:3, :3] = quat_to_rotmat(q)
        m[:3, 3] = t
        return m

    def _ancestors(self, frame: str) -> list[str]:
        chain = [frame]
        while frame in self._edges:
            frame = self._edges[frame].parent
            if frame in chain:
                raise TransformError(f"transform loop at {frame}")
            chain.append(frame)
        return chain

    def _up_to(self, frame: str, ancestor: str, stamp_ns: int) -> np.ndarray:
        """ancestor <- frame, evaluating only the edges between them (a static lookup never
        touches the timed odom -> base_link edge above it)."""
        acc = np.eye(4)
        while frame != ancestor:
            edge = self._edges[frame]
            acc = self._edge_matrix(frame, edge, stamp_ns) @ acc
            frame = edge.parent
        return acc

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray:
        """4x4 mapping `source` coordinates at `stamp_ns` into `target` (tf2's lookupTransform)."""
        if target == source:
            return np.eye(4)
        with self._lock:
            if self._static_cache_version != self.version:
                self._static_cache.clear()
                self._static_cache_version = self.version
            cached = self._static_cache.get((target, source))
            if cached is not None:
                return cached.copy()
            src_chain = self._ancestors(source)
            common = next((f for f in self._ancestors(target) if f in src_chain), None)
            if common is None:
                raise TransformError(f"frames {target} and {source} are not connected")
            m = rigid_inverse(self._up_to(target, common, stamp_ns)) @ self._up_to(source, common, stamp_ns)
            if self._all_static(source, common) and self._all_static(target, common):
                self._static_cache[(target, source)] = m  # per-calibration, not per-frame work
            return m

    def _all_static(self, frame: str, ancestor: str) -> bool:
        while frame != ancestor:
            edge = self._edges.get(frame)
            if edge is None or not edge.static:
                return False
            frame = edge.parent
        return True

    def lookup_between_times(self, frame: str, fixed: str, target_ns: int, source_ns: int) -> np.ndarray:
        """`frame`@target_ns <- `frame`@source_ns through the fixed frame (tf2's time travel)."""
        fixed_from_src = self.lookup(fixed, frame, source_ns)
        fixed_from_tgt = self.lookup(fixed, frame, target_ns)
        return rigid_inverse(fixed_from_tgt) @ fixed_from_src
