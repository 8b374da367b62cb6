"""The IMKD student (camera + radar), the training wrapper with teacher + distillation, and
checkpoint helpers.

Inference entry: ``Student.forward(batch, geometry)`` -> outputs with ``outputs["head"]``;
``Student.decode(outputs)`` -> list of imkd_ros.types.Boxes in the ego frame. Pass a
precomputed ``BevPoolGeometry`` (``Student.geometry(...)``) to keep per-frame work to the
weighted sum while the calibration is unchanged.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.model.backbone import ImageEncoder
from imkd_ros.model.config import IMKDConfig
from imkd_ros.model.distill import Distiller
from imkd_ros.model.fusion import IntensityGuidedFusion
from imkd_ros.model.head import CenterHead
from imkd_ros.model.radar import DOPPLER_CHANNELS, RadarBranch, bev_blocks
from imkd_ros.model.student_io import StudentExport, student_outputs_flat  # noqa: F401  (re-exported)
from imkd_ros.model.teacher import LabelTeacher, LidarTeacher
from imkd_ros.model.view_transform import LSSViewTransform, depth_loss, radar_depth_prior
from imkd_ros.ops.bev_pool_geometry import BevPoolGeometry
from imkd_ros.types import Boxes

STAGES = ("backbone", "depth", "pooling", "radar", "fusion", "head")


@contextmanager
def _stage(timings: dict[str, float] | None, name: str):
    if timings is None:
        yield
        return
    t0 = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


class Student(nn.Module):
    """Camera (ResNet + LSS with radar depth prior) + radar pillars -> fused BEV -> CenterHead."""

    def __init__(self, cfg: IMKDConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.grid.bev_grid()
        self.image_encoder = ImageEncoder(cfg.backbone)
        self.view_transform = LSSViewTransform(cfg, self.image_encoder.out_channels)
        self.radar = RadarBranch(cfg.radar, self.grid)
        self.fusion = IntensityGuidedFusion(cfg.depth.context_channels, cfg.radar.bev_channels, cfg.fusion)
        # the Doppler map skips the fusion: the head gets the measured radial velocity per cell
        extra = DOPPLER_CHANNELS if cfg.radar.doppler else 0
        self.bev_encoder = bev_blocks(cfg.fusion.channels + extra, cfg.fusion.channels, cfg.fusion.bev_blocks)
        self.head = CenterHead(cfg.fusion.channels, cfg.head, self.grid)

    @property
    def img_hw(self) -> tuple[int, int]:
        return self.cfg.image.height, self.cfg.image.width

    @property
    def feat_hw(self) -> tuple[int, int]:
        s = self.cfg.backbone.out_stride
        return self.cfg.image.height // s, self.cfg.image.width // s

    def geometry(self, intrinsics: Tensor, cam_to_ego: Tensor, img_aug: Tensor) -> BevPoolGeometry:
        """Cached BevPoolGeometry for (B, N, 3, 3) / (B, N, 4, 4) / (B, N, 3, 3) calibration
        (one BEV per camera, batch B * N, with ``depth.capture_compensation``)."""
        if self.cfg.depth.capture_compensation:
            intrinsics, cam_to_ego, img_aug = (t.flatten(0, 1).unsqueeze(1) for t in (intrinsics, cam_to_ego, img_aug))
        return self.view_transform.geometry(intrinsics, cam_to_ego, img_aug, self.img_hw, self.feat_hw)

    def forward(self, batch: dict, geometry: BevPoolGeometry | None = None,
                timings: dict[str, float] | None = None) -> dict:
        """batch: images (B, N, 3, H, W), intrinsics, cam_to_ego, img_aug, camera_valid,
        radar (B, P, F), radar_mask (B, P). ``timings`` (optional) collects seconds per stage."""
        images = batch["images"]
        b, n = images.shape[:2]
        intr, c2e, aug = batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"]
        if geometry is None:
            geometry = self.geometry(intr, c2e, aug)
        per_camera = self.cfg.depth.capture_compensation
        if geometry.batch != (b * n if per_camera else b):
            raise ValueError(f"geometry built for batch {geometry.batch}, got {b} x {n} cameras"
                             + (" (capture compensation pools per camera)" if per_camera else ""))
        vt = self.view_transform
        with _stage(timings, "backbone"):
            feats = self.image_encoder(images.flatten(0, 1))
        with _stage(timings, "depth"):
            prior = None
            if self.cfg.depth.radar_prior:
                prior = radar_depth_prior(batch["radar"][..., :3], batch["radar_mask"], intr, c2e, aug,
                                          self.img_hw, tuple(feats.shape[-2:]), self.cfg.depth)
            depth, logits, context = vt.predict_depth(feats, intr, aug, prior, batch.get("camera_valid"))
        with _stage(timings, "pooling"):
            cam_bev, cam_mass = vt.pool(depth, context, geometry)
            if per_camera:
                motion = batch.get("cam_motion")
                if motion is not None:
                    cam_bev, cam_mass = warp_to_keyframe(cam_bev, cam_mass, motion.to(cam_bev.dtype), self.grid)
                cam_bev = cam_bev.unflatten(0, (b, n)).sum(1)
                cam_mass = cam_mass.unflatten(0, (b, n)).sum(1)
        with _stage(timings, "radar"):
            radar = self.radar(batch["radar"], batch["radar_mask"])
        with _stage(timings, "fusion"):
            fused = self.fusion(cam_bev, radar["radar_bev"], radar["radar_intensity"], cam_mass)
            x = fused["fused_bev"]
            if "radar_doppler" in radar:
                x = torch.cat([x, radar["radar_doppler"].to(x.dtype)], 1)
            bev = self.bev_encoder(x)
        with _stage(timings, "head"):
            head = self.head(bev)
        return {"head": head, "bev": bev, "cam_bev": cam_bev, "cam_mass": cam_mass, "depth": depth,
                "depth_logits": logits, **radar, **fused}

    def loss(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        losses = self.head.loss(outputs["head"], batch["targets"])
        if self.cfg.depth.loss_weight > 0 and "depth_target" in batch:
            losses["depth"] = self.cfg.depth.loss_weight * depth_loss(outputs["depth_logits"],
                                                                      batch["depth_target"])
        return losses

    def decode(self, outputs: dict, score_threshold: float | None = None) -> list[Boxes]:
        return self.head.decode(outputs["head"], score_threshold)


def warp_to_keyframe(bev: Tensor, mass: Tensor, motion: Tensor, grid) -> tuple[Tensor, Tensor]:
    """Per-camera BEVs (B*N, C, H, W) built in each camera's capture-time ego frame -> the
    keyframe ego frame. motion (B, N, 4, 4): capture ego -> keyframe ego; the warp samples each
    keyframe cell at its capture-time position (inverse motion, planar part: yaw + x, y)."""
    m = motion.flatten(0, 1)
    rot, t = m[:, :2, :2], m[:, :2, 3]
    inv_r = rot.transpose(1, 2)  # rigid: R^-1 = R^T
    inv_t = -(inv_r @ t.unsqueeze(-1)).squeeze(-1)
    half = torch.tensor([(grid.x_max - grid.x_min) / 2, (grid.y_max - grid.y_min) / 2], dtype=bev.dtype,
                        device=bev.device)
    centre = torch.tensor([(grid.x_max + grid.x_min) / 2, (grid.y_max + grid.y_min) / 2], dtype=bev.dtype,
                          device=bev.device)
    # normalised u = (x - centre) / half; source u_s = D^-1 (R (centre + D u) + t - centre)
    scale = torch.diag_embed(half.expand(m.shape[0], 2))
    a = torch.linalg.solve(scale, inv_r @ scale)
    off = ((inv_r @ centre.unsqueeze(-1)).squeeze(-1) + inv_t - centre) / half
    theta = torch.cat([a, off.unsqueeze(-1)], -1)
    x = torch.cat([bev, mass], 1)
    g = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x[:, :-1], x[:, -1:]


class IMKD(nn.Module):
    """The one training wrapper of a student (``imkd train`` builds exactly this): student +
    optional frozen LiDAR teacher + optional frozen label teacher + distiller; ``forward`` returns
    the weighted losses (and the student outputs). Without distillation it is the student and
    its losses. A missing teacher / label teacher is built untrained (wiring tests only; the
    trainer always passes trained, frozen ones).

    The teacher may run on a finer grid (``teacher.grid``); its outputs are pooled onto the
    student grid before distillation (``LidarTeacher.to_student_grid``). State keys:
    ``student.*``, ``teacher.*``, ``label_teacher.*``, ``distiller.*``.
    """

    def __init__(self, cfg: IMKDConfig, teacher: LidarTeacher | None = None,
                 label_teacher: LabelTeacher | None = None):
        super().__init__()
        self.cfg = cfg
        self.student = Student(cfg)
        self.teacher = (teacher or LidarTeacher(cfg)).freeze() if uses_distillation(cfg) else None
        self.label_teacher = (label_teacher or LabelTeacher(cfg)).freeze() if cfg.distill.label else None
        self.distiller = None
        if self.teacher is not None or self.label_teacher is not None:
            t_ch = self.teacher.out_channels if self.teacher is not None else cfg.teacher.pillar.bev_channels
            self.distiller = Distiller(cfg.distill, cfg.radar.bev_channels, cfg.fusion.channels, t_ch,
                                       cfg.head.tasks)

    def train(self, mode: bool = True) -> IMKD:
        super().train(mode)
        for frozen in (self.teacher, self.label_teacher):  # BN statistics stay the teachers'
            if frozen is not None:
                frozen.eval()
        return self

    def forward(self, batch: dict) -> tuple[dict[str, Tensor], dict]:
        out = self.student(batch)
        losses = self.student.loss(out, batch)
        if self.distiller is None:
            return losses, out
        t_out, l_out = None, None
        with torch.no_grad():
            if self.teacher is not None:
                t_out = self.teacher.to_student_grid(self.teacher(batch["lidar"], batch["lidar_mask"]))
            if self.label_teacher is not None and "targets" in batch:
                l_out = self.label_teacher(batch["targets"])
        d = self.distiller(out, t_out, batch.get("targets"), l_out)
        losses.update({k: v.to(losses["heatmap"].dtype) for k, v in d.items()})
        return losses, out

    def export_module(self) -> nn.Module:
        return self.student


def uses_distillation(cfg: IMKDConfig) -> bool:
    """Whether a config needs the LiDAR teacher (any LiDAR distillation level on)."""
    d = cfg.distill
    return bool(d.level1 or d.level2 or d.response or d.velocity)


class CheckpointError(ValueError):
    """A checkpoint that must not be loaded (missing, not a file, truncated, corrupt, checksum
    mismatch); the message is one line naming the file and what is wrong."""


SIDECAR_SUFFIX = ".sha256"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_sha256(state: dict) -> str:
    """Digest of a state dict's tensors (names, dtypes, shapes, bytes): stored inside the checkpoint,
    so a flipped weight is caught even without the sidecar file."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        if not isinstance(v, torch.Tensor):
            continue
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(v.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: str | Path) -> str:
    """Write ``<checkpoint>.sha256`` (sha256sum format) next to a checkpoint; returns the digest."""
    digest = file_sha256(path)
    sidecar_path(path).write_text(f"{digest}  {Path(path).name}\n")
    return digest


