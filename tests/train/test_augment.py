"""BEV augmentation keeps the geometry consistent: what a camera saw stays on the same pixel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imkd_ros.model.preprocess import Preprocessor
from imkd_ros.model.synthetic import box_corners, random_frame, tiny_config
from imkd_ros.train.augment import BevAugConfig, RadarDropoutConfig, augment_frame, radar_dropout, random_augment
from imkd_ros.train.trainer import FrameSet


def _project(points: np.ndarray, intr: np.ndarray, c2e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e2c = np.linalg.inv(c2e.astype(np.float64))
    cam = points @ e2c[:3, :3].T + e2c[:3, 3]
    uv = cam @ intr.astype(np.float64).T
    return uv[:, :2] / uv[:, 2:3], cam[:, 2]


@pytest.mark.parametrize("rot,scale,fx,fy", [(0.3, 1.05, False, False), (-0.39, 0.95, True, False),
                                            (1.0, 1.0, False, True), (2.5, 0.9, True, True)])
def test_projected_gt_corner_keeps_its_pixel(rot, scale, fx, fy):
    frame = random_frame(3, num_boxes=6)
    aug = augment_frame(frame, rot, scale, fx, fy)
    checked = 0
    for i in range(len(frame.gt)):
        before = box_corners(frame.gt.center[i], frame.gt.size[i], float(frame.gt.yaw[i]))
        after = box_corners(aug.gt.center[i], aug.gt.size[i], float(aug.gt.yaw[i]))
        for n in range(6):
            uv0, z0 = _project(before, frame.intrinsics[n], frame.cam_to_ego[n])
            uv1, z1 = _project(after, aug.intrinsics[n], aug.cam_to_ego[n])
            if (z0 < 0.5).any():
                continue
            np.testing.assert_allclose(np.sort(z1), np.sort(z0) * scale, rtol=1e-4)
            # the corner set is the same (a flip reorders corners): compare as sets
            d = np.linalg.norm(uv0[:, None] - uv1[None], axis=-1).min(1)
            assert d.max() < 1e-2, (i, n, d.max())
            checked += 1
    assert checked > 0


def test_points_boxes_velocities_move_together():
    frame = random_frame(5, num_boxes=4)
    aug = augment_frame(frame, math.radians(90), 1.1, flip_x=True)
    # +90 deg after a y-flip: (x, y) -> (y, x) * 1.1
    c0, c1 = frame.gt.center, aug.gt.center
    np.testing.assert_allclose(c1[:, 0], 1.1 * c0[:, 1], atol=1e-4)
    np.testing.assert_allclose(c1[:, 1], 1.1 * c0[:, 0], atol=1e-4)
    np.testing.assert_allclose(aug.gt.velocity, 1.1 * frame.gt.velocity[:, ::-1], atol=1e-4)
    np.testing.assert_allclose(aug.radar[:, :2], 1.1 * frame.radar[:, 1::-1], atol=1e-4)
    np.testing.assert_allclose(aug.radar[:, 4:6], 1.1 * frame.radar[:, 5:3:-1], atol=1e-4)
    np.testing.assert_allclose(aug.lidar[:, :2], 1.1 * frame.lidar[:, 1::-1], atol=1e-3)
    np.testing.assert_allclose(aug.gt.size, 1.1 * frame.gt.size, rtol=1e-5)
    # heading follows: the box's forward axis maps like a direction
    h0 = np.stack([np.cos(frame.gt.yaw), np.sin(frame.gt.yaw)], 1)
    h1 = np.stack([np.cos(aug.gt.yaw), np.sin(aug.gt.yaw)], 1)
    np.testing.assert_allclose(h1, h0[:, ::-1], atol=1e-5)
    assert frame.radar is not aug.radar and frame.gt is not aug.gt  # the source is untouched


def test_random_augment_is_seeded():
    frame = random_frame(1)
    a = random_augment(frame, np.random.default_rng(7))
    b = random_augment(frame, np.random.default_rng(7))
    np.testing.assert_array_equal(a.cam_to_ego, b.cam_to_ego)
    assert a.meta["bev_aug"] == b.meta["bev_aug"]


def test_radar_dropout_drops_frames_and_sectors_and_is_off_by_default():
    frame = random_frame(2)
    n = len(frame.radar)
    assert n > 10
    rng = np.random.default_rng(0)
    assert radar_dropout(frame, rng, RadarDropoutConfig()) is frame  # off: no draw, no copy
    assert rng.random() == np.random.default_rng(0).random()
    assert len(radar_dropout(frame, rng, RadarDropoutConfig(frame_p=1.0)).radar) == 0
    cfg = RadarDropoutConfig(sector_p=1.0, sector_deg=[90.0, 90.0])
    kept = [len(radar_dropout(frame, np.random.default_rng(s), cfg).radar) for s in range(20)]
    assert all(k < n for k in kept) and all(k > 0 for k in kept)  # one quarter of the azimuths goes
    out = radar_dropout(frame, np.random.default_rng(3), cfg)
    assert out.gt is frame.gt and out.lidar is frame.lidar and out.images is frame.images
    with pytest.raises(ValueError):
        RadarDropoutConfig(frame_p=1.5)


def test_training_frames_get_the_configured_radar_dropout():
    frames = [random_frame(i) for i in range(4)]
    always = FrameSet(frames, None, False, np.random.default_rng(0), RadarDropoutConfig(frame_p=1.0))
    assert all(len(always[i].radar) == 0 for i in range(4))
    never = FrameSet(frames, None, False, np.random.default_rng(0))
    assert all(len(never[i].radar) == len(frames[i].radar) for i in range(4))


@pytest.mark.parametrize("fx,fy", [(False, False), (True, False), (False, True), (True, True)])
def test_images_mirror_with_the_scene(fx, fy):
    """With image.flip_with_bev every view the network sees is one a proper (right-handed) camera
    could take: det(camera rotation) x (image flipped ? -1 : 1) = +1, so a side-on car points the
    way its label says. aug_flip's independent coin breaks that in half the samples."""
    cfg = tiny_config()
    cfg.image.flip_with_bev = True
    frame = augment_frame(random_frame(7, raw_hw=(128, 352)), 0.2, 1.0, fx, fy)
    _, img_aug = Preprocessor(cfg, train=True, seed=1).images(frame)
    for n in range(cfg.num_cameras):
        flipped = np.linalg.det(img_aug[n, :2, :2].numpy()) < 0
        assert flipped == (fx != fy)
        assert np.linalg.det(frame.cam_to_ego[n][:3, :3]) * (-1 if flipped else 1) == pytest.approx(1.0, abs=1e-4)
    # the old coin: over a few draws some mirrored-scene sample keeps unflipped images
    cfg.image.flip_with_bev, cfg.image.aug_flip = False, True
    pre = Preprocessor(cfg, train=True, seed=1)
    mirrored = augment_frame(random_frame(7, raw_hw=(128, 352)), 0.2, 1.0, True, False)
    hands = {bool(np.linalg.det(pre.images(mirrored)[1][0, :2, :2].numpy()) < 0) for _ in range(8)}
    assert hands == {False, True}


