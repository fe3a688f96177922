"""The embedding model: the Embedder, its encoder backends, the ONNX export, the bundled weights."""
