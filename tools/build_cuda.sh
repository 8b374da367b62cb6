#!/usr/bin/env bash
# Compile the bev_pool CUDA kernel (PTX + cubin) and the TensorRT plugin library for our GPUs.
#   sm_86: RTX 30xx / A10   sm_87: Jetson Orin   sm_89: RTX 40xx / L4   sm_90: H100 / H200
# PTX is what CuPy loads (JIT-compiled by the driver for newer GPUs); cubins are machine code.
# libimkd_trt_plugins.so = bev_pool_kernel.cu + bev_pool_trt_plugin.cpp (IPluginV3 imkd::BevPool),
# linked as a shared object WITHOUT libnvinfer (TensorRT loads it and provides the rest); its
# undefined symbols are checked to be only libc/libstdc++/libgcc and CUDA runtime ones.
# Nothing is run here, so this works on a machine without a GPU or TensorRT libraries.
# PTX from CUDA 13 needs a CUDA-13 driver; for Jetson build with the toolkit of its JetPack.
#
# Usage: tools/build_cuda.sh [OUT_DIR]        (default: build/cuda)
#   IMKD_CUDA_ARCHS="86 87 89 90"   architectures to build
#   IMKD_SKIP_CUDA_BUILD=1          exit 0 with a message when nvcc is missing (otherwise it fails)
#   NVCC=/path/to/nvcc              compiler (default: nvcc on PATH, then $CUDA_HOME/bin/nvcc)
#   TENSORRT_INCLUDE=/dir           TensorRT headers for the plugin (default: the system's, e.g.
#                                   /usr/include/aarch64-linux-gnu on JetPack); the library goes to
#                                   build/trt_plugin/ (IMKD_TRT_PLUGIN_OUT), where the runtime looks
#   IMKD_TRT_INCLUDES="d1 d2"       CI: build + check one plugin per header set, under
#                                   OUT_DIR/trt_plugin_<n>/ (e.g. TensorRT 10.3 and 11.1 headers)
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

# ---- TensorRT plugin library ----
plugin_cpp="$ROOT/imkd_ros/ops/csrc/bev_pool_trt_plugin.cpp"
gencode=()
for arch in $ARCHS; do gencode+=("-gencode=arch=compute_${arch},code=sm_${arch}"); done
last_arch="${ARCHS##* }"
gencode+=("-gencode=arch=compute_${last_arch},code=compute_${last_arch}")

build_plugin() {  # build_plugin INCLUDE_DIR OUT_SO
  local inc="$1" so="$2"
  mkdir -p "$(dirname "$so")"
  # -cudart shared: one CUDA runtime per process (TensorRT's, torch's); no -lnvinfer: TensorRT
  # itself provides nothing we call (the plugin interfaces are header-only virtual classes).
  "$NVCC" -O3 -std=c++17 -shared -Xcompiler -fPIC -Xcompiler -Wno-deprecated-declarations \
    -cudart shared "${gencode[@]}" -I"$inc" -o "$so" "$SRC" "$plugin_cpp"
  for sym in getCreators setLoggerFinder imkd_bev_pool_forward; do
    if ! nm -D --defined-only "$so" | grep -qE " T ${sym}$"; then
      echo "build_cuda: ERROR: $so does not export $sym" >&2
      exit 1
    fi
  done
  # every undefined symbol must come from libc/libstdc++/libgcc (versioned), the CUDA runtime
  # (cuda*/__cuda*) or TensorRT (nvinfer); anything else would fail to load on the target
  local bad
  bad="$(nm -D --undefined-only "$so" | awk '{print $2}' \
         | grep -vE '@(GLIBC|GLIBCXX|CXXABI|GCC)_' \
         | grep -vE '^(_ITM_deregisterTMCloneTable|_ITM_registerTMCloneTable|__gmon_start__)$' \
         | grep -vE '^_?_?cuda|@libcudart|nvinfer|^_ZN8nvinfer1' || true)"
  if [[ -n "$bad" ]]; then
    echo "build_cuda: ERROR: $so has unexpected undefined symbols:" $bad >&2
    exit 1
  fi
  if nm -D --undefined-only "$so" | grep -q "nvinfer"; then
    echo "build_cuda: note: $so references libnvinfer symbols (resolved when TensorRT loads it)"
  fi
  echo "build_cuda: plugin $(basename "$so") against $inc ($(du -k "$so" | cut -f1) kB)"
}

if [[ -n "${IMKD_TRT_INCLUDES:-}" ]]; then
  n=0
  for inc in $IMKD_TRT_INCLUDES; do
    if [[ ! -f "$inc/NvInferRuntime.h" ]]; then
      echo "build_cuda: ERROR: no TensorRT headers in $inc" >&2
      exit 1
    fi
    ver="$(awk '/#define (TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE|NV_TENSORRT_(MAJOR|MINOR|PATCH)) / && $3 ~ /^[0-9]+$/ {printf "%s.", $3}' "$inc/NvInferVersion.h" | sed 's/\.$//')"
    build_plugin "$inc" "$OUT/trt_plugin_${n}/libimkd_trt_plugins.so"
    echo "build_cuda: TensorRT headers ${ver:-?} ok"
    n=$((n + 1))
  done
else
  inc="${TENSORRT_INCLUDE:-}"
  if [[ -z "$inc" ]]; then
    for cand in /usr/include/aarch64-linux-gnu /usr/include/x86_64-linux-gnu /usr/local/tensorrt/include \
                /usr/include "${TENSORRT_ROOT:-/nonexistent}/include"; do
      if [[ -f "$cand/NvInferRuntime.h" ]]; then inc="$cand"; break; fi
    done
  fi
  if [[ -n "$inc" ]]; then
    build_plugin "$inc" "${IMKD_TRT_PLUGIN_OUT:-$ROOT/build/trt_plugin}/libimkd_trt_plugins.so"
  else
    echo "build_cuda: TensorRT headers not found (set TENSORRT_INCLUDE): plugin library not built"
  fi
fi
