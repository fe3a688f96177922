"""The Embedder: the bundled all-MiniLM-L6-v2 by default, on ONNX Runtime (int8) or torch.

Encoders ("BYLINE_ENCODER"), each a backend in retrieval.model.encoders:
  onnx-int8  the bundled model exported to ONNX, fused and int8-quantised locally (default)
  onnx       the same graph, fused, float32
  torch      sentence-transformers itself (the only choice for another BYLINE_MODEL)
Both ONNX graphs are built from the hash-checked bundled weights on first use and cached
(see retrieval.model.onnx_model); docs/performance.md has their speed and answer quality.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from retrieval.model.bundled import (
    BUNDLED_SHA256,
    DEFAULT_MODEL,
    bundled_model_path,
    is_bundled,
    verify_weights,
)
from retrieval.model.encoders import ENCODERS, PROGRESS_MIN, make_backend
from retrieval.text import stopwords

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retrieval.model.onnx_model import OnnxEncoder

__all__ = ["BUNDLED_SHA256", "DEFAULT_ENCODER", "DEFAULT_MODEL", "ENCODERS", "PROGRESS_MIN",
           "Embedder", "bundled_model_path", "verify_weights"]

DEFAULT_ENCODER = "onnx-int8"


class Embedder:
    """Turns texts into L2-normalised float32 vectors (cosine = dot product)."""

    def __init__(self, model: str | None = None, device: str = "cpu",
                 encoder: str | None = None) -> None:
        self.name = model or DEFAULT_MODEL
        self.device = device
        if encoder is None:
            encoder = DEFAULT_ENCODER if self.is_bundled else "torch"
        self._backend = make_backend(encoder, self.name, device)
        self.encoder = encoder

    @property
    def is_bundled(self) -> bool:
        return is_bundled(self.name)

    @property
    def graph(self) -> str:
        """The ONNX graph's recipe ("onnx-int8-r2"), "" for torch: indexes record it."""
        return self._backend.graph

    @property
    def kernel(self) -> str:
        """The CPU kernel the encoder runs on here ("x86-64 AVX2 int8, onnxruntime 1.32.0")."""
        from retrieval.model.kernel import encoder_kernel

        return encoder_kernel(self.encoder)

    @property
    def model(self) -> SentenceTransformer | OnnxEncoder:
        """The loaded model (loaded, and for the bundled one hash-checked, on first use)."""
        return self._backend.model

    @property
    def dimension(self) -> int:
        return self._backend.dimension

    def encode(self, texts: list[str], progress: bool = False, label: str = "Embedding"
               ) -> np.ndarray:
        """Encode texts as an (n, dim) float32 array of unit vectors, in their order (in
        length-sorted batches: one text per call on ONNX, 32 on torch)."""
        return self._backend.encode(texts, progress=progress, label=label)

    def encode_questions(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """`encode(texts)`, and each question's content tokens: unit vectors in context of
        its word pieces that start a word and are not stopwords (all its tokens if none
        is), for late-interaction re-ranking. One forward pass per question on ONNX."""
        if not texts:
            return self.encode(texts), []
        stop = stopwords()
        vecs, per_text = self._backend.encode_tokens(texts)
        out = []
        for pieces, states in per_text:
            keep = np.array([p.isalnum() and p not in stop for p in pieces], dtype=bool)
            out.append(states[keep] if keep.any() else states)
        return vecs.astype(np.float32), out

    def encode_passages(self, texts: list[str], spans: list[list[tuple[int, int]]],
                        progress: bool = False, label: str = "Embedding", tokens: bool = False
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """Passage vectors, one vector per sentence span (all passages' sentences, in order)
        and, with `tokens`, each passage's token vectors in context (else None). ONNX
        encoders take all three from the passage's own forward pass (a sentence cut off by
        truncation is encoded alone); torch encodes the sentences of multi-sentence passages
        separately, and the tokens in one more pass."""
        return self._backend.encode_passages(texts, spans, progress=progress, label=label,
                                             tokens=tokens)

    def token_offsets(self, text: str) -> np.ndarray:
        """(start, end) characters of each of `text`'s real tokens, in the order (and with
        the truncation) of the token vectors `encode_passages` makes of it."""
        return self._backend.token_offsets(text)
