"""`imkd replay BAG`: offline validation on a recording with the node's own front end.

The bag's messages go, in recorded order, through the SAME DetectionFrontend the live node runs
(same sync policy driven by bag time, same transforms from /tf and /tf_static, same decoding, same
backend). Outputs: an MCAP with the inputs plus the detections (vision_msgs, imkd_msgs, markers)
that Foxglove and RViz open; the nuScenes metrics against the bag's ground-truth topic; report.json
and report.md; PNG renders of chosen and of the worst keyframes; a per-stage timing summary.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from imkd_ros.bag import make_typestore
from imkd_ros.evaluation import evaluate
from imkd_ros.evaluation.report import markdown
from imkd_ros.pipeline import FrameDetector, output_threshold, transform_boxes
from imkd_ros.render import render_frame
from imkd_ros.replay.source import open_recording
from imkd_ros.ros import detections, markers, msgutil
from imkd_ros.ros.frontend import DetectionFrontend, KeyframeOutput
from imkd_ros.ros.params import NodeParams, validate
from imkd_ros.types import Boxes

GT_TOPIC = "/ground_truth/objects"
OUT_TOPICS = {  # output topic -> message type (as the node publishes them under its namespace)
    "/perception/imkd_detector/detections": "vision_msgs/msg/Detection3DArray",
    "/perception/imkd_detector/objects": "imkd_msgs/msg/Object3DArray",
    "/perception/imkd_detector/markers": "visualization_msgs/msg/MarkerArray",
}


@dataclass
class ReplayOptions:
    out_dir: Path
    rate: float | None = None  # None: as fast as possible; else x real time
    write_bag: bool = True
    render: list[int] = field(default_factory=lambda: [0])  # indices of evaluated keyframes to render
    render_worst: int = 2
    gt_match_ns: int = 60_000_000  # a prediction belongs to the GT keyframe within this offset
    max_keyframes: int | None = None
    only_gt_keyframes: bool = False  # run the model only where ground truth exists (faster eval)
    # metrics score the detections before the node's output threshold (down to this score, at most
    # eval_max_detections per keyframe: nuScenes counts up to 500 per sample) and again at the
    # node's threshold; the output MCAP holds what the node publishes (its threshold)
    eval_score_threshold: float = 0.0
    eval_max_detections: int = 500


def load_params(path: str | Path | None) -> NodeParams:
    """Node parameters from a ROS params YAML (the node's own file) or the defaults."""
    if not path:
        return NodeParams()
    data = yaml.safe_load(Path(path).read_text())
    for key in ("/**", "imkd_detector", "/perception/imkd_detector"):
        if key in data:
            return validate(NodeParams(**data[key]["ros__parameters"]))
    raise ValueError(f"{path}: no '/**' or 'imkd_detector' section with ros__parameters")


def _frame_errors(pred: Boxes, gt: Boxes, dist: float = 2.0) -> int:
    """Misses + false positives by greedy centre matching (same class, < dist m): ranks the worst frames."""
    used = np.zeros(len(gt), bool)
    fp = 0
    for i in np.argsort(-pred.scores):
        d = np.linalg.norm(gt.center[:, :2] - pred.center[i, :2], axis=1) if len(gt) else np.zeros(0)
        d[(gt.labels != pred.labels[i]) | used] = np.inf
        j = int(np.argmin(d)) if len(d) else -1
        if j >= 0 and d[j] < dist:
            used[j] = True
        else:
            fp += 1
    return int((~used).sum()) + fp


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "max": float(a.max()), "n": int(a.size)}


