// TensorRT plugin `imkd::BevPool` v1 (IPluginV3, TensorRT >= 10.0): the `imkd::bev_pool` op in an
// engine, running the same kernels as the torch extension and CuPy (bev_pool_kernel.cu, linked
// into the same shared library libimkd_trt_plugins.so).
//
// Inputs : 0 depth (B*N, D, H, W)  float|half     1 feat (B*N, H, W, C)  same type as depth
//          2 ranks_depth (P) int32  3 ranks_feat (P) int32  4 ranks_bev (P) int32
//          5 interval_starts (K) int32  6 interval_lengths (K) int32
// Output : 0 (batch, bev_h, bev_w, C), type of feat. fp16 I/O accumulates in fp32 in the kernel.
// Fields : batch, bev_h, bev_w (int32 or int64; the ONNX parser passes the node's attributes and
//          may add plugin_namespace / plugin_version, which are ignored).
//
// enqueue: cudaMemsetAsync(out, 0) then the sparse kernel (one thread per interval x channel, no
// atomics): empty BEV cells are exact zeros, occupied cells are written once. The geometry is
// validated on the host when it is computed (BevPoolGeometry.validate: lengths > 0, bounds,
// sorted unique cells); the kernel also skips empty intervals.
//
// Loading: TensorRT's IPluginRegistry::loadLibrary (Python: get_plugin_registry().load_library)
// calls the exported `getCreators` (and `setLoggerFinder`); trtexec loads it with
// --staticPlugins / --dynamicPlugins. Nothing here calls into libnvinfer, so the library links
// without -lnvinfer (the interfaces are header-only virtual classes).

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

extern "C" int imkd_bev_pool_forward(int dtype, int dense, const void* depth, const void* feat,
                                     const int32_t* ranks_depth, const int32_t* ranks_feat,
                                     const int32_t* ranks_bev, const int32_t* interval_starts,
                                     const int32_t* interval_lengths, int32_t n_intervals, int32_t channels,
                                     int32_t n_out, void* out, cudaStream_t stream);

namespace imkd {
namespace {

using namespace nvinfer1;

constexpr char const* kPluginName = "BevPool";
constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "imkd";
constexpr int32_t kNbInputs = 7;
constexpr int32_t kNbOutputs = 1;

ILogger* gLogger = nullptr;

void logError(char const* msg) noexcept {
  if (gLogger != nullptr) gLogger->log(ILogger::Severity::kERROR, msg);
}

bool isFloatType(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF; }

// Reads an integer plugin field that may come as int32 or int64 (the ONNX parser's choice).
bool readInt(PluginField const& f, int32_t& out) {
  if (f.data == nullptr || f.length < 1) return false;
  if (f.type == PluginFieldType::kINT32) {
    out = *static_cast<int32_t const*>(f.data);
    return true;
  }
  if (f.type == PluginFieldType::kINT64) {
    int64_t const v = *static_cast<int64_t const*>(f.data);
    if (v < 0 || v > INT32_MAX) return false;
    out = static_cast<int32_t>(v);
    return true;
  }
  return false;
}

class BevPoolPlugin final : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild,
                            public IPluginV3OneRuntime {
 public:
  BevPoolPlugin(int32_t batch, int32_t bevH, int32_t bevW) : mBatch(batch), mBevH(bevH), mBevW(bevW) {
    refreshFields();
  }
  BevPoolPlugin(BevPoolPlugin const& other)
      : IPluginV3(), IPluginV3OneCore(), IPluginV3OneBuild(), IPluginV3OneRuntime(),
        mBatch(other.mBatch), mBevH(other.mBevH), mBevW(other.mBevW) {
    refreshFields();
  }
  BevPoolPlugin& operator=(BevPoolPlugin const&) = delete;
  ~BevPoolPlugin() override = default;

  // ---- IPluginV3 ----
  IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
    switch (type) {
      case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
      case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
      case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
  }
  IPluginV3* clone() noexcept override {
    try {
      return new BevPoolPlugin(*this);
    } catch (...) {
      logError("imkd::BevPool: clone failed");
      return nullptr;
    }
  }

  // ---- IPluginV3OneCore ----
  AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
  AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
  AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

  // ---- IPluginV3OneBuild ----
  int32_t getNbOutputs() const noexcept override { return kNbOutputs; }

  int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || in == nullptr || out == nullptr) return -1;
    if (in[1].desc.dims.nbDims != 4) {
      logError("imkd::BevPool: feat must be 4-D (B*N, H, W, C)");
      return -1;
    }
    return 0;
  }

  int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override {
    if (nbOutputs != kNbOutputs || nbInputs != kNbInputs || outputTypes == nullptr || inputTypes == nullptr) return -1;
    outputTypes[0] = inputTypes[1];
    return 0;
  }

