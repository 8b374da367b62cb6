// Drives imkd_ros/ops/csrc/bev_pool_trt_plugin.cpp on the CPU the way TensorRT would, without
// TensorRT: getCreators -> createPlugin (fields as the ONNX parser passes them, int64 + strings) ->
// build capability (types, formats) -> runtime capability (enqueue on host buffers) -> serialize
// fields -> recreate in the runtime phase -> enqueue again. The CUDA side is replaced by the CPU
// emulation of the real kernels (kernel_emulation.cpp, linked beside this file) and a host
// memset, so enqueue runs the plugin's own memset + sparse-kernel path.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

extern "C" void emu_forward(int dtype, int dense, const void* depth, const void* feat, const int32_t* rd,
                            const int32_t* rf, const int32_t* rb, const int32_t* st, const int32_t* ln,
                            int32_t n_intervals, int32_t channels, int32_t n_out, void* out);
extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

static int g_memsets = 0;
static int g_launches = 0;

extern "C" int imkd_bev_pool_forward(int dtype, int dense, const void* depth, const void* feat,
                                     const int32_t* ranks_depth, const int32_t* ranks_feat,
                                     const int32_t* ranks_bev, const int32_t* interval_starts,
                                     const int32_t* interval_lengths, int32_t n_intervals, int32_t channels,
                                     int32_t n_out, void* out, cudaStream_t) {
  ++g_launches;
  if (dense != 0) return 99;  // the plugin must use the sparse kernel (after its memset)
  emu_forward(dtype, dense, depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths,
              n_intervals, channels, n_out, out);
  return 0;
}

extern "C" cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) {
  ++g_memsets;
  std::memset(ptr, value, count);
  return cudaSuccess;
}

using namespace nvinfer1;

namespace {
Dims dims(std::initializer_list<int64_t> v) {
  Dims d{};
  d.nbDims = static_cast<int32_t>(v.size());
  int i = 0;
  for (int64_t x : v) d.d[i++] = x;
  return d;
}

// IDimensionExpr / IExprBuilder are thin wrappers over apiv implementation classes; these fakes
// hold constants only (all the plugin's output shape needs).
struct FakeDimImpl : apiv::VDimensionExpr {
  int64_t value = 0;
  bool isConstant() const override { return true; }
  int64_t getConstantValue() const override { return value; }
  bool isSizeTensor() const override { return false; }
};
struct FakeDim : IDimensionExpr {
  FakeDimImpl impl;
  explicit FakeDim(int64_t v) {
    impl.value = v;
    mImpl = &impl;
  }
};
struct FakeBuilderImpl : apiv::VExprBuilder {
  std::vector<std::unique_ptr<FakeDim>> made;
  IDimensionExpr const* constant(int64_t v) override {
    made.emplace_back(new FakeDim(v));
    return made.back().get();
  }
  IDimensionExpr const* operation(DimensionOperation, IDimensionExpr const&, IDimensionExpr const&) override {
    return nullptr;
  }
  IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override {
    return nullptr;
  }
};
struct FakeBuilder : IExprBuilder {
  explicit FakeBuilder(apiv::VExprBuilder* impl) { mImpl = impl; }
};

int fail(char* msg, int code, char const* what) {
  std::snprintf(msg, 256, "%s", what);
  return code;
}
}  // namespace