def test_left_right_flips_keep_front_and_back():
    """BevAugConfig.with_flips("left-right") mirrors y half the time and never x: a box facing +x
    keeps facing forward (within the rotation range), which the front/back mirror would undo."""
    cfg = BevAugConfig.with_flips("left-right")
    assert (cfg.flip_x, cfg.flip_y) == (True, False)
    assert (BevAugConfig.with_flips("both").flip_y, BevAugConfig.with_flips("none").flip_x) == (True, False)
    with pytest.raises(ValueError, match="bev flips"):
        BevAugConfig.with_flips("front-back")
    frame = random_frame(1)
    forward = np.cos(frame.gt.yaw) > 0.5  # within 60 degrees of +x
    assert forward.any()
    rng = np.random.default_rng(0)
    mirrored = 0
    for _ in range(100):
        aug = random_augment(frame, rng, cfg)
        assert not aug.meta["bev_aug"][3]
        mirrored += aug.meta["bev_aug"][2]
        assert (np.cos(aug.gt.yaw[forward]) > 0).all()
    assert 25 < mirrored < 75
    both = [random_augment(frame, rng, BevAugConfig.with_flips("both")) for _ in range(50)]
    assert any((np.cos(a.gt.yaw[forward]) < 0).all() for a in both)  # the control: x -> -x turns them