def save_checkpoint(path: str | Path, model: nn.Module, cfg: IMKDConfig, kind: str = "student",
                    extra: dict | None = None) -> None:
    """Weights + config (plain dict) in one file, loadable with weights_only=True, written
    atomically, with a digest of the weights inside and ``<path>.sha256`` of the file beside it."""
    path = Path(path)
    state = model.state_dict()
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"kind": kind, "config": cfg.to_dict(), "state_dict": state, "extra": extra or {},
                "integrity": {"state_sha256": state_sha256(state)}}, str(tmp))
    tmp.replace(path)
    write_sidecar(path)


def verify_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict only if it is intact; CheckpointError (one line) otherwise.

    Checks, in order: a non-empty regular file; its sha256 against ``<path>.sha256`` when that
    exists; that torch.load(weights_only=True) can read it; the digest of the weights inside."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: not found")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: empty file")
    side = sidecar_path(path)
    if side.exists():
        want = side.read_text().split()[0].strip().lower() if side.read_text().split() else ""
        got = file_sha256(path)
        if want != got:
            raise CheckpointError(f"checkpoint {path}: sha256 {got[:16]} does not match {side.name} "
                                  f"({want[:16]}): corrupt or replaced, refusing to load")
    try:
        data = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # zip / pickle / truncation errors: all mean "not a usable checkpoint"
        msg = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path}: not a readable checkpoint ({type(exc).__name__}: {msg})") from exc
    if not isinstance(data, dict) or "config" not in data or "state_dict" not in data:
        raise CheckpointError(f"checkpoint {path}: not an imkd_ros checkpoint (needs config and state_dict)")
    inner = (data.get("integrity") or {}).get("state_sha256")
    if inner is not None and inner != state_sha256(data["state_dict"]):
        raise CheckpointError(f"checkpoint {path}: weights do not match their stored digest: corrupt, refusing to load")
    return data


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[IMKDConfig, dict, str]:
    data = verify_checkpoint(path, map_location)
    try:
        cfg = IMKDConfig.from_dict(data["config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: invalid model config ({exc})") from exc
    return cfg, data["state_dict"], data.get("kind", "student")


def load_student(path: str | Path, map_location: str | torch.device = "cpu") -> Student:
    """A Student in eval mode from a student checkpoint (or the student of an IMKD checkpoint)."""
    cfg, state, kind = load_checkpoint(path, map_location)
    if kind == "imkd":
        state = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    model = Student(cfg)
    _load_state(model, state, path)
    return model.eval()


def load_teacher(path: str | Path, map_location: str | torch.device = "cpu") -> LidarTeacher | LabelTeacher:
    """A LiDAR teacher (kind "teacher") or a label teacher (kind "label_teacher"), eval mode."""
    cfg, state, kind = load_checkpoint(path, map_location)
    model = LabelTeacher(cfg) if kind == "label_teacher" else LidarTeacher(cfg)
    _load_state(model, state, path)
    return model.eval()


def _load_state(model: nn.Module, state: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # torch lists every key; the first line says enough
        raise CheckpointError(f"checkpoint {path}: weights do not fit its model config "
                              f"({str(exc).strip().splitlines()[0]})") from exc
