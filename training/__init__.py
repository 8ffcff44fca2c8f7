"""The offline side: build the model family M0 → M3 by progressive distillation, export it, report on it.

Needs the `train` extra (torch, onnx, onnxscript, matplotlib). `training.job` runs the whole job;
`training.distill` holds the distillation loop on plain tensors, reusable outside the market setting.
"""
