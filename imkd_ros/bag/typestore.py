"""A rosbags typestore for ROS 2 Kilted plus vision_msgs and imkd_msgs.

Why from the .msg files: rosbags' stores lack vision_msgs and know nothing of our messages;
registering them from the very files rosidl builds keeps the bag tooling and the live node on the
same definitions (and the same RIHS01 type hashes), so bags we write replay into real ROS 2.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

_PKG_ROOT = Path(__file__).resolve().parent.parent
# In a source checkout the definitions live in msg/ and third_party/; an installed package carries
# copies under share/imkd_ros/interfaces (setup.py data_files).
_CANDIDATES = {
    "imkd_msgs": [_PKG_ROOT.parent / "msg" / "msg"],
    "vision_msgs": [_PKG_ROOT.parent / "third_party" / "ros_interfaces" / "vision_msgs" / "msg"],
}


def _share_dir() -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415 (optional: ament installs only)

        return Path(get_package_share_directory("imkd_ros")) / "interfaces"
    except Exception:  # not installed through ament: only the source layout applies
        return None


def interface_msg_files() -> dict[str, list[Path]]:
    """The .msg files of the packages we register, per package; raises if a package is missing."""
    share = _share_dir()
    found: dict[str, list[Path]] = {}
    for pkg, dirs in _CANDIDATES.items():
        search = list(dirs) + ([share / pkg] if share else [])
        for d in search:
            files = sorted(d.glob("*.msg"))
            if files:
                found[pkg] = files
                break
        else:
            raise FileNotFoundError(f"no .msg files for {pkg} in {', '.join(map(str, search))}")
    return found


@lru_cache(maxsize=1)
def make_typestore():  # -> rosbags.typesys.store.Typestore
    """ROS2_KILTED types + vision_msgs + imkd_msgs, registered from their .msg definitions."""
    store = get_typestore(Stores.ROS2_KILTED)
    # vision_msgs first: nothing of ours depends on it, but the order keeps failures readable.
    for pkg in ("vision_msgs", "imkd_msgs"):
        types: dict = {}
        for f in interface_msg_files()[pkg]:
            types.update(get_types_from_msg(f.read_text(), f"{pkg}/msg/{f.stem}"))
        store.register(types)
    return store
