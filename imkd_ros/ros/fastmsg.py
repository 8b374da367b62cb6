"""Fast construction of many small rclpy messages (the output builders' hot path).

Why: a MarkerArray holds 24 Points per box; rclpy's generated constructors default-construct every
nested message and type-check every field, which dominated output cost (bench_convert.py).

Invariant (what makes the shortcuts safe): a message built here compares equal (``==``) to the
one the plain constructor builds from the same values.
  * Flat messages (primitive fields only) are filled slot by slot (``_msg``), with values the
    caller already typed (Python float/int/str/bool of the field's type). Each class is checked
    once (``_flat_fields``) against its constructor; a class that fails the check, or a call
    with other keywords, takes the constructor.
  * Nested messages are shallow copies of a per-call template (``clone``): callers assign NEW
    sub-messages to every field that differs, and never mutate a sub-message in place, so the
    shared ones stay read-only (header, zero covariance, colours).
``FAST_MSGS = False`` switches both shortcuts off; tests compare both paths.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import numpy as np

FAST_MSGS = True
_PRIMITIVE_TYPES = {"double": 1.5, "float": 0.5, "string": "s", "int32": 3, "uint64": 4, "boolean": True}


@cache
def flat_fields(cls: Any) -> tuple[str, ...] | None:
    """Field names of a flat message class that can be filled through its slots, else None."""
    try:
        fields = cls.get_fields_and_field_types()
        if set(cls.__slots__) != {"_" + f for f in fields} | {"_check_fields"}:
            return None
        if not all(t in _PRIMITIVE_TYPES for t in fields.values()):
            return None
        names = tuple(fields)
        probe = {f: _PRIMITIVE_TYPES[t] for f, t in fields.items()}
        m = cls.__new__(cls)
        m._check_fields = False
        for n in names:
            setattr(m, "_" + n, probe[n])
        return names if m == cls(**probe) else None
    except Exception:  # any surprise in a generated class: use its constructor
        return None


def msg(cls: Any, **kw: Any) -> Any:
    """Flat message from all its field values (Python scalars of the right type)."""
    names = flat_fields(cls) if FAST_MSGS else None
    if names is None or len(kw) != len(names):
        return cls(**kw)
    m = cls.__new__(cls)
    m._check_fields = False
    for n in names:
        setattr(m, "_" + n, kw[n])
    return m


def clone(template: Any) -> Any:
    """Shallow copy of a message; callers assign whole new sub-messages to the fields they change."""
    return copy.copy(template) if FAST_MSGS else copy.deepcopy(template)


def make_points(xyz: np.ndarray) -> list[Any]:
    """(N, 3) -> [geometry_msgs/Point]."""
    from geometry_msgs.msg import Point  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    vals = np.asarray(xyz, np.float64).reshape(-1, 3).tolist()
    if not FAST_MSGS or flat_fields(Point) != ("x", "y", "z"):
        return [Point(x=x, y=y, z=z) for x, y, z in vals]
    new, out = Point.__new__, []
    for x, y, z in vals:  # the hottest loop: msg() inlined
        p = new(Point)
        p._check_fields, p._x, p._y, p._z = False, x, y, z
        out.append(p)
    return out
