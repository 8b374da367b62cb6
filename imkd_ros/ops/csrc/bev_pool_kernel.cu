// BEV pooling (BEVPoolv2-style) CUDA kernels for the `imkd::bev_pool` op.
//
// Contract (see imkd_ros/ops/bev_pool.py):
//   depth (B*N, D, H, W), feat (B*N, H, W, C), ranks_* int32 (P,) sorted by ranks_bev,
//   interval_starts / interval_lengths int32 (K,), one interval per occupied BEV cell.
//   out (batch, bev_h, bev_w, C); out[cell, c] = sum_i depth[ranks_depth[i]] * feat[ranks_feat[i], c]
//   over the cell's interval, zeros in empty cells.
//
// Why these kernels:
//   * `imkd_bev_pool_fwd_*`: one thread per (interval, channel), no atomics; the caller zeroes the
//     output first (torch.zeros is a cheap memset). This is the BEVPoolv2 layout and the fastest
//     when most cells are empty.
//   * `imkd_bev_pool_dense_fwd_*`: one thread per output element (cell, channel); the thread finds
//     its cell's interval by binary search over the intervals (sorted by cell) and writes zeros for
//     empty cells. It needs no memset, so it is the single launch a TensorRT AOT plugin can use.
//   * fp16 kernels read half and accumulate in fp32.
//   * Backward: `imkd_bev_pool_bwd_depth_*` one thread per point (each frustum point has its own
//     depth entry, so ranks_depth is unique and no atomics are needed); `imkd_bev_pool_bwd_feat_*`
//     one thread per (feature interval, channel) over the points re-sorted by ranks_feat (the caller
//     passes the permutation and the feature intervals), again without atomics.
//
// Kernel argument order follows TensorRT's AOT plugin convention: input tensors, then int32
// scalars, then output tensors. Every kernel is extern "C" so its PTX entry name is stable.

#if defined(IMKD_CPU_EMULATION)
// tests/deploy/kernel_emulation.cpp defines the CUDA built-ins and runs the kernels on the CPU.
#elif defined(__CUDACC_RTC__)
// NVRTC (CuPy RawModule(code=...)) has no libc headers and compiles device code only.
#include <cuda_fp16.h>
typedef int int32_t;
typedef long long int64_t;
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#endif

namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

template <typename T>
__device__ __forceinline__ void bev_pool_fwd(const T* __restrict__ depth, const T* __restrict__ feat,
                                             const int32_t* __restrict__ ranks_depth,
                                             const int32_t* __restrict__ ranks_feat,
                                             const int32_t* __restrict__ ranks_bev,
                                             const int32_t* __restrict__ interval_starts,
                                             const int32_t* __restrict__ interval_lengths,
                                             int32_t n_intervals, int32_t channels, T* __restrict__ out) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t interval = idx / channels;
  const int32_t c = static_cast<int32_t>(idx % channels);
  if (interval >= n_intervals) return;
  const int32_t start = interval_starts[interval];
  const int32_t length = interval_lengths[interval];
  if (length <= 0) return;  // an empty interval has no cell: never read ranks_bev[start]
  float acc = 0.f;
  for (int32_t i = start; i < start + length; ++i) {
    acc += to_float(depth[ranks_depth[i]]) *
           to_float(feat[static_cast<int64_t>(ranks_feat[i]) * channels + c]);
  }
  out[static_cast<int64_t>(ranks_bev[start]) * channels + c] = from_float<T>(acc);
}

template <typename T>
__device__ __forceinline__ void bev_pool_dense_fwd(const T* __restrict__ depth, const T* __restrict__ feat,
                                                   const int32_t* __restrict__ ranks_depth,
                                                   const int32_t* __restrict__ ranks_feat,
                                                   const int32_t* __restrict__ ranks_bev,
                                                   const int32_t* __restrict__ interval_starts,
                                                   const int32_t* __restrict__ interval_lengths,
                                                   int32_t n_intervals, int32_t channels, int32_t n_out,
                                                   T* __restrict__ out) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_out) return;
  const int32_t cell = static_cast<int32_t>(idx / channels);
  const int32_t c = static_cast<int32_t>(idx % channels);
  // Lower bound over the intervals' cells (sorted ascending): first k with cell(k) >= cell.
  int32_t lo = 0;
  int32_t hi = n_intervals;
  while (lo < hi) {
    const int32_t mid = (lo + hi) >> 1;
    if (ranks_bev[interval_starts[mid]] < cell) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  float acc = 0.f;
  if (lo < n_intervals && interval_lengths[lo] > 0) {
    const int32_t start = interval_starts[lo];
    if (ranks_bev[start] == cell) {
      const int32_t length = interval_lengths[lo];
      for (int32_t i = start; i < start + length; ++i) {
        acc += to_float(depth[ranks_depth[i]]) *
               to_float(feat[static_cast<int64_t>(ranks_feat[i]) * channels + c]);
      }
    }
  }
  out[idx] = from_float<T>(acc);
}

