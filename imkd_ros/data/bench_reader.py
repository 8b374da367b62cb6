"""Time ``NuScenesReader.frame`` per keyframe: ``python -m imkd_ros.data.bench_reader DATAROOT VERSION``.

Reports CPU time (time.process_time), which is stable on a shared machine, and wall time.
"""

from __future__ import annotations

import argparse
import time

from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig, get_nuscenes

CONFIGS = {
    "default (6 radar, 10 lidar sweeps, full images)": ReaderConfig(),
    "image_downscale=2": ReaderConfig(image_downscale=2),
    "image_downscale=4, no lidar": ReaderConfig(image_downscale=4, load_lidar=False),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataroot")
    p.add_argument("version")
    p.add_argument("--limit", type=int, default=20, help="keyframes per config")
    args = p.parse_args(argv)
    c0, w0 = time.process_time(), time.perf_counter()
    nusc = get_nuscenes(args.dataroot, args.version)
    print(f"tables: {time.process_time() - c0:.2f} s CPU, {time.perf_counter() - w0:.2f} s wall")
    for name, cfg in CONFIGS.items():
        reader = NuScenesReader(args.dataroot, args.version, cfg, nusc=nusc)
        tokens = reader.sample_tokens()[: args.limit]
        reader.frame(tokens[0])  # warm-up (imports, caches)
        c0, w0 = time.process_time(), time.perf_counter()
        for tok in tokens:
            f = reader.frame(tok)
        n = len(tokens)
        print(f"{name}: {(time.process_time() - c0) / n * 1e3:.0f} ms CPU, {(time.perf_counter() - w0) / n * 1e3:.0f} "
              f"ms wall per frame; image {f.images[0].shape}, radar {len(f.radar)}, "
              f"lidar {0 if f.lidar is None else len(f.lidar)}, gt {0 if f.gt is None else len(f.gt)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