class Replay:
    def __init__(self, bag: Path, detector: FrameDetector, params: NodeParams, options: ReplayOptions) -> None:
        self.bag = Path(bag)
        self.opt = options
        self.params = params
        # the front end keeps everything the model decodes; the node's threshold is applied per
        # output (bag, at-threshold metrics), so metrics are not depressed by a display setting
        self.node_threshold = params.score_threshold
        self.node_max = params.max_detections
        wide = replace(params, score_threshold=min(options.eval_score_threshold, params.score_threshold),
                       max_detections=max(options.eval_max_detections, params.max_detections))
        self.front = DetectionFrontend(wide, detector)
        self.outputs: list[KeyframeOutput] = []
        self.gt: dict[int, Boxes] = {}
        self.stage_ms: dict[str, list[float]] = defaultdict(list)

    def _dispatch(self) -> dict[str, Any]:
        p, f = self.params, self.front
        table: dict[str, Any] = {}
        for i, t in enumerate(p.camera_topics):
            table[t] = lambda m, i=i: f.on_camera(i, m)
        for i, t in enumerate(p.camera_info_topics):
            table[t] = lambda m, i=i: f.on_camera_info(i, m)
        for t in p.radar_topics:
            table[t] = lambda m, t=t: f.on_radar(t, m)
        table["/tf"] = lambda m: f.on_tf(m, False)
        table["/tf_static"] = lambda m: f.on_tf(m, True)
        table[GT_TOPIC] = lambda m: self.gt.__setitem__(msgutil.time_to_ns(m.header.stamp),
                                                        detections.object3d_array_to_boxes(m))
        return table

    def _gt_stamps_near(self, stamp: int) -> int | None:
        best = min(self.gt, key=lambda s: abs(s - stamp), default=None)
        return best if best is not None and abs(best - stamp) <= self.opt.gt_match_ns else None

    def run(self) -> dict[str, Any]:
        opt = self.opt
        opt.out_dir.mkdir(parents=True, exist_ok=True)
        store = make_typestore()
        dispatch = self._dispatch()
        writer = None
        out_conns: dict[str, Any] = {}
        t_wall0 = time.perf_counter()
        with open_recording(self.bag, store, self.params.camera_topics) as reader:
            total = sum(c.msgcount for c in reader.connections)
            if opt.write_bag:
                bag_out = opt.out_dir / "replay"
                if bag_out.exists():
                    shutil.rmtree(bag_out)
                writer = Writer(bag_out, version=9, storage_plugin=StoragePlugin.MCAP)
                writer.open()
                in_conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=store)
                            for c in reader.connections}
                out_conns = {t: writer.add_connection(t, ty, typestore=store) for t, ty in OUT_TOPICS.items()}
            bag_t0 = None
            processed = 0
            pbar = tqdm(total=total, desc=f"replay {self.bag.name}", unit="msg", mininterval=1.0)
            for conn, t_bag, raw in reader.messages():
                pbar.update(1)
                if bag_t0 is None:
                    bag_t0 = t_bag
                if opt.rate:
                    delay = (t_bag - bag_t0) / 1e9 / opt.rate - (time.perf_counter() - t_wall0)
                    if delay > 0:
                        time.sleep(delay)
                if writer is not None:
                    writer.write(in_conns[conn.id], t_bag, raw)
                handler = dispatch.get(conn.topic)
                if handler is None:
                    continue
                handler(reader.deserialize(raw, conn.msgtype))
                for kf in self.front.poll(t_bag):
                    if opt.max_keyframes is not None and processed >= opt.max_keyframes:
                        continue
                    if opt.only_gt_keyframes and self._gt_stamps_near(kf.stamp_ns) is None:
                        continue  # GT is written at the keyframe stamp, before or with its images
                    out = self.front.process(kf, keep_frame=True)
                    processed += 1
                    if out is None:
                        continue
                    self._record(out, writer, out_conns, t_bag, serialize_message)
            for kf in self.front.flush():
                out = self.front.process(kf, keep_frame=True)
                if out is not None:
                    self._record(out, writer, out_conns, kf.stamp_ns, serialize_message)
            pbar.close()
        if writer is not None:
            writer.close()
        wall = time.perf_counter() - t_wall0
        report = self._report(wall)
        if reader.truncated is not None:  # a damaged recording: say where reading stopped
            t = reader.truncated
            report["input_truncated"] = t
            print(f"warning: {t['file']} is truncated or damaged ({t['error']}): replayed the first "
                  f"{t['messages_read']} messages, up to log time {t['last_log_time_ns']} ns")
        return report

    def _record(self, out: KeyframeOutput, writer: Any, conns: dict, t_bag: int, serialize: Any) -> None:
        r = out.result
        if r.frame is not None:  # images are large: keep them only for frames we may render
            r.frame.images = [img[::2, ::2] if img is not None else None for img in r.frame.images]
            r.frame.intrinsics = r.frame.intrinsics.copy()
            r.frame.intrinsics[:, :2, :] *= 0.5
        self.outputs.append(out)
        for k, v in out.stages_ms.items():
            self.stage_ms[k].append(v)
        if writer is not None:
            stamp = max(t_bag, r.stamp_ns)
            builders = (detections.boxes_to_detection3d_array, detections.boxes_to_object3d_array,
                        markers.boxes_to_marker_array)
            published = self.at_node_threshold(r.boxes)
            for topic, build in zip(OUT_TOPICS, builders):
                writer.write(conns[topic], stamp, bytes(serialize(build(published, r.frame_id, r.stamp_ns))))

    def at_node_threshold(self, boxes: Boxes) -> Boxes:
        """What the node publishes: scores >= its threshold, at most max_detections (best first)."""
        return output_threshold(boxes, self.node_threshold, self.node_max)

    # -- evaluation and reports ---------------------------------------------------------------
    def matched(self) -> list[tuple[int, KeyframeOutput, Boxes]]:
        """(gt stamp, output, prediction moved to the GT stamp's ego frame) per evaluated keyframe."""
        pairs = []
        used: set[int] = set()
        for out in self.outputs:
            s = self._gt_stamps_near(out.result.stamp_ns)
            if s is None or s in used:
                continue
            used.add(s)
            pred = out.result.boxes
            try:  # camera sets are stamped a few ms from the LiDAR keyframe: undo the ego motion
                m = self.front.pipeline.tf.lookup_between_times(
                    self.params.base_frame, self.params.odom_frame, s, out.result.stamp_ns)
                pred = transform_boxes(pred, m)
            except LookupError:
                pass
            pairs.append((s, out, pred))
        return pairs

    def _report(self, wall_s: float) -> dict[str, Any]:
        opt = self.opt
        pairs = self.matched()
        report: dict[str, Any] = {
            "bag": str(self.bag),
            "backend": self.front.detector.name,
            "keyframes_processed": len(self.outputs),
            "keyframes_with_ground_truth": len(pairs),
            "wall_time_s": wall_s,
            "timing_ms": {k: _stats(v) for k, v in self.stage_ms.items()},
            "counters": {**dict(self.front.counters), **{f"sync_{k}": v for k, v in self.front.sync.stats().items()
                                                         if isinstance(v, int)},
                         **{f"pipeline_{k}": v for k, v in self.front.pipeline.counters.items()}},
        }
        if pairs:
            preds = {str(s): pred for s, _, pred in pairs}
            gts = {str(s): self.gt[s] for s, _, _ in pairs}
            report["metrics"] = evaluate(preds, gts, None)
            report["metrics_scope"] = (f"detections before the node's output threshold (score >= "
                                       f"{min(opt.eval_score_threshold, self.node_threshold):g} as decoded, "
                                       f"<= {max(opt.eval_max_detections, self.node_max)} per keyframe)")
            at = {k: self.at_node_threshold(p) for k, p in preds.items()}
            report["metrics_at_node_threshold"] = evaluate(at, gts, None, with_breakdowns=False)
            report["node_score_threshold"] = self.node_threshold
            errors = sorted(((_frame_errors(pred, self.gt[s]), i) for i, (s, _, pred) in enumerate(pairs)),
                            reverse=True)
            chosen = [i for i in opt.render if i < len(pairs)]
            worst = [i for _, i in errors[: opt.render_worst] if i not in chosen]
            report["renders"] = self._render(pairs, chosen, worst)
        (opt.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=False)
                                                 if _finite(report) else json.dumps(_nan_to_none(report), indent=2,
                                                                                    default=_json_default))
        (opt.out_dir / "report.md").write_text(report_markdown(report))
        return report

    def _render(self, pairs: list, chosen: list[int], worst: list[int]) -> list[str]:
        paths = []
        for tag, idxs in (("frame", chosen), ("worst", worst)):
            for i in idxs:
                s, out, pred = pairs[i]
                frame = out.result.frame
                frame.gt = self.gt[s]
                path = self.opt.out_dir / f"{tag}_{i:03d}_{s}.png"
                render_frame(frame, self.at_node_threshold(out.result.boxes), path)
                paths.append(str(path))
        return paths