template <typename T>
__device__ __forceinline__ void bev_pool_bwd_depth(const T* __restrict__ out_grad, const T* __restrict__ feat,
                                                   const int32_t* __restrict__ ranks_depth,
                                                   const int32_t* __restrict__ ranks_feat,
                                                   const int32_t* __restrict__ ranks_bev, int32_t n_points,
                                                   int32_t channels, T* __restrict__ depth_grad) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_points) return;
  const T* g = out_grad + static_cast<int64_t>(ranks_bev[i]) * channels;
  const T* f = feat + static_cast<int64_t>(ranks_feat[i]) * channels;
  float acc = 0.f;
  for (int32_t c = 0; c < channels; ++c) acc += to_float(g[c]) * to_float(f[c]);
  depth_grad[ranks_depth[i]] = from_float<T>(acc);
}

template <typename T>
__device__ __forceinline__ void bev_pool_bwd_feat(const T* __restrict__ out_grad, const T* __restrict__ depth,
                                                  const int32_t* __restrict__ ranks_depth,
                                                  const int32_t* __restrict__ ranks_feat,
                                                  const int32_t* __restrict__ ranks_bev,
                                                  const int32_t* __restrict__ order,
                                                  const int32_t* __restrict__ feat_interval_starts,
                                                  const int32_t* __restrict__ feat_interval_lengths,
                                                  int32_t n_feat_intervals, int32_t channels,
                                                  T* __restrict__ feat_grad) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t interval = idx / channels;
  const int32_t c = static_cast<int32_t>(idx % channels);
  if (interval >= n_feat_intervals) return;
  const int32_t start = feat_interval_starts[interval];
  const int32_t length = feat_interval_lengths[interval];
  if (length <= 0) return;
  float acc = 0.f;
  for (int32_t j = start; j < start + length; ++j) {
    const int32_t i = order[j];
    acc += to_float(depth[ranks_depth[i]]) *
           to_float(out_grad[static_cast<int64_t>(ranks_bev[i]) * channels + c]);
  }
  feat_grad[static_cast<int64_t>(ranks_feat[order[start]]) * channels + c] = from_float<T>(acc);
}

}  // namespace

// ---- PTX entry points (extern "C": stable names for CuPy RawModule and TensorRT AOT plugins) ----

#define IMKD_FWD(NAME, T)                                                                              \
  extern "C" __global__ void NAME(const T* depth, const T* feat, const int32_t* ranks_depth,          \
                                  const int32_t* ranks_feat, const int32_t* ranks_bev,                \
                                  const int32_t* interval_starts, const int32_t* interval_lengths,    \
                                  int32_t n_intervals, int32_t channels, T* out) {                    \
    bev_pool_fwd<T>(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths, \
                    n_intervals, channels, out);                                                      \
  }

#define IMKD_DENSE_FWD(NAME, T)                                                                        \
  extern "C" __global__ void NAME(const T* depth, const T* feat, const int32_t* ranks_depth,          \
                                  const int32_t* ranks_feat, const int32_t* ranks_bev,                \
                                  const int32_t* interval_starts, const int32_t* interval_lengths,    \
                                  int32_t n_intervals, int32_t channels, int32_t n_out, T* out) {     \
    bev_pool_dense_fwd<T>(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,            \
                          interval_lengths, n_intervals, channels, n_out, out);                       \
  }

#define IMKD_BWD_DEPTH(NAME, T)                                                                        \
  extern "C" __global__ void NAME(const T* out_grad, const T* feat, const int32_t* ranks_depth,       \
                                  const int32_t* ranks_feat, const int32_t* ranks_bev,                \
                                  int32_t n_points, int32_t channels, T* depth_grad) {                \
    bev_pool_bwd_depth<T>(out_grad, feat, ranks_depth, ranks_feat, ranks_bev, n_points, channels,      \
                          depth_grad);                                                                \
  }

#define IMKD_BWD_FEAT(NAME, T)                                                                         \
  extern "C" __global__ void NAME(const T* out_grad, const T* depth, const int32_t* ranks_depth,      \
                                  const int32_t* ranks_feat, const int32_t* ranks_bev,                \
                                  const int32_t* order, const int32_t* feat_interval_starts,          \
                                  const int32_t* feat_interval_lengths, int32_t n_feat_intervals,     \
                                  int32_t channels, T* feat_grad) {                                   \
    bev_pool_bwd_feat<T>(out_grad, depth, ranks_depth, ranks_feat, ranks_bev, order,                   \
                         feat_interval_starts, feat_interval_lengths, n_feat_intervals, channels,      \
                         feat_grad);                                                                  \
  }

IMKD_FWD(imkd_bev_pool_fwd_f32, float)
IMKD_FWD(imkd_bev_pool_fwd_f16, __half)
IMKD_DENSE_FWD(imkd_bev_pool_dense_fwd_f32, float)
IMKD_DENSE_FWD(imkd_bev_pool_dense_fwd_f16, __half)
IMKD_BWD_DEPTH(imkd_bev_pool_bwd_depth_f32, float)
IMKD_BWD_DEPTH(imkd_bev_pool_bwd_depth_f16, __half)
IMKD_BWD_FEAT(imkd_bev_pool_bwd_feat_f32, float)
IMKD_BWD_FEAT(imkd_bev_pool_bwd_feat_f16, __half)

