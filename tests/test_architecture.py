"""The dependency rule between rooms (DEVELOPING.md, "Which room may import which"), checked on the
source: every `import imkd_ros.<room>` / `from imkd_ros.<room> import ...` anywhere in a file (module
level, in functions, under TYPE_CHECKING) must name the file's own room or one it may import.

Why: the core (rig, sync, ops, model, pipeline, runtime) runs on the vehicle without the ROS shell,
the exporter or the trainer; an upward import would drag them in (and their dependencies) and make
the core untestable on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imkd_ros"

FOUNDATION = {"constants", "types", "share"}  # share.py: installed-file lookup, imports no room
# room -> the other rooms it may import (the foundation is open to all). Keep in step with DEVELOPING.md.
ALLOWED: dict[str, set[str] | None] = {
    "__init__": set(),  # imkd_ros/__init__.py
    "constants": set(),
    "types": {"constants"},
    "share": set(),  # imkd_ros/share.py
    # core: runs on the vehicle, never imports ros / export / train (nor data, evaluation, replay)
    "rig": set(),
    "sync": set(),
    "ops": set(),
    "model": {"ops"},
    "pipeline": {"rig", "sync"},
    "runtime": {"model", "ops", "pipeline", "rig"},
    # offline world and tools
    "bag": set(),
    "world": {"rig"},
    "render": {"rig"},
    "data": {"rig", "bag", "world", "render"},
    "evaluation": {"rig", "data", "model"},
    "export": {"model", "ops", "runtime"},
    "train": {"rig", "model", "ops", "data", "evaluation", "render"},
    # shells and apps on top
    "testing": set(),
    "ros": {"rig", "sync", "pipeline", "runtime", "bag", "model"},
    "replay": {"rig", "sync", "pipeline", "runtime", "bag", "ros", "render", "evaluation", "testing", "data"},
    "cli": None,  # the entry point: may import every room
}
CORE = ("rig", "sync", "ops", "model", "pipeline", "runtime")
NEVER_FROM_CORE = ("ros", "export", "train")

# Known violations being removed in parallel work. Each entry must still exist (a stale entry fails,
# so it gets deleted once fixed).
TEMPORARY: dict[tuple[str, str], str] = {}


def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_rooms(source: str) -> list[tuple[int, str]]:
    """(line, room) for every import of an imkd_ros room in `source` (absolute imports)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "imkd_ros":  # from imkd_ros import rig, ...
                names = [f"imkd_ros.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "imkd_ros" and len(parts) > 1:
                out.append((node.lineno, parts[1]))
    return out


def violations(room: str, source: str, where: str) -> list[str]:
    allowed = ALLOWED.get(room, set())
    if allowed is None:
        return []
    bad = []
    for line, target in imported_rooms(source):
        if target == room or target in FOUNDATION or target in allowed:
            continue
        if (room, target) in TEMPORARY:
            continue
        bad.append(f"{where}:{line}: room '{room}' imports '{target}' (allowed: {sorted(allowed) or 'none'})")
    return bad


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_room_is_in_the_rule() -> None:
    rooms = {room_of(p) for p in package_files()}
    assert rooms <= set(ALLOWED), f"rooms without a dependency rule: {sorted(rooms - set(ALLOWED))}"
    for core in CORE:
        assert not ((ALLOWED[core] or set()) & set(NEVER_FROM_CORE)), core
    assert "export" not in (ALLOWED["runtime"] or set())


def test_no_room_imports_upward() -> None:
    bad = []
    for path in package_files():
        bad += violations(room_of(path), path.read_text(), str(path.relative_to(ROOT)))
    assert not bad, "dependency rule broken (DEVELOPING.md):\n" + "\n".join(bad)


def test_temporary_exceptions_are_still_needed() -> None:
    edges = {(room_of(p), target) for p in package_files() for _, target in imported_rooms(p.read_text())}
    stale = [f"{edge} ({why})" for edge, why in TEMPORARY.items() if edge not in edges]
    assert not stale, f"fixed: delete these TEMPORARY entries in tests/test_architecture.py: {stale}"


@pytest.mark.parametrize(("room", "source"), [
    ("pipeline", "from imkd_ros.ros import convert\n"),
    ("model", "def f():\n    import imkd_ros.train.trainer\n"),
    ("sync", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from imkd_ros.export.student import X\n"),
    ("runtime", "from imkd_ros import ros\n"),
    ("world", "from imkd_ros.data.nuscenes_reader import NuScenesReader\n"),
])
def test_the_check_catches_an_upward_import(room: str, source: str) -> None:
    assert violations(room, source, "example.py"), "an upward import must be reported"


def test_the_check_accepts_allowed_imports() -> None:
    src = "from imkd_ros.rig.geometry import Transform\nfrom imkd_ros.types import Boxes\nimport numpy\n"
    assert violations("pipeline", src, "example.py") == []