def _finite(o: Any) -> bool:
    try:
        json.dumps(o, allow_nan=False, default=_json_default)
        return True
    except ValueError:
        return False


def _nan_to_none(o: Any) -> Any:
    """Strict JSON: NaN/inf (undefined metrics) become null."""
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and np.isfinite(x) else "-"


def report_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Replay of `{report['bag']}`", "",
             f"backend **{report['backend']}**, {report['keyframes_processed']} keyframes processed, "
             f"{report['keyframes_with_ground_truth']} with ground truth, {report['wall_time_s']:.1f} s wall time.", ""]
    if report.get("metrics"):
        body = markdown(report["metrics"], title="nuScenes metrics").splitlines()
        if report.get("metrics_scope"):
            lines += [f"Scored: {report['metrics_scope']}."]
        lines += ["#" + ln if ln.startswith("#") else ln for ln in body] + [""]
        at = report.get("metrics_at_node_threshold")
        if at:
            lines += [f"## At the node's output threshold ({report.get('node_score_threshold')})", "",
                      "| NDS | mAP | mATE | mASE | mAOE | mAVE | mAAE |", "|---|---|---|---|---|---|---|",
                      "| " + " | ".join(_fmt(at.get(k)) for k in ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE"))
                      + " |", ""]
    lines += ["## Per-stage timing (ms)", "", "| stage | mean | p50 | p90 | max |", "|---|---|---|---|---|"]
    for k, v in report["timing_ms"].items():
        lines.append(f"| {k} | {v['mean']:.2f} | {v['p50']:.2f} | {v['p90']:.2f} | {v['max']:.2f} |")
    lines += ["", "## Counters", ""] + [f"- {k}: {v}" for k, v in sorted(report["counters"].items()) if v]
    if report.get("renders"):
        lines += ["", "## Renders", ""] + [f"![{Path(p).name}]({Path(p).name})" for p in report["renders"]]
    return "\n".join(lines) + "\n"
