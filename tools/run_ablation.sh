#!/usr/bin/env bash
# The IMKD ablation (docs/ablation.md) and the shipped CPU checkpoints (models/MODEL_CARD.md), end
# to end and resumable: synthesises the train / held-out worlds if missing, trains the LiDAR
# teacher and every student row for each seed (finished runs are skipped, killed runs resume from
# last.pt), writes runs/ablation/table.md; then trains the shipped teacher (16 epochs) and full
# IMKD student (10 epochs) and copies them to models/ with MODEL_CARD.md and docs/images/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m imkd_ros.train.ablation --out runs/ablation "$@"
[[ "${SHIP:-1}" == 1 ]] || exit 0
common=(--model cpu --data runs/data/synth_train --version v1.0-synth --train-split ""
        --val-data runs/data/synth_val --val-split "" --image-downscale 1 --cache-dir runs/ablation/cache
        --batch-size 2 --lr 2e-3 --seed 0 --threads 1 --quiet)
mkdir -p runs/ship/teacher runs/ship/student
[[ -f runs/ship/teacher/summary.json ]] ||
  "$PY" -m imkd_ros.cli train --variant teacher --out runs/ship/teacher --epochs 16 "${common[@]}"
[[ -f runs/ship/student/summary.json ]] ||
  "$PY" -m imkd_ros.cli train --variant imkd --teacher runs/ship/teacher/teacher.pt \
    --out runs/ship/student --epochs 10 "${common[@]}"
q=$(printf '%q ' "${common[@]}")
echo "imkd train --variant teacher --out runs/ship/teacher --epochs 16 $q" > runs/ship/teacher/command.txt
echo "imkd train --variant imkd --teacher runs/ship/teacher/teacher.pt --out runs/ship/student --epochs 10 $q" \
  > runs/ship/student/command.txt
"$PY" -m imkd_ros.train.ship --teacher-run runs/ship/teacher --student-run runs/ship/student
