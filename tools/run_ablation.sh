#!/usr/bin/env bash
# The IMKD ablation (docs/ablation.md) end to end: synthesises the train / held-out worlds if
# missing, trains the LiDAR teacher and every student row for each seed (resumable: finished runs
# are skipped, killed runs resume from last.pt), writes runs/ablation/table.md; then ships the
# seed-0 checkpoints to models/ with MODEL_CARD.md and pictures in docs/images/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m imkd_ros.train.ablation --out runs/ablation "$@"
if [[ "${SHIP:-1}" == 1 ]]; then
  "$PY" -m imkd_ros.train.ship --ablation runs/ablation --seed 0
fi
