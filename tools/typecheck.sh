#!/usr/bin/env bash
# mypy over the whole imkd_ros package (settings: setup.cfg [mypy]). TensorRT is not installable
# here, so its API is checked against tensorrt-stubs (pinned in requirements.in); the
# tensorrt.plugin module has no stubs and is imported dynamically (typed Any).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
# tensorrt-stubs installs tensorrt/__init__.pyi without a py.typed marker, so mypy would skip it
# as an untyped installed package; exposing the stub folders through MYPYPATH makes mypy use them.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
STUBS="$ROOT/build/typecheck-stubs"
rm -rf "$STUBS" && mkdir -p "$STUBS"
for pkg in tensorrt tensorrt_bindings; do
  if [[ ! -d "$SITE/$pkg" ]]; then
    echo "typecheck: $pkg stubs missing (pip install tensorrt-stubs, see requirements.in)" >&2
    exit 1
  fi
  cp -r "$SITE/$pkg" "$STUBS/$pkg"
done
# tensorrt-stubs 10.13 has a few lines that are not valid Python (a parameter named `in`, a
# required parameter after defaults); patch the copies so mypy can parse them.
sed -i -E 's/([(,] *)in: /\1in_: /g; s/power: Weights = None, channel_axis: int\)/power: Weights = None, channel_axis: int = 0)/' \
  "$STUBS/tensorrt_bindings/tensorrt.pyi"
export MYPYPATH="$STUBS"
exec "$PY" -m mypy --config-file setup.cfg "$@"
