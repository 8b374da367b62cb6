"""Where the upstream ROS 2 Python code for tests lives (../shared/vendor, beside the clone).

It is not part of the project (never copied in): tests put it on PYTHONPATH only where they need
it. In CI (CI=true) a missing vendor dir is a failure, since those tests must run there; on a
developer machine without it they skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENDOR = Path(os.environ.get("IMKD_VENDOR_DIR", ROOT.parent / "shared" / "vendor")).resolve()
VENDOR_PYTHON = VENDOR / "python"


def require_vendor(*parts: str) -> Path:
    """Path of VENDOR/<parts>; fail in CI, skip elsewhere, when it is missing."""
    path = VENDOR.joinpath(*parts)
    if not path.exists():
        why = f"upstream vendor code not found at {path} (expected ../shared/vendor beside the clone)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why + ": CI must have it", pytrace=False)
        pytest.skip(why)
    return path
