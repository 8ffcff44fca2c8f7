"""The model repository: the manifest schema, writing a family atomically, reading and verifying one.

Artifacts live below `models/store/` (git-ignored). Imports neither torch nor onnxruntime.
"""
