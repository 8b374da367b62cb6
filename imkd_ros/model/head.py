"""CenterPoint-style detection head: class-group heatmaps + per-object regression.

Per task (class group) the head predicts a heatmap (one channel per class), a 10-channel box
code [off_x, off_y, z, log w, log l, log h, sin yaw, cos yaw, vx, vy] and 8 attribute logits.
With ``heading: axis_dir`` channels 6-7 are (sin 2yaw, cos 2yaw) (the box axis) and an 11th
channel is the direction logit (which end of the axis is the front): (sin, cos) regression
averages two opposite headings into a short vector of random direction, the axis does not.
Targets are Gaussians at box centres on the BEV grid (layout [iy, ix], see bev_pool_geometry).
Decoding: top-k peaks, box code -> ego box, circle NMS per class -> imkd_ros.types.Boxes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.constants import ATTRIBUTES, CLASS_TO_ID, CLASSES
from imkd_ros.model.config import HeadConfig
from imkd_ros.ops.bev_pool_geometry import BevGrid
from imkd_ros.types import Boxes

BOX_CODE = ("off_x", "off_y", "z", "log_w", "log_l", "log_h", "sin", "cos", "vx", "vy")
NUM_ATTR = len(ATTRIBUTES)
VEL = slice(8, 10)  # velocity channels of the box code
DIR = 10  # direction logit channel (heading: axis_dir)
# attributes that mean "not moving" (velocity 0 at decode with static_attr_zero_velocity)
STATIC_ATTRIBUTES = tuple(ATTRIBUTES.index(a) for a in (
    "vehicle.parked", "vehicle.stopped", "pedestrian.standing", "pedestrian.sitting_lying_down"))
MOVER_CLASSES = tuple(CLASSES.index(c) for c in (
    "car", "truck", "construction_vehicle", "bus", "trailer", "motorcycle", "bicycle", "pedestrian"))


def box_code(cfg: HeadConfig) -> tuple[str, ...]:
    """Channel names of the box regression output for a head config."""
    if cfg.heading == "axis_dir":
        return BOX_CODE[:6] + ("sin2", "cos2") + BOX_CODE[8:] + ("dir",)
    return BOX_CODE
_VEHICLE = (0, 1, 2)
CLASS_ATTRIBUTES: dict[str, tuple[int, ...]] = {
    "car": _VEHICLE, "truck": _VEHICLE, "construction_vehicle": _VEHICLE, "bus": _VEHICLE,
    "trailer": _VEHICLE, "motorcycle": (3, 4), "bicycle": (3, 4), "pedestrian": (5, 6, 7),
    "barrier": (), "traffic_cone": (),
}


_ATTR_ALLOWED = np.zeros((len(CLASSES), NUM_ATTR), bool)
for _name, _attrs in CLASS_ATTRIBUTES.items():
    _ATTR_ALLOWED[CLASSES.index(_name), list(_attrs)] = True


def gaussian_radius(length: float, width: float, min_overlap: float) -> float:
    """CornerNet/CenterPoint radius (cells) so a shifted box keeps IoU >= min_overlap."""
    h, w = length, width
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, cx: int, cy: int, radius: int) -> None:
    """Max-merge a Gaussian (sigma = diameter / 6) centred at cell (cx, cy) into heatmap (H, W)."""
    d = 2 * radius + 1
    sigma = d / 6.0
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heatmap.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    region = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    np.maximum(region, patch, out=region)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TaskHead(nn.Module):
    def __init__(self, cin: int, cmid: int, num_classes: int, box_channels: int = len(BOX_CODE)):
        super().__init__()
        self.conv = conv_bn_relu(cin, cmid)
        self.heatmap = nn.Conv2d(cmid, num_classes, 1)
        nn.init.constant_(self.heatmap.bias, -2.19)  # type: ignore[arg-type]  # prior p = 0.1
        self.box = nn.Conv2d(cmid, box_channels, 1)
        self.attr = nn.Conv2d(cmid, NUM_ATTR, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.conv(x)
        return {"heatmap": self.heatmap(x), "box": self.box(x), "attr": self.attr(x)}


def focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """CenterNet Gaussian focal loss, normalised by the number of peaks."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1.0 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def gather_cells(x: Tensor, ind: Tensor) -> Tensor:
    """(B, C, H, W) at flat cell indices (B, M) -> (B, M, C)."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    return flat.gather(2, ind.unsqueeze(1).expand(b, c, ind.shape[1])).transpose(1, 2)


def circle_nms(xy: np.ndarray, scores: np.ndarray, radius: float) -> np.ndarray:
    """Greedy NMS on centre distance; returns kept indices in descending score order."""
    order = np.argsort(-scores, kind="stable")
    if radius <= 0 or len(order) == 0:
        return order
    pts = xy[order]
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= d2[i] < radius * radius
    return np.asarray(keep, dtype=np.int64)


class BoxCoder:
    """Boxes <-> head targets / outputs on the BEV grid; no parameters, so preprocessing uses it."""

    def __init__(self, cfg: HeadConfig, grid: BevGrid):
        self.cfg = cfg
        self.grid = grid
        self.tasks = [list(t) for t in cfg.tasks]
        self.code = box_code(cfg)
        # per task: axis + direction (True) or (sin, cos) (see HeadConfig.sincos_classes)
        self.axis = [cfg.heading == "axis_dir" and not all(c in cfg.sincos_classes for c in names)
                     for names in self.tasks]
        # class id -> (task, channel)
        self.class_slot = {CLASS_TO_ID[c]: (t, j) for t, names in enumerate(self.tasks)
                           for j, c in enumerate(names)}

    # ---------------------------------------------------------------- targets
    def encode(self, boxes: Boxes) -> list[dict[str, np.ndarray]]:
        """Ground-truth boxes (ego frame) of one sample -> per-task numpy targets."""
        g, cfg = self.grid, self.cfg
        m = cfg.max_objs
        out: list[dict[str, np.ndarray]] = []
        for names in self.tasks:
            out.append({
                "heatmap": np.zeros((len(names), g.ny, g.nx), np.float32),
                "ind": np.zeros(m, np.int64),
                "mask": np.zeros(m, bool),
                "box": np.zeros((m, len(self.code)), np.float32),
                "attr": np.full(m, -1, np.int64),
            })
        count = [0] * len(self.tasks)
        for i in range(len(boxes)):
            slot = self.class_slot.get(int(boxes.labels[i]))
            if slot is None:
                continue
            t, ch = slot
            x, y, z = (float(v) for v in boxes.center[i])
            fx = (x - g.x_min) / g.resolution
            fy = (y - g.y_min) / g.resolution
            ix, iy = math.floor(fx), math.floor(fy)
            if not (0 <= ix < g.nx and 0 <= iy < g.ny) or count[t] >= m:
                continue
            w, l, h = (max(float(v), 1e-3) for v in boxes.size[i])
            radius = gaussian_radius(l / g.resolution, w / g.resolution, cfg.gaussian_overlap)
            radius = max(cfg.min_radius, int(radius))
            tgt = out[t]
            draw_gaussian(tgt["heatmap"][ch], ix, iy, radius)
            k = count[t]
            count[t] += 1
            tgt["ind"][k] = iy * g.nx + ix
            tgt["mask"][k] = True
            yaw = float(boxes.yaw[i])
            vx, vy = (float(v) for v in boxes.velocity[i])
            if not (math.isfinite(vx) and math.isfinite(vy)):
                vx = vy = 0.0
            code = [fx - ix, fy - iy, z, math.log(w), math.log(l), math.log(h),
                    math.sin(yaw), math.cos(yaw), vx, vy]
            if self.axis[t]:
                # axis = yaw folded into [-pi/2, pi/2); dir = 1 when yaw is that end
                code[6:8] = [math.sin(2 * yaw), math.cos(2 * yaw)]
                code.append(1.0 if math.cos(yaw) > 0 or (abs(math.cos(yaw)) < 1e-9 and math.sin(yaw) < 0)
                            else 0.0)
            elif cfg.heading == "axis_dir":
                code.append(0.0)  # direction channel unused by this task
            tgt["box"][k] = code
            attr = int(boxes.attributes[i])
            if attr in CLASS_ATTRIBUTES[CLASSES[int(boxes.labels[i])]]:
                tgt["attr"][k] = attr
        return out

    def encode_batch(self, boxes: list[Boxes], device: torch.device | str = "cpu") -> list[dict[str, Tensor]]:
        per = [self.encode(b) for b in boxes]
        return [{k: torch.from_numpy(np.stack([p[t][k] for p in per])).to(device) for k in per[0][t]}
                for t in range(len(self.tasks))]

    # ---------------------------------------------------------------- decode
    @torch.no_grad()
    def decode(self, outputs: list[dict[str, Tensor]], score_threshold: float | None = None) -> list[Boxes]:
        """Head outputs -> one Boxes per sample (ego frame), after per-class circle NMS."""
        cfg, g = self.cfg, self.grid
        thr = cfg.score_threshold if score_threshold is None else score_threshold
        b = outputs[0]["heatmap"].shape[0]
        parts: list[list[dict[str, np.ndarray]]] = [[] for _ in range(b)]
        for t, (names, out) in enumerate(zip(self.tasks, outputs)):
            heat = torch.sigmoid(out["heatmap"].float())
            if cfg.local_max:
                heat = heat * (F.max_pool2d(heat, 3, 1, 1) == heat).to(heat.dtype)
            n, h, w = heat.shape[1:]
            k = min(cfg.top_k, n * h * w)
            scores, idx = heat.reshape(b, -1).topk(k)
            cls = idx // (h * w)
            cell = idx % (h * w)
            box = gather_cells(out["box"].float(), cell)  # (B, K, 10)
            attr_logits = gather_cells(out["attr"].float(), cell)
            iy, ix = (cell // w).float(), (cell % w).float()
            x = g.x_min + (ix + box[..., 0]) * g.resolution
            y = g.y_min + (iy + box[..., 1]) * g.resolution
            size = box[..., 3:6].clamp(max=6.0).exp()
            labels = torch.tensor([CLASS_TO_ID[c] for c in names], device=cls.device)[cls]
            yaw, vel = self._heading(box, labels, self.axis[t])
            for s in range(b):
                keep = scores[s] >= thr
                if not bool(keep.any()):
                    continue
                parts[s].append({
                    "center": torch.stack([x[s], y[s], box[s, :, 2]], -1)[keep].cpu().numpy(),
                    "size": size[s][keep].cpu().numpy(),
                    "yaw": yaw[s][keep].cpu().numpy(),
                    "velocity": vel[s][keep].cpu().numpy(),
                    "labels": labels[s][keep].cpu().numpy(),
                    "scores": scores[s][keep].cpu().numpy(),
                    "attr_logits": attr_logits[s][keep].cpu().numpy(),
                })
        return [self._finish(p) for p in parts]

    def _heading(self, box: Tensor, labels: Tensor, axis_dir: bool) -> tuple[Tensor, Tensor]:
        """Yaw (B, K) and velocity (B, K, 2) from decoded box codes (see HeadConfig.heading)."""
        cfg = self.cfg
        vel = box[..., VEL]
        if axis_dir:
            axis = 0.5 * torch.atan2(box[..., 6], box[..., 7])  # [-pi/2, pi/2]
            yaw = torch.where(box[..., DIR] >= 0, axis, axis + math.pi)
        else:
            yaw = torch.atan2(box[..., 6], box[..., 7])
        if cfg.velocity_flip_speed > 0:
            speed = vel.norm(dim=-1)
            mover = torch.zeros_like(labels, dtype=torch.bool)
            for c in MOVER_CLASSES:
                mover |= labels == c
            against = (torch.cos(yaw) * vel[..., 0] + torch.sin(yaw) * vel[..., 1]) < 0
            flip = mover & against & (speed > cfg.velocity_flip_speed)
            yaw = torch.where(flip, yaw + math.pi, yaw)
        yaw = torch.remainder(yaw + math.pi, 2 * math.pi) - math.pi
        return yaw, vel

    def _finish(self, parts: list[dict[str, np.ndarray]]) -> Boxes:
        if not parts:
            return Boxes.empty()
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        keep_all = []
        for label in np.unique(cat["labels"]):
            idx = np.nonzero(cat["labels"] == label)[0]
            radius = self.cfg.nms_radius.get(CLASSES[int(label)], 0.0)
            keep_all.append(idx[circle_nms(cat["center"][idx, :2], cat["scores"][idx], radius)])
        keep = np.concatenate(keep_all)
        keep = keep[np.argsort(-cat["scores"][keep], kind="stable")][: self.cfg.max_boxes]
        labels = cat["labels"][keep]
        allowed = _ATTR_ALLOWED[labels]  # (K, 8) bool
        logits = np.where(allowed, cat["attr_logits"][keep], -np.inf)
        attrs = np.where(allowed.any(1), np.argmax(logits, 1) if len(keep) else 0, -1).astype(np.int64)
        velocity = cat["velocity"][keep].astype(np.float32)
        if self.cfg.static_attr_zero_velocity and len(keep):
            velocity = np.where(np.isin(attrs, STATIC_ATTRIBUTES)[:, None], 0.0, velocity).astype(np.float32)
        return Boxes(
            center=cat["center"][keep].astype(np.float32),
            size=cat["size"][keep].astype(np.float32),
            yaw=cat["yaw"][keep].astype(np.float32),
            velocity=velocity,
            labels=labels.astype(np.int64),
            scores=cat["scores"][keep].astype(np.float32),
            attributes=attrs,
        )


class CenterHead(nn.Module):
    code_weights: Tensor

    def __init__(self, in_channels: int, cfg: HeadConfig, grid: BevGrid):
        super().__init__()
        self.cfg = cfg
        self.grid = grid
        self.coder = BoxCoder(cfg, grid)
        self.tasks = self.coder.tasks
        self.shared = conv_bn_relu(in_channels, cfg.shared_channels)
        self.task_heads = nn.ModuleList(
            TaskHead(cfg.shared_channels, cfg.head_channels, len(t), len(self.coder.code)) for t in self.tasks)
        if len(cfg.code_weights) != len(BOX_CODE):
            raise ValueError(f"head.code_weights needs {len(BOX_CODE)} entries, got {len(cfg.code_weights)}")
        self.register_buffer("code_weights", torch.tensor(cfg.code_weights, dtype=torch.float32),
                             persistent=False)

    def forward(self, x: Tensor) -> list[dict[str, Tensor]]:
        x = self.shared(x)
        return [h(x) for h in self.task_heads]

    def encode_batch(self, boxes: list[Boxes], device: torch.device | str = "cpu") -> list[dict[str, Tensor]]:
        return self.coder.encode_batch(boxes, device)

    def decode(self, outputs: list[dict[str, Tensor]], score_threshold: float | None = None) -> list[Boxes]:
        return self.coder.decode(outputs, score_threshold)

    # ---------------------------------------------------------------- losses
    def loss(self, outputs: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        cfg = self.cfg
        hm = box = attr = vel = dirl = outputs[0]["heatmap"].new_zeros(())
        for t, (out, tgt) in enumerate(zip(outputs, targets)):
            hm = hm + focal_loss(out["heatmap"], tgt["heatmap"])
            mask = tgt["mask"].float()
            npos = mask.sum().clamp(min=1.0)
            pred = gather_cells(out["box"], tgt["ind"]).float()
            err = pred[..., :8] - tgt["box"][..., :8]
            l1 = err.abs() * self.code_weights[:8] * mask.unsqueeze(-1)
            box = box + l1.sum() / npos
            verr = pred[..., VEL] - tgt["box"][..., VEL]
            vel = vel + (velocity_loss(verr, cfg) * self.code_weights[VEL] * mask.unsqueeze(-1)).sum() / npos
            if self.coder.axis[t]:
                bce = F.binary_cross_entropy_with_logits(pred[..., DIR], tgt["box"][..., DIR], reduction="none")
                dirl = dirl + (bce * mask).sum() / npos
            amask = tgt["mask"] & (tgt["attr"] >= 0)
            if bool(amask.any()):
                logits = gather_cells(out["attr"], tgt["ind"])[amask].float()
                attr = attr + F.cross_entropy(logits, tgt["attr"][amask])
            else:  # keep the attribute branch in the graph (DDP without find_unused_parameters)
                attr = attr + out["attr"].sum() * 0.0
        losses = {
            "heatmap": cfg.heatmap_weight * hm,
            "bbox": cfg.bbox_weight * box,
            "attr": cfg.attr_weight * attr,
        }
        if cfg.velocity_loss == "l1":  # the original recipe: velocity is part of the box term
            losses["bbox"] = losses["bbox"] + cfg.bbox_weight * vel
        else:
            losses["velocity"] = cfg.bbox_weight * vel
        if cfg.heading == "axis_dir":
            if not any(self.coder.axis):  # keep the direction channel in the graph (DDP)
                dirl = dirl + sum(o["box"][:, DIR].sum() for o in outputs) * 0.0
            losses["direction"] = cfg.dir_weight * dirl
        return losses


def velocity_loss(err: Tensor, cfg: HeadConfig) -> Tensor:
    """Elementwise velocity loss of errors (m/s); see HeadConfig.velocity_loss."""
    if cfg.velocity_loss == "l2":
        return err.pow(2)
    if cfg.velocity_loss == "huber":
        return F.smooth_l1_loss(err, torch.zeros_like(err), reduction="none", beta=cfg.velocity_beta)
    return err.abs()

def targets_to_outputs(targets: list[dict[str, Tensor]], grid: BevGrid) -> list[dict[str, Tensor]]:
    """Ideal head outputs from encoded targets (logit-space heatmap); for testing encode/decode."""
    outs = []
    for tgt in targets:
        hm = tgt["heatmap"].clamp(1e-6, 1 - 1e-6)
        b, _, h, w = hm.shape
        nc = tgt["box"].shape[-1]
        box = hm.new_zeros(b, nc, h * w)
        attr = hm.new_zeros(b, NUM_ATTR, h * w)
        for s in range(b):
            m = tgt["mask"][s]
            code = tgt["box"][s][m].clone()
            if nc > DIR:  # direction target {0, 1} -> a confident logit
                code[:, DIR] = (code[:, DIR] * 2 - 1) * 10.0
            box[s][:, tgt["ind"][s][m]] = code.T
            a = tgt["attr"][s][m]
            cells = tgt["ind"][s][m]
            attr[s, a[a >= 0], cells[a >= 0]] = 10.0
        outs.append({"heatmap": torch.logit(hm), "box": box.view(b, -1, h, w),
                     "attr": attr.view(b, -1, h, w)})
    return outs