#if !defined(__CUDACC_RTC__) && !defined(IMKD_CPU_EMULATION)
// ---- Host launchers (extern "C"; used by the torch extension and any C++ plugin) ----
// dtype: 0 = float32, 1 = float16. Return value: cudaError_t of the launch (0 = success).
// Outputs of the sparse forward and of both backward kernels must be zeroed by the caller.

namespace {
constexpr int kThreads = 256;
inline unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }
}  // namespace

extern "C" int imkd_bev_pool_forward(int dtype, int dense, const void* depth, const void* feat,
                                     const int32_t* ranks_depth, const int32_t* ranks_feat,
                                     const int32_t* ranks_bev, const int32_t* interval_starts,
                                     const int32_t* interval_lengths, int32_t n_intervals, int32_t channels,
                                     int32_t n_out, void* out, cudaStream_t stream) {
  if (dense) {
    if (n_out <= 0) return 0;
    const unsigned int grid = blocks_for(n_out);
    if (dtype == 0) {
      imkd_bev_pool_dense_fwd_f32<<<grid, kThreads, 0, stream>>>(
          static_cast<const float*>(depth), static_cast<const float*>(feat), ranks_depth, ranks_feat, ranks_bev,
          interval_starts, interval_lengths, n_intervals, channels, n_out, static_cast<float*>(out));
    } else {
      imkd_bev_pool_dense_fwd_f16<<<grid, kThreads, 0, stream>>>(
          static_cast<const __half*>(depth), static_cast<const __half*>(feat), ranks_depth, ranks_feat,
          ranks_bev, interval_starts, interval_lengths, n_intervals, channels, n_out, static_cast<__half*>(out));
    }
  } else {
    const int64_t n = static_cast<int64_t>(n_intervals) * channels;
    if (n <= 0) return 0;
    const unsigned int grid = blocks_for(n);
    if (dtype == 0) {
      imkd_bev_pool_fwd_f32<<<grid, kThreads, 0, stream>>>(
          static_cast<const float*>(depth), static_cast<const float*>(feat), ranks_depth, ranks_feat, ranks_bev,
          interval_starts, interval_lengths, n_intervals, channels, static_cast<float*>(out));
    } else {
      imkd_bev_pool_fwd_f16<<<grid, kThreads, 0, stream>>>(
          static_cast<const __half*>(depth), static_cast<const __half*>(feat), ranks_depth, ranks_feat,
          ranks_bev, interval_starts, interval_lengths, n_intervals, channels, static_cast<__half*>(out));
    }
  }
  return static_cast<int>(cudaGetLastError());
}

extern "C" int imkd_bev_pool_backward(int dtype, const void* out_grad, const void* depth, const void* feat,
                                      const int32_t* ranks_depth, const int32_t* ranks_feat,
                                      const int32_t* ranks_bev, int32_t n_points, const int32_t* order,
                                      const int32_t* feat_interval_starts, const int32_t* feat_interval_lengths,
                                      int32_t n_feat_intervals, int32_t channels, void* depth_grad,
                                      void* feat_grad, cudaStream_t stream) {
  if (n_points > 0 && depth_grad != nullptr) {
    const unsigned int grid = blocks_for(n_points);
    if (dtype == 0) {
      imkd_bev_pool_bwd_depth_f32<<<grid, kThreads, 0, stream>>>(
          static_cast<const float*>(out_grad), static_cast<const float*>(feat), ranks_depth, ranks_feat,
          ranks_bev, n_points, channels, static_cast<float*>(depth_grad));
    } else {
      imkd_bev_pool_bwd_depth_f16<<<grid, kThreads, 0, stream>>>(
          static_cast<const __half*>(out_grad), static_cast<const __half*>(feat), ranks_depth, ranks_feat,
          ranks_bev, n_points, channels, static_cast<__half*>(depth_grad));
    }
  }
  const int64_t n = static_cast<int64_t>(n_feat_intervals) * channels;
  if (n > 0 && feat_grad != nullptr) {
    const unsigned int grid = blocks_for(n);
    if (dtype == 0) {
      imkd_bev_pool_bwd_feat_f32<<<grid, kThreads, 0, stream>>>(
          static_cast<const float*>(out_grad), static_cast<const float*>(depth), ranks_depth, ranks_feat,
          ranks_bev, order, feat_interval_starts, feat_interval_lengths, n_feat_intervals, channels,
          static_cast<float*>(feat_grad));
    } else {
      imkd_bev_pool_bwd_feat_f16<<<grid, kThreads, 0, stream>>>(
          static_cast<const __half*>(out_grad), static_cast<const __half*>(depth), ranks_depth, ranks_feat,
          ranks_bev, order, feat_interval_starts, feat_interval_lengths, n_feat_intervals, channels,
          static_cast<__half*>(feat_grad));
    }
  }
  return static_cast<int>(cudaGetLastError());
}
#endif  // host launchers
