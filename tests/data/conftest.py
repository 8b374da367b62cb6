"""Datasets for the data tests: the hand-made fixture (exact geometry) built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from .nusc_fixture import VERSION, build


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("nusc_fixture"))


@pytest.fixture(scope="session")
def fixture_version() -> str:
    return VERSION
