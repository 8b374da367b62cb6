// Torch binding of the bev_pool CUDA kernels (built by torch.utils.cpp_extension.load on a GPU box;
// see imkd_ros/runtime/cuda_kernels.py). Python registers `forward`/`backward` as the CUDA kernel of
// the `imkd::bev_pool` op, so autograd, fake tensors and export keep using the op's Python
// registrations and only the device compute changes.

#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <cstdint>

extern "C" int imkd_bev_pool_forward(int dtype, int dense, const void* depth, const void* feat,
                                     const int32_t* ranks_depth, const int32_t* ranks_feat,
                                     const int32_t* ranks_bev, const int32_t* interval_starts,
                                     const int32_t* interval_lengths, int32_t n_intervals, int32_t channels,
                                     int32_t n_out, void* out, cudaStream_t stream);

extern "C" int imkd_bev_pool_backward(int dtype, const void* out_grad, const void* depth, const void* feat,
                                      const int32_t* ranks_depth, const int32_t* ranks_feat,
                                      const int32_t* ranks_bev, int32_t n_points, const int32_t* order,
                                      const int32_t* feat_interval_starts, const int32_t* feat_interval_lengths,
                                      int32_t n_feat_intervals, int32_t channels, void* depth_grad,
                                      void* feat_grad, cudaStream_t stream);

namespace {

int dtype_code(const at::Tensor& t) {
  if (t.scalar_type() == at::kFloat) return 0;
  if (t.scalar_type() == at::kHalf) return 1;
  TORCH_CHECK(false, "imkd::bev_pool CUDA: depth/feat must be float32 or float16, got ", t.scalar_type());
  return -1;
}

void check_index(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "imkd::bev_pool CUDA: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == at::kInt, "imkd::bev_pool CUDA: ", name, " must be int32");
  TORCH_CHECK(t.dim() == 1 && t.is_contiguous(), "imkd::bev_pool CUDA: ", name, " must be 1-D contiguous");
}

at::Tensor forward(const at::Tensor& depth, const at::Tensor& feat, const at::Tensor& ranks_depth,
                   const at::Tensor& ranks_feat, const at::Tensor& ranks_bev, const at::Tensor& interval_starts,
                   const at::Tensor& interval_lengths, int64_t batch, int64_t bev_h, int64_t bev_w, bool dense) {
  TORCH_CHECK(depth.is_cuda() && feat.is_cuda(), "imkd::bev_pool CUDA: depth/feat must be CUDA tensors");
  TORCH_CHECK(depth.scalar_type() == feat.scalar_type(), "imkd::bev_pool CUDA: depth/feat dtypes differ");
  TORCH_CHECK(feat.dim() == 4, "imkd::bev_pool CUDA: feat must be (B*N, H, W, C)");
  check_index(ranks_depth, "ranks_depth");
  check_index(ranks_feat, "ranks_feat");
  check_index(ranks_bev, "ranks_bev");
  check_index(interval_starts, "interval_starts");
  check_index(interval_lengths, "interval_lengths");
  const c10::cuda::CUDAGuard guard(depth.device());
  const auto d = depth.contiguous();
  const auto f = feat.contiguous();
  const int64_t channels = f.size(3);
  const int64_t n_out = batch * bev_h * bev_w * channels;
  TORCH_CHECK(n_out < INT32_MAX, "imkd::bev_pool CUDA: output too large for int32 indexing");
  auto out = dense ? at::empty({batch, bev_h, bev_w, channels}, f.options())
                   : at::zeros({batch, bev_h, bev_w, channels}, f.options());
  const int rc = imkd_bev_pool_forward(
      dtype_code(f), dense ? 1 : 0, d.data_ptr(), f.data_ptr(), ranks_depth.data_ptr<int32_t>(),
      ranks_feat.data_ptr<int32_t>(), ranks_bev.data_ptr<int32_t>(), interval_starts.data_ptr<int32_t>(),
      interval_lengths.data_ptr<int32_t>(), static_cast<int32_t>(interval_starts.size(0)),
      static_cast<int32_t>(channels), static_cast<int32_t>(n_out), out.data_ptr(),
      c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(rc == 0, "imkd::bev_pool CUDA forward launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(rc)));
  return out;
}

// Returns (depth_grad, feat_grad). The feature gradient needs the points grouped by ranks_feat:
// `order` is a permutation of the points sorted by ranks_feat, with one interval per feature row.
std::vector<at::Tensor> backward(const at::Tensor& out_grad, const at::Tensor& depth, const at::Tensor& feat,
                                 const at::Tensor& ranks_depth, const at::Tensor& ranks_feat,
                                 const at::Tensor& ranks_bev, const at::Tensor& order,
                                 const at::Tensor& feat_interval_starts, const at::Tensor& feat_interval_lengths) {
  check_index(ranks_depth, "ranks_depth");
  check_index(ranks_feat, "ranks_feat");
  check_index(ranks_bev, "ranks_bev");
  check_index(order, "order");
  check_index(feat_interval_starts, "feat_interval_starts");
  check_index(feat_interval_lengths, "feat_interval_lengths");
  const c10::cuda::CUDAGuard guard(depth.device());
  const auto g = out_grad.contiguous().to(feat.scalar_type());
  const auto d = depth.contiguous();
  const auto f = feat.contiguous();
  auto depth_grad = at::zeros_like(d);
  auto feat_grad = at::zeros_like(f);
  const int rc = imkd_bev_pool_backward(
      dtype_code(f), g.data_ptr(), d.data_ptr(), f.data_ptr(), ranks_depth.data_ptr<int32_t>(),
      ranks_feat.data_ptr<int32_t>(), ranks_bev.data_ptr<int32_t>(), static_cast<int32_t>(ranks_depth.size(0)),
      order.data_ptr<int32_t>(), feat_interval_starts.data_ptr<int32_t>(), feat_interval_lengths.data_ptr<int32_t>(),
      static_cast<int32_t>(feat_interval_starts.size(0)), static_cast<int32_t>(f.size(3)), depth_grad.data_ptr(),
      feat_grad.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(rc == 0, "imkd::bev_pool CUDA backward launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(rc)));
  return {depth_grad, feat_grad};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "imkd bev_pool CUDA kernels (BEVPoolv2-style, no atomics)";
  m.def("forward", &forward, "bev_pool forward (CUDA)");
  m.def("backward", &backward, "bev_pool backward (CUDA)");
}
