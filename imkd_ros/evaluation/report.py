"""report.json (every number) and report.md (readable tables) from an evaluation report dict.

Shared by ``imkd eval`` and the replay so both print the same tables: overall, per class, per
condition and per distance band (and the official DetectionEval numbers when present).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SUMMARY_KEYS: tuple[str, ...] = ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE")
CLASS_KEYS: tuple[str, ...] = ("AP", "AP@0.5", "AP@1", "AP@2", "AP@4", "ATE", "ASE", "AOE", "AVE", "AAE")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{v:.{digits}f}" if math.isfinite(v) else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _summary_rows(groups: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for name, rep in groups.items():
        rows.append([name, *(fmt(rep.get(k)) for k in SUMMARY_KEYS), fmt(rep.get("num_samples")),
                     fmt(rep.get("num_gt")), fmt(rep.get("num_pred")), ", ".join(rep.get("classes") or []) or "-"])
    return rows


def markdown(report: Mapping[str, Any], title: str = "Detection evaluation") -> str:
    """The report as Markdown tables."""
    lines = [f"# {title}", ""]
    info = report.get("info") or {}
    for k, v in info.items():
        lines.append(f"- {k}: {v}")
    if info:
        lines.append("")
    summary_header = ["set", *SUMMARY_KEYS, "samples", "GT", "pred", "classes"]
    lines += ["## Overall", ""]
    overall = {"all": report}
    if isinstance(report.get("official"), Mapping):
        overall["official (DetectionEval)"] = report["official"]
    lines += _table(summary_header, _summary_rows(overall))
    if not report.get("include_absent", False):
        lines += ["", "Averages over the classes present in the ground truth (see `classes`)."]
    per_class = report.get("per_class") or {}
    if per_class:
        lines += ["", "## Per class", ""]
        rows = [[c, *(fmt(r.get(k)) for k in CLASS_KEYS), fmt(r.get("num_gt")), fmt(r.get("num_pred"))]
                for c, r in per_class.items()]
        lines += _table(["class", *CLASS_KEYS, "GT", "pred"], rows)
    for key, heading in (("by_condition", "Per condition"), ("by_distance", "Per distance from the ego")):
        groups = report.get(key) or {}
        if groups:
            lines += ["", f"## {heading}", ""]
            lines += _table(summary_header, _summary_rows(groups))
    lines += ["", "mAP/NDS and TP errors (ATE m, ASE 1-IoU, AOE rad, AVE m/s, AAE 1-acc) from nuscenes-devkit "
              f"({(report.get('config') or {}).get('name', 'detection_cvpr_2019')}); '-' = not defined.", ""]
    return "\n".join(lines)


def write_reports(report: Mapping[str, Any], out_dir: str | Path, title: str = "Detection evaluation",
                  stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _jsonable(report)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False))
    md_path.write_text(markdown(data, title))
    return json_path, md_path


def summary_line(report: Mapping[str, Any]) -> str:
    """One line for logs: mAP / NDS / TP errors."""
    return " ".join(f"{k}={fmt(report.get(k))}" for k in SUMMARY_KEYS)


__all__ = ["markdown", "summary_line", "write_reports"]
