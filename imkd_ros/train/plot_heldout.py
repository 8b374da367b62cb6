"""Draw the ablation as bars: NDS and mAP per row, mean over seeds and held-out splits, one dot
per seed, from the JSON files ``python -m imkd_ros.train.heldout --json`` writes.

    python -m imkd_ros.train.plot_heldout --json runs/val16_rows.json runs/val16b_rows.json \\
        --mark-seed 0 --out docs/images/ablation_v4.png

A row is a checkpoint's run folder with its ``_s<seed>`` suffix dropped (``imkd_t4x8_s2`` ->
``imkd_t4x8``); a seed's value is the mean over the splits it was scored on (the split is the
``data`` each result records, or, in files written before it did, the file), so a checkpoint
scored twice on one split counts once, and the splits behind each seed are listed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

_SEED = re.compile(r"^(?P<row>.+?)_s(?P<seed>\d+)$")


def collect(paths: list[str], metrics: tuple[str, ...] = ("NDS", "mAP")) -> dict[str, dict[int, dict[str, float]]]:
    """row -> seed -> metric (mean over the splits that scored it) and ``n_splits``."""
    acc: dict[str, dict[int, dict[str, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for p in paths:
        for ck, res in json.loads(Path(p).read_text()).items():
            run = Path(ck).parent.name
            m = _SEED.match(run)
            row, seed = (m["row"], int(m["seed"])) if m else (run, 0)
            split = str(res.get("data") or p)
            acc[row][seed][split] = {k: float(res["before_threshold"][k]) for k in metrics}
    return {row: {seed: {**{k: float(np.mean([v[k] for v in by_split.values()])) for k in metrics},
                         "n_splits": len(by_split)}
                  for seed, by_split in sorted(seeds.items())} for row, seeds in acc.items()}


def plot(table: dict[str, dict[int, dict[str, float]]], out: str | Path, order: list[str] | None = None,
         labels: dict[str, str] | None = None, title: str = "held-out ablation",
         mark_seed: int | None = None) -> Path:
    """``mark_seed``: draw that seed of every row as a diamond, so one-seed rows are read against
    the same seed of the multi-seed rows, not against their means."""
    import matplotlib  # noqa: PLC0415  (optional: heavy, plotting only; Agg backend before pyplot loads)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (optional: heavy, after matplotlib.use("Agg"))

    rows = [r for r in (order or sorted(table)) if r in table]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.55 * len(rows) + 1.6), sharey=True)
    for ax, metric in zip(axes, ("NDS", "mAP")):
        for i, row in enumerate(rows):
            vals = [d[metric] for d in table[row].values()]
            ax.barh(i, float(np.mean(vals)), color="#4C72B0" if len(vals) > 1 else "#8da0cb", height=0.6)
            ax.plot(vals, [i] * len(vals), "k.", ms=5)
            only = next(iter(table[row])) if len(vals) == 1 else None
            note = f"{np.mean(vals):.3f} ({f'{len(vals)} seeds' if only is None else f'seed {only}'})"
            if mark_seed is not None and mark_seed in table[row]:
                v = table[row][mark_seed][metric]
                ax.plot([v], [i], "D", color="#DD8452", ms=6, mec="k", mew=0.5)
                note += f"; seed {mark_seed}: {v:.3f}" if len(vals) > 1 else ""
            ax.text(max(vals) + 0.006, i, note, va="center", fontsize=8)
        marked = f"; diamond: seed {mark_seed}" if mark_seed is not None else ""
        ax.set_xlabel(f"{metric} (bar: mean over seeds; dots: seeds{marked})")
        ax.set_xlim(0, max(max(d[metric] for d in table[r].values()) for r in rows) * 1.45)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [(labels or {}).get(r, r) for r in rows])
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imkd_ros.train.plot_heldout", description=__doc__.splitlines()[0])
    p.add_argument("--json", nargs="+", required=True, help="heldout --json outputs (any splits, any rows)")
    p.add_argument("--out", required=True)
    p.add_argument("--rows", nargs="+", default=None, help="row order (run folder names without _sN)")
    p.add_argument("--label", action="append", default=[], help="ROW=text for the axis")
    p.add_argument("--title", default="held-out ablation")
    p.add_argument("--mark-seed", type=int, default=None, help="draw this seed of every row as a diamond")
    args = p.parse_args(argv)
    table = collect(args.json)
    labels = dict(item.partition("=")[::2] for item in args.label)
    for row in args.rows or sorted(table):
        if row not in table:
            print(f"{row}: no scores in the given files")
            continue
        seeds = table[row]
        print(f"{row}: NDS {np.mean([d['NDS'] for d in seeds.values()]):.3f} mAP "
              f"{np.mean([d['mAP'] for d in seeds.values()]):.3f} over seeds "
              + ", ".join(f"{s} ({d['n_splits']} split{'s' * (d['n_splits'] > 1)})" for s, d in seeds.items()))
    print(plot(table, args.out, args.rows, labels, args.title, args.mark_seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
