"""render_frame: layout, boxes projected where geometry says, predictions styled apart, headless PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imkd_ros.constants import CAMERA_NAMES, CLASS_TO_ID
from imkd_ros.render import RenderOptions, box_corners, render_frame, render_frame_image
from imkd_ros.render.frame import CLASS_COLORS, PRED_TINT, _tint
from imkd_ros.types import Boxes, Frame

W, H = 320, 180


def _cam_to_ego(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    body = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = body @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    m[:3, 3] = [1.0, 0.0, 1.5]
    return m


YAWS = {"CAM_FRONT": 0.0, "CAM_FRONT_RIGHT": -0.95, "CAM_BACK_RIGHT": -1.9, "CAM_BACK": np.pi,
        "CAM_BACK_LEFT": 1.9, "CAM_FRONT_LEFT": 0.95}


def _boxes(centers, label: str, score: float = 1.0) -> Boxes:
    n = len(centers)
    return Boxes(
        center=np.array(centers, np.float32),
        size=np.tile(np.array([1.9, 4.5, 1.6], np.float32), (n, 1)),
        yaw=np.zeros(n, np.float32),
        velocity=np.tile(np.array([5.0, 0.0], np.float32), (n, 1)),
        labels=np.full(n, CLASS_TO_ID[label], np.int64),
        scores=np.full(n, score, np.float32),
        attributes=np.zeros(n, np.int64),
    )


def _frame(with_lidar: bool = True) -> Frame:
    k = np.array([[160.0, 0, W / 2], [0, 160.0, H / 2], [0, 0, 1]], np.float32)
    rng = np.random.default_rng(0)
    lidar = np.column_stack([rng.uniform(-40, 40, (5000, 2)), rng.uniform(-2, 2, 5000),
                             np.zeros(5000), np.zeros(5000)]).astype(np.float32)
    radar = np.array([[20.0, 0.5, 0.5, 10, 3.0, 0.0, 0.0, 0], [-15, 3, 0.5, 5, 0, -2, 0.2, 1]], np.float32)
    return Frame(
        timestamp_us=1,
        images=[np.full((H, W, 3), 60, np.uint8) for _ in CAMERA_NAMES],
        intrinsics=np.tile(k, (6, 1, 1)),
        cam_to_ego=np.stack([_cam_to_ego(YAWS[c]) for c in CAMERA_NAMES]).astype(np.float32),
        camera_valid=np.array([True, True, True, True, True, False]),
        radar=radar,
        lidar=lidar if with_lidar else None,
        gt=_boxes([[20.0, 0.0, 0.8], [0.0, 8.0, 0.8]], "car"),
        meta={"scene": "scene-x", "condition": "rain", "sample_token": "abc"},
    )


def _near(img: np.ndarray, color, tol: int = 40) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.array(color)) <= tol, axis=-1)


def test_render_layout_and_projection(tmp_path: Path) -> None:
    frame = _frame()
    pred = _boxes([[-20.0, 0.0, 0.8], [30.0, -20.0, 0.8]], "bus", score=0.8)
    pred.scores[1] = 0.1  # under the threshold: not drawn
    opts = RenderOptions(tile_width=320)
    path = render_frame(frame, pred, tmp_path / "r.png", opts)
    img = np.asarray(Image.open(path).convert("RGB"))
    title_h = 18
    assert img.shape == (title_h + 2 * H, 3 * 320 + 2 * H, 3)
    car = CLASS_COLORS["car"]
    # CAM_FRONT is the middle tile of the top row; the car 20 m ahead projects around its centre.
    front = img[title_h:title_h + H, 320:640]
    ys, xs = np.nonzero(_near(front, car))
    assert len(xs) > 50
    corners = box_corners(frame.gt.center[:1], frame.gt.size[:1], frame.gt.yaw[:1])[0]
    e2c = np.linalg.inv(frame.cam_to_ego[0].astype(np.float64))
    cam = corners @ e2c[:3, :3].T + e2c[:3, 3]
    uv = cam @ frame.intrinsics[0].T
    uv = uv[:, :2] / uv[:, 2:]
    assert uv[:, 0].min() - 3 <= xs.min() and xs.max() <= uv[:, 0].max() + 3
    # The prediction behind the ego shows in CAM_BACK (bottom middle), in the lighter tint.
    back = img[title_h + H:title_h + 2 * H, 320:640]
    assert _near(back, _tint(CLASS_COLORS["bus"]), tol=20).sum() > 30
    # The missing CAM_FRONT_LEFT tile (top left) is marked dark red.
    assert img[title_h + 5, 5, 0] < 60 and img[title_h + H // 2 - 20, 20, 1] < 20
    # BEV: the car drawn ahead of the ego (upwards), the dropped prediction absent.
    bev = img[title_h:, 960:]
    size = bev.shape[0]
    scale = size / (2 * opts.bev_range)
    ys, xs = np.nonzero(_near(bev, car, tol=10))
    assert len(ys) and ys.min() < size / 2 - 15 * scale
    assert PRED_TINT > 0


def test_render_without_lidar_gt_or_pred(tmp_path: Path) -> None:
    frame = _frame(with_lidar=False)
    frame.gt = None
    img = render_frame_image(frame, None, RenderOptions(tile_width=200))
    assert img.size == (3 * 200 + 2 * 112, 18 + 2 * 112)
    frame.images[2] = np.zeros((0, 0, 3), np.uint8)  # a broken view still renders
    render_frame(frame, Boxes.empty(), tmp_path / "sub" / "x.png")
    assert (tmp_path / "sub" / "x.png").stat().st_size > 1000