// Returns 0 and fills `out` on success, else a negative code with `msg` saying which check failed.
extern "C" int harness_run(int dtype, const void* depth, const void* feat, const int32_t* rd, const int32_t* rf,
                           const int32_t* rb, const int32_t* st, const int32_t* ln, int32_t p, int32_t k,
                           int32_t bn, int32_t d, int32_t h, int32_t w, int32_t c, int32_t batch, int32_t bev_h,
                           int32_t bev_w, void* out, char* msg) {
  int32_t n = 0;
  IPluginCreatorInterface* const* creators = getCreators(n);
  if (n != 1 || creators == nullptr) return fail(msg, -1, "getCreators must return one creator");
  auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
  if (std::strcmp(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
    return fail(msg, -2, "creator is not an IPluginCreatorV3One");
  if (std::strcmp(creator->getPluginName(), "BevPool") || std::strcmp(creator->getPluginVersion(), "1") ||
      std::strcmp(creator->getPluginNamespace(), "imkd"))
    return fail(msg, -3, "creator name/version/namespace must be BevPool/1/imkd");

  // fields the way the ONNX parser passes node attributes: ints as int64, strings as chars
  int64_t b64 = batch, h64 = bev_h, w64 = bev_w;
  char const ns[] = "imkd";
  std::vector<PluginField> f{{"batch", &b64, PluginFieldType::kINT64, 1},
                             {"bev_h", &h64, PluginFieldType::kINT64, 1},
                             {"bev_w", &w64, PluginFieldType::kINT64, 1},
                             {"plugin_namespace", ns, PluginFieldType::kCHAR, 4}};
  PluginFieldCollection fc{static_cast<int32_t>(f.size()), f.data()};
  IPluginV3* plugin = creator->createPlugin("bev_pool", &fc, TensorRTPhase::kBUILD);
  if (plugin == nullptr) return fail(msg, -4, "createPlugin(build) returned null");
  PluginFieldCollection bad{1, f.data()};
  if (creator->createPlugin("bad", &bad, TensorRTPhase::kBUILD) != nullptr)
    return fail(msg, -5, "createPlugin must refuse missing bev_h/bev_w");

  auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
  auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
  auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  if (!core || !build || !runtime) return fail(msg, -6, "missing capability interface");
  if (std::strcmp(core->getPluginName(), "BevPool") || std::strcmp(core->getPluginNamespace(), "imkd"))
    return fail(msg, -7, "core name/namespace");
  if (build->getNbOutputs() != 1) return fail(msg, -8, "one output");

  DataType const ft = dtype == 1 ? DataType::kHALF : DataType::kFLOAT;
  DataType in_types[7] = {ft, ft, DataType::kINT32, DataType::kINT32, DataType::kINT32, DataType::kINT32,
                          DataType::kINT32};
  DataType out_type = DataType::kINT8;
  if (build->getOutputDataTypes(&out_type, 1, in_types, 7) != 0 || out_type != ft)
    return fail(msg, -9, "output type must follow feat");

  PluginTensorDesc desc[8]{};
  Dims const shapes[8] = {dims({bn, d, h, w}), dims({bn, h, w, c}), dims({p}), dims({p}), dims({p}),
                          dims({k}), dims({k}), dims({batch, bev_h, bev_w, c})};
  for (int i = 0; i < 8; ++i) {
    desc[i].dims = shapes[i];
    desc[i].type = (i >= 2 && i <= 6) ? DataType::kINT32 : ft;
    desc[i].format = TensorFormat::kLINEAR;
    desc[i].scale = 1.f;
  }
  DynamicPluginTensorDesc dyn[8]{};
  for (int i = 0; i < 8; ++i) dyn[i].desc = desc[i];
  for (int pos = 0; pos < 8; ++pos)
    if (!build->supportsFormatCombination(pos, dyn, 7, 1)) return fail(msg, -10, "rejects its own formats");
  DynamicPluginTensorDesc probe[8];
  std::memcpy(probe, dyn, sizeof(dyn));
  probe[2].desc.type = DataType::kINT64;
  if (build->supportsFormatCombination(2, probe, 7, 1)) return fail(msg, -11, "must refuse int64 ranks");
  probe[1].desc.type = ft == DataType::kHALF ? DataType::kFLOAT : DataType::kHALF;
  if (build->supportsFormatCombination(1, probe, 7, 1)) return fail(msg, -12, "must refuse mixed depth/feat");
  probe[0].desc.type = DataType::kINT8;
  if (build->supportsFormatCombination(0, probe, 7, 1)) return fail(msg, -13, "must refuse int8 data");
  if (build->configurePlugin(dyn, 7, dyn + 7, 1) != 0) return fail(msg, -14, "configurePlugin");

  FakeBuilderImpl builder_impl;
  FakeBuilder builder(&builder_impl);
  FakeDim cdim(c), other(7);
  DimsExprs in_exprs[7]{};
  for (int i = 0; i < 7; ++i) {
    in_exprs[i].nbDims = shapes[i].nbDims;
    for (int j = 0; j < shapes[i].nbDims; ++j) in_exprs[i].d[j] = &other;
  }
  in_exprs[1].d[3] = &cdim;
  DimsExprs out_exprs[1]{};
  if (build->getOutputShapes(in_exprs, 7, nullptr, 0, out_exprs, 1, builder) != 0 || out_exprs[0].nbDims != 4)
    return fail(msg, -24, "getOutputShapes");
  if (!out_exprs[0].d[0]->isConstant() || out_exprs[0].d[0]->getConstantValue() != batch ||
      out_exprs[0].d[1]->getConstantValue() != bev_h || out_exprs[0].d[2]->getConstantValue() != bev_w ||
      out_exprs[0].d[3] != &cdim)
    return fail(msg, -25, "output shape must be (batch, bev_h, bev_w, feat channels)");

  void const* ins[7] = {depth, feat, rd, rf, rb, st, ln};
  void* outs[1] = {out};
  if (runtime->onShapeChange(desc, 7, desc + 7, 1) != 0) return fail(msg, -15, "onShapeChange");
  g_memsets = g_launches = 0;
  if (runtime->enqueue(desc, desc + 7, ins, outs, nullptr, nullptr) != 0) return fail(msg, -16, "enqueue");
  if (g_memsets != 1 || g_launches != (k > 0 ? 1 : g_launches)) return fail(msg, -17, "memset + one launch");

  // serialise -> deserialise (runtime phase) -> same result
  PluginFieldCollection const* ser = runtime->getFieldsToSerialize();
  if (ser == nullptr || ser->nbFields != 3) return fail(msg, -18, "three serialized fields");
  IPluginV3* again = creator->createPlugin("bev_pool", ser, TensorRTPhase::kRUNTIME);
  if (again == nullptr) return fail(msg, -19, "createPlugin(runtime) from serialized fields");
  IPluginV3* attached = static_cast<IPluginV3OneRuntime*>(again->getCapabilityInterface(
      PluginCapabilityType::kRUNTIME))->attachToContext(nullptr);
  if (attached == nullptr) return fail(msg, -20, "attachToContext");
  size_t const elem = dtype == 1 ? 2 : 4;
  size_t const bytes = static_cast<size_t>(batch) * bev_h * bev_w * c * elem;
  std::vector<unsigned char> second(bytes, 0xFF);  // garbage (NaN) in every cell before enqueue
  void* outs2[1] = {second.data()};
  auto* rt2 = static_cast<IPluginV3OneRuntime*>(attached->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  if (rt2->enqueue(desc, desc + 7, ins, outs2, nullptr, nullptr) != 0) return fail(msg, -21, "enqueue (runtime)");
  if (std::memcmp(second.data(), out, bytes) != 0) return fail(msg, -22, "deserialized plugin differs");
  IPluginV3* cloned = plugin->clone();
  if (cloned == nullptr) return fail(msg, -23, "clone");
  delete cloned;
  delete attached;
  delete again;
  delete plugin;
  return 0;
}
