"""Deployment export: torch.export, ONNX with the ``imkd::BevPool`` node, TensorRT engines.

Workflow (details in each module):

    imkd export --format pt2    --checkpoint models/x.pt            # ExportedProgram, bev_pool = 1 node
    imkd export --format onnx   --checkpoint models/x.pt [--precision fp16]   # + onnxruntime check
    imkd export --format engine --checkpoint models/x.pt --precision fp16     # GPU + TensorRT
    python tools/gpu_validate.py                                     # kernels + torch backends on a GPU

* onnx_ops.py: the BevPool ONNX schema, the exporter's custom translations, the onnxruntime
  (onnxruntime-extensions) Python implementation used to check ONNX files on CPU.
* exporter.py: ExportSpec, torch.export with dynamic geometry dims, ONNX export + comparison.
* student.py: the student's ExportSpec, fp32 or fp16 (autocast; the flat I/O contract itself is
  imkd_ros/model/student_io.py).

Engine build and cache live in imkd_ros/runtime/engine.py (the runtime builds an engine from a
cached ONNX after a TensorRT/GPU change), the BevPool TensorRT plugin in imkd_ros/ops/csrc
(a C++ IPluginV3 built into libimkd_trt_plugins.so by tools/build_cuda.sh). export may import
runtime and model; never the other way round.
"""
