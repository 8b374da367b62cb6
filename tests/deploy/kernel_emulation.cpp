// Runs imkd_ros/ops/csrc/bev_pool_kernel.cu on the CPU: the CUDA built-ins the kernels use are
// defined here, every (block, thread) is executed in turn. The kernels share no memory between
// threads and have no barriers, so sequential execution gives exactly the GPU result (up to the
// order of fp32 additions, which is the same per thread). Launch geometry mirrors the .cu's
// host launchers (256 threads per block).
#include <cstdint>

struct imkd_dim3 {
  unsigned int x = 0, y = 0, z = 0;
};
static imkd_dim3 blockIdx, threadIdx, blockDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
struct __half {
  _Float16 v;
};
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half __float2half_rn(float f) { return __half{static_cast<_Float16>(f)}; }

#define IMKD_CPU_EMULATION 1
#include "bev_pool_kernel.cu"

namespace {
template <typename F>
void launch(int64_t n, F&& body) {
  const unsigned int threads = 256;
  blockDim.x = threads;
  const int64_t grid = (n + threads - 1) / threads;
  for (int64_t b = 0; b < grid; ++b) {
    blockIdx.x = static_cast<unsigned int>(b);
    for (unsigned int t = 0; t < threads; ++t) {
      threadIdx.x = t;
      body();
    }
  }
}
}  // namespace

extern "C" void emu_forward(int dtype, int dense, const void* depth, const void* feat, const int32_t* rd,
                            const int32_t* rf, const int32_t* rb, const int32_t* st, const int32_t* ln,
                            int32_t n_intervals, int32_t channels, int32_t n_out, void* out) {
  if (dense) {
    launch(n_out, [&] {
      if (dtype == 0)
        imkd_bev_pool_dense_fwd_f32(static_cast<const float*>(depth), static_cast<const float*>(feat), rd, rf,
                                    rb, st, ln, n_intervals, channels, n_out, static_cast<float*>(out));
      else
        imkd_bev_pool_dense_fwd_f16(static_cast<const __half*>(depth), static_cast<const __half*>(feat), rd,
                                    rf, rb, st, ln, n_intervals, channels, n_out, static_cast<__half*>(out));
    });
  } else {
    launch(static_cast<int64_t>(n_intervals) * channels, [&] {
      if (dtype == 0)
        imkd_bev_pool_fwd_f32(static_cast<const float*>(depth), static_cast<const float*>(feat), rd, rf, rb, st,
                              ln, n_intervals, channels, static_cast<float*>(out));
      else
        imkd_bev_pool_fwd_f16(static_cast<const __half*>(depth), static_cast<const __half*>(feat), rd, rf, rb,
                              st, ln, n_intervals, channels, static_cast<__half*>(out));
    });
  }
}

extern "C" void emu_backward(int dtype, const void* g, const void* depth, const void* feat, const int32_t* rd,
                             const int32_t* rf, const int32_t* rb, int32_t n_points, const int32_t* order,
                             const int32_t* fst, const int32_t* fln, int32_t n_feat_intervals, int32_t channels,
                             void* depth_grad, void* feat_grad) {
  launch(n_points, [&] {
    if (dtype == 0)
      imkd_bev_pool_bwd_depth_f32(static_cast<const float*>(g), static_cast<const float*>(feat), rd, rf, rb,
                                  n_points, channels, static_cast<float*>(depth_grad));
    else
      imkd_bev_pool_bwd_depth_f16(static_cast<const __half*>(g), static_cast<const __half*>(feat), rd, rf, rb,
                                  n_points, channels, static_cast<__half*>(depth_grad));
  });
  launch(static_cast<int64_t>(n_feat_intervals) * channels, [&] {
    if (dtype == 0)
      imkd_bev_pool_bwd_feat_f32(static_cast<const float*>(g), static_cast<const float*>(depth), rd, rf, rb,
                                 order, fst, fln, n_feat_intervals, channels, static_cast<float*>(feat_grad));
    else
      imkd_bev_pool_bwd_feat_f16(static_cast<const __half*>(g), static_cast<const __half*>(depth), rd, rf, rb,
                                 order, fst, fln, n_feat_intervals, channels, static_cast<__half*>(feat_grad));
  });
}