  int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                          int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                          IExprBuilder& exprBuilder) noexcept override {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs[1].nbDims != 4) return -1;
    outputs[0].nbDims = 4;
    outputs[0].d[0] = exprBuilder.constant(mBatch);
    outputs[0].d[1] = exprBuilder.constant(mBevH);
    outputs[0].d[2] = exprBuilder.constant(mBevW);
    outputs[0].d[3] = inputs[1].d[3];
    return 0;
  }

  bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    if (pos >= 2 && pos <= 6) return d.type == DataType::kINT32;
    if (pos == 0) return isFloatType(d.type);
    return d.type == inOut[0].desc.type;  // feat and the output share depth's float type
  }

  // ---- IPluginV3OneRuntime ----
  int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                        int32_t nbOutputs) noexcept override {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
    if (in[1].dims.nbDims != 4 || out[0].dims.nbDims != 4) return -1;
    return 0;
  }

  int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
                  void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept override {
    DataType const type = inputDesc[1].type;
    if (!isFloatType(type) || inputDesc[0].type != type) {
      logError("imkd::BevPool: depth/feat must both be float32 or both float16");
      return -1;
    }
    int64_t const channels = inputDesc[1].dims.d[3];
    int64_t const nIntervals = inputDesc[5].dims.d[0];
    int64_t const nOut = static_cast<int64_t>(mBatch) * mBevH * mBevW * channels;
    if (channels <= 0 || nOut >= INT32_MAX || nIntervals < 0 || nIntervals != inputDesc[6].dims.d[0]) {
      logError("imkd::BevPool: bad shapes (channels, output size or interval count)");
      return -1;
    }
    size_t const elem = type == DataType::kHALF ? 2 : 4;
    if (cudaMemsetAsync(outputs[0], 0, static_cast<size_t>(nOut) * elem, stream) != cudaSuccess) return -1;
    int const rc = imkd_bev_pool_forward(
        type == DataType::kHALF ? 1 : 0, /*dense=*/0, inputs[0], inputs[1], static_cast<int32_t const*>(inputs[2]),
        static_cast<int32_t const*>(inputs[3]), static_cast<int32_t const*>(inputs[4]),
        static_cast<int32_t const*>(inputs[5]), static_cast<int32_t const*>(inputs[6]),
        static_cast<int32_t>(nIntervals), static_cast<int32_t>(channels), static_cast<int32_t>(nOut), outputs[0],
        stream);
    (void)outputDesc;
    return rc == 0 ? 0 : -1;
  }

  IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

  PluginFieldCollection const* getFieldsToSerialize() noexcept override {
    refreshFields();
    return &mFieldCollection;
  }

 private:
  void refreshFields() {
    mFields.clear();
    mFields.emplace_back("batch", &mBatch, PluginFieldType::kINT32, 1);
    mFields.emplace_back("bev_h", &mBevH, PluginFieldType::kINT32, 1);
    mFields.emplace_back("bev_w", &mBevW, PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
  }

  int32_t mBatch;
  int32_t mBevH;
  int32_t mBevW;
  std::vector<PluginField> mFields;
  PluginFieldCollection mFieldCollection{};
};

class BevPoolCreator final : public IPluginCreatorV3One {
 public:
  BevPoolCreator() {
    mFields.emplace_back("batch", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("bev_h", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("bev_w", nullptr, PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
  }

  AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
  AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
  AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
  PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }

  IPluginV3* createPlugin(AsciiChar const* /*name*/, PluginFieldCollection const* fc,
                          TensorRTPhase /*phase*/) noexcept override {
    try {
      int32_t batch = -1, bevH = -1, bevW = -1;
      for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
        PluginField const& f = fc->fields[i];
        if (f.name == nullptr) continue;
        bool ok = true;
        if (std::strcmp(f.name, "batch") == 0) ok = readInt(f, batch);
        else if (std::strcmp(f.name, "bev_h") == 0) ok = readInt(f, bevH);
        else if (std::strcmp(f.name, "bev_w") == 0) ok = readInt(f, bevW);
        if (!ok) {
          logError("imkd::BevPool: batch/bev_h/bev_w must be int32 or int64 scalars");
          return nullptr;
        }
      }
      if (batch <= 0 || bevH <= 0 || bevW <= 0) {
        logError("imkd::BevPool: needs positive batch, bev_h and bev_w fields");
        return nullptr;
      }
      return new BevPoolPlugin(batch, bevH, bevW);
    } catch (...) {
      logError("imkd::BevPool: createPlugin failed");
      return nullptr;
    }
  }

 private:
  std::vector<PluginField> mFields;
  PluginFieldCollection mFieldCollection{};
};

}  // namespace
}  // namespace imkd

// ---- Exported entry points of the plugin library (TensorRT's plugin-library contract) ----

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  if (finder != nullptr) imkd::gLogger = finder->findLogger();
}

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  static imkd::BevPoolCreator creator;
  static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
  nbCreators = 1;
  return creators;
}
