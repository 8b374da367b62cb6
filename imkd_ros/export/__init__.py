"""Deployment export: torch.export, ONNX with the ``imkd::BevPool`` node, TensorRT engines.

Workflow (details in each module):

    imkd export --format pt2    --checkpoint models/x.pt            # ExportedProgram, bev_pool = 1 node
    imkd export --format onnx   --checkpoint models/x.pt [--precision fp16]   # + onnxruntime check
    imkd export --format engine --checkpoint models/x.pt --precision fp16     # GPU + TensorRT
    imkd doctor --gpu                                                # kernel / engine / latency checks

* onnx_ops.py: the BevPool ONNX schema, the exporter's custom translations, the onnxruntime
  (onnxruntime-extensions) Python implementation used to check ONNX files on CPU.
* exporter.py: ExportSpec, torch.export with dynamic geometry dims, ONNX export + comparison.
* student.py: the student as a function of flat tensors (+ geometry), fp32 or fp16.
* trt_plugin.py: the TensorRT quickly-deployable plugin (AOT PTX kernel + JIT fallback).
* engine.py: engine build (fp16/int8, workspace, timing cache) and the on-disk engine cache.
"""
