"""Issue 13: index math stays fp32 under torch autocast; the rooms' import arrows point one way;
the torch backend keys device geometry by calibration, never by id()."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from imkd_ros.export import student as export_student
from imkd_ros.model import Student, imkd, load_config, student_io
from imkd_ros.model.student_io import example_inputs
from imkd_ros.model.view_transform import _feature_cells
from imkd_ros.ops.bev_pool_geometry import BevGrid, compute_bev_pool_geometry
from imkd_ros.runtime.torch_backend import TorchBackend, geometry_key

ROOT = Path(__file__).resolve().parents[2]
CORE_ROOMS = ("rig", "sync", "ops", "model", "pipeline", "runtime")


def test_radar_projection_and_cells_exact_under_fp16_autocast() -> None:
    torch.manual_seed(0)
    student = Student(load_config("cpu")).eval()
    t = example_inputs(student).tensors
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(1, 4000, 3, generator=g) - 0.5) * torch.tensor([100.0, 100.0, 4.0])
    mask = torch.ones(1, 4000, dtype=torch.bool)
    args = (pts, mask, t["intrinsics"], t["cam_to_ego"], t["img_aug"], student.img_hw, student.feat_hw,
            student.cfg.depth)
    ref = _feature_cells(*args)
    with torch.autocast("cpu", dtype=torch.float16):
        got = _feature_cells(*args)
    assert int(ref[4].sum()) > 1000  # plenty of points project into the images
    for a, b in zip(ref, got):
        assert a.dtype == b.dtype and torch.equal(a, b)
    # BEV cells of fp16 coordinates: the fp32 floor of those same values
    grid = BevGrid()
    half = pts.half()
    for a, b in zip(grid.cell_index(half), grid.cell_index(half.float())):
        assert torch.equal(a, b)


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_core_rooms_never_import_export_ros_or_train() -> None:
    bad = []
    for room in CORE_ROOMS:
        for path in sorted((ROOT / "imkd_ros" / room).rglob("*.py")):
            for mod in _imports(path):
                if mod.split(".")[:2] in (["imkd_ros", "export"], ["imkd_ros", "ros"], ["imkd_ros", "train"]):
                    bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert bad == []


def test_one_student_export_and_contract_in_the_model_room() -> None:
    assert imkd.StudentExport is student_io.StudentExport
    assert export_student.StudentInputs is student_io.StudentInputs
    defs = [p for p in (ROOT / "imkd_ros").rglob("*.py") if "class StudentExport" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in defs] == ["imkd_ros/model/student_io.py"]


def _geometry(shift: float) -> object:
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(2, 3, 4, 5, 3, generator=g) - 0.5) * torch.tensor([8.0, 8.0, 2.0]) + shift
    return compute_bev_pool_geometry(pts, BevGrid(-4.0, 4.0, -4.0, 4.0, -2.0, 2.0, 1.0), 1)


def test_torch_backend_device_geometry_keyed_by_calibration_not_id() -> None:
    backend = TorchBackend("cpu")
    backend.device = torch.device("meta")  # any device other than the geometry's
    a, b = _geometry(0.0), _geometry(0.0)
    a.key, b.key = "calib-1", "calib-1"
    first = backend._geometry(a)
    assert backend._geometry(b) is first and len(backend._geom_cache) == 1  # same calibration, one copy
    c = _geometry(0.5)  # other calibration, no key: keyed by content, not by a reusable id()
    assert geometry_key(c).startswith("content:") and geometry_key(c) != geometry_key(_geometry(0.0))
    del a, b
    other = backend._geometry(c)
    assert other is not first and len(backend._geom_cache) == 2
    assert other.ranks_bev.device.type == "meta" and other.key == geometry_key(c)
