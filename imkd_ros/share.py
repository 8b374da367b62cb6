"""Runtime files of the package (shipped model, configs, RViz config, DDS profiles) wherever it runs.

Rule: a file is looked up next to the code that is running first, then in the installed package's
``share/imkd_ros``. That covers the three layouts the package runs from:
  * the dev venv (editable install) and a ``colcon build --symlink-install``: the imported package
    is the source tree, whose root holds models/, config/ and launch/;
  * a plain ``colcon build`` (or a non-editable pip install): the package sits in site-packages
    and setup.py's data_files put the files under <prefix>/share/imkd_ros, found through the
    ament index (ament_index_python when importable, else AMENT_PREFIX_PATH read the same way),
    then sys.prefix.
Never relative to the current directory, never computed from site-packages alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "imkd_ros"
_PKG_DIR = Path(__file__).resolve().parent


def source_root() -> Path | None:
    """The source checkout the running package comes from (editable / symlink install), else None."""
    root = _PKG_DIR.parent
    manifest = root / "package.xml"
    if manifest.is_file() and f"<name>{PACKAGE}</name>" in manifest.read_text(errors="replace"):
        return root
    return None


def _ament_prefixes() -> list[Path]:
    """Install prefixes that register this package in the ament resource index."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix  # noqa: PLC0415  (optional: ament_index_python only in a colcon install)
    except ImportError:
        marker = Path("share", "ament_index", "resource_index", "packages", PACKAGE)
        return [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
                if p and (Path(p) / marker).is_file()]
    try:
        return [Path(get_package_prefix(PACKAGE))]
    except (PackageNotFoundError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return []


def share_dirs() -> list[Path]:
    """Candidate roots, in lookup order (existing directories only, no duplicates)."""
    dirs: list[Path] = []
    src = source_root()
    if src is not None:
        dirs.append(src)
    dirs += [p / "share" / PACKAGE for p in _ament_prefixes()]
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in {o.resolve() for o in out}:
            out.append(d)
    return out


def share_file(*parts: str) -> Path:
    """Path of a shipped file, e.g. ``share_file("models", "imkd_student_cpu.pt")``.

    FileNotFoundError names the file and every place searched (a broken install says so plainly).
    """
    rel = Path(*parts)
    searched = share_dirs()
    for d in searched:
        if (d / rel).exists():
            return d / rel
    where = ", ".join(str(d) for d in searched) or "nowhere (no source tree, no ament index entry)"
    raise FileNotFoundError(f"{PACKAGE} file {rel} not found; searched {where}")
