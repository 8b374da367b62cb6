#!/usr/bin/env bash
# Compile the bev_pool CUDA kernel to PTX and cubin for the GPUs we deploy on.
#   sm_86: RTX 30xx / A10   sm_87: Jetson Orin   sm_89: RTX 40xx / L4   sm_90: H100
# PTX is what the TensorRT AOT plugin and CuPy load (JIT-compiled by the driver for newer GPUs);
# cubins are the ready machine code. Nothing is run here, so this works on a machine without a GPU.
# PTX from CUDA 13 needs a CUDA-13 driver; for Jetson build with the toolkit of its JetPack.
#
# Usage: tools/build_cuda.sh [OUT_DIR]        (default: build/cuda)
#   IMKD_CUDA_ARCHS="86 87 89 90"   architectures to build
#   IMKD_SKIP_CUDA_BUILD=1          exit 0 with a message when nvcc is missing (otherwise it fails)
#   NVCC=/path/to/nvcc              compiler (default: nvcc on PATH, then $CUDA_HOME/bin/nvcc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/imkd_ros/ops/csrc/bev_pool_kernel.cu"
OUT="${1:-$ROOT/build/cuda}"
ARCHS="${IMKD_CUDA_ARCHS:-86 87 89 90}"
ENTRIES=(imkd_bev_pool_fwd_f32 imkd_bev_pool_fwd_f16 imkd_bev_pool_dense_fwd_f32
         imkd_bev_pool_dense_fwd_f16 imkd_bev_pool_bwd_depth_f32 imkd_bev_pool_bwd_depth_f16
         imkd_bev_pool_bwd_feat_f32 imkd_bev_pool_bwd_feat_f16)

NVCC="${NVCC:-}"
if [[ -z "$NVCC" ]]; then
  if command -v nvcc >/dev/null 2>&1; then
    NVCC="$(command -v nvcc)"
  elif [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]]; then
    NVCC="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
  fi
fi
if [[ -z "$NVCC" ]]; then
  if [[ "${IMKD_SKIP_CUDA_BUILD:-0}" == "1" ]]; then
    echo "build_cuda: nvcc not found; skipped because IMKD_SKIP_CUDA_BUILD=1" >&2
    exit 0
  fi
  echo "build_cuda: ERROR: nvcc not found (install the CUDA toolkit, set NVCC or CUDA_HOME," \
       "or set IMKD_SKIP_CUDA_BUILD=1 to skip)" >&2
  exit 1
fi

mkdir -p "$OUT"
echo "build_cuda: $("$NVCC" --version | tail -n 1)"
for arch in $ARCHS; do
  ptx="$OUT/bev_pool_sm${arch}.ptx"
  cubin="$OUT/bev_pool_sm${arch}.cubin"
  "$NVCC" -O3 -std=c++17 -ptx -arch="compute_${arch}" -o "$ptx" "$SRC"
  "$NVCC" -O3 -std=c++17 -cubin -arch="sm_${arch}" -o "$cubin" "$SRC"
  for entry in "${ENTRIES[@]}"; do
    if ! grep -q "\.entry ${entry}(" "$ptx"; then
      echo "build_cuda: ERROR: entry point $entry missing from $ptx" >&2
      exit 1
    fi
  done
  echo "build_cuda: sm_${arch}: $(basename "$ptx") $(basename "$cubin")"
done
