"""Encoder backends: one class per way of running the model, made by `make_backend`.

  OnnxBackend   the bundled model's ONNX graph, "onnx-int8" or "onnx" (model/onnx_model.py)
  TorchBackend  sentence-transformers itself ("torch"; the only one for another model)
A backend loads its model on first use; nothing heavy is imported before then.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from retrieval.errors import ModelError
from retrieval.model.bundled import BUNDLED_SHA256, is_bundled, verified_bundled_path
from retrieval.progress import progress_bar as _progress

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retrieval.model.onnx_model import OnnxEncoder

ENCODERS = ("onnx-int8", "onnx", "torch")
PROGRESS_MIN = 256  # show a progress bar when embedding more texts than this

Spans = Sequence[Sequence[tuple[int, int]]]
Tokens = tuple[list[str], np.ndarray]  # a text's word pieces and their unit vectors in context
Passages = tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]
M = TypeVar("M")


class Backend(ABC, Generic[M]):
    """Runs one model: batched unit vectors, and sentence and token vectors in context."""

    batch: int  # texts per model call (see `encode`)
    graph = ""  # the ONNX graph's recipe (retrieval.onnx_model.recipe); torch has none

    def __init__(self, name: str) -> None:
        self.name = name
        self._model: M | None = None

    @property
    def model(self) -> M:
        """The loaded model (loaded, and for the bundled one hash-checked, on first use)."""
        if self._model is None:
            self._model = self._load()
        return self._model

    @abstractmethod
    def _load(self) -> M: ...

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors from one model call."""

    @abstractmethod
    def encode_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[Tokens]]:
        """Each text's vector and its real (not special) tokens."""

    @abstractmethod
    def encode_passages(self, texts: list[str], spans: Spans, progress: bool, label: str,
                        tokens: bool) -> Passages:
        """See `Embedder.encode_passages`."""

    @abstractmethod
    def tokenize(self, text: str) -> tuple[Sequence[Sequence[int]], Sequence[int]]:
        """Each of `text`'s tokens' (start, end) characters and whether it is special, with
        the model's truncation."""

    def token_offsets(self, text: str) -> np.ndarray:
        """(start, end) characters of each of `text`'s real tokens, as an (n, 2) array."""
        pairs, special = self.tokenize(text)
        return np.array([o for o, sp in zip(pairs, special, strict=True) if not sp],
                        dtype=np.int64).reshape(-1, 2)

    def encode(self, texts: list[str], progress: bool = False, label: str = "Embedding"
               ) -> np.ndarray:
        """Encode texts as an (n, dim) float32 array of unit vectors, in their order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:
            return self.encode_batch(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with _progress(label, len(texts), progress and len(texts) > PROGRESS_MIN) as advance:
            for idx in _length_batches(texts, self.batch):
                out[idx] = self.encode_batch([texts[i] for i in idx])
                advance(len(idx))
        return out


class OnnxBackend(Backend["OnnxEncoder"]):
    """The bundled model's ONNX graph, `variant` "onnx-int8" or "onnx", one text per call.

    One text at a time is ONNX Runtime's fastest setting on a small CPU (no padding), and it
    makes a text's vector independent of its batch-mates (int8 activations are quantised per
    call), so an incremental index equals a full build."""

    batch = 1

    def __init__(self, name: str, variant: str) -> None:
        if not is_bundled(name):
            raise ModelError(f"The {variant} encoder is built for the bundled model only; set "
                             "BYLINE_ENCODER=torch to use another model.")
        super().__init__(name)
        self.variant = variant
        self.graph = _onnx().recipe(variant)

    def _load(self) -> OnnxEncoder:
        import json

        path = verified_bundled_path()
        onnx = _onnx()
        graph = onnx.prepare(path, BUNDLED_SHA256, self.variant)
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return onnx.OnnxEncoder(graph, path / "tokenizer.json", int(config["max_seq_length"]))

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode_batch(texts)

    def encode_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[Tokens]]:
        model = self.model
        vecs = np.empty((len(texts), self.dimension), dtype=np.float32)
        per_text = []
        for i, text in enumerate(texts):  # one text per call, as `encode` runs them
            v, toks = model.encode_tokens([text])
            vecs[i] = v[0]
            per_text.append(toks[0])
        return vecs, per_text

    def encode_passages(self, texts: list[str], spans: Spans, progress: bool, label: str,
                        tokens: bool) -> Passages:
        """All three from each passage's own forward pass; a sentence cut off by truncation
        is encoded alone."""
        model = self.model
        dim = self.dimension
        out = np.empty((len(texts), dim), dtype=np.float32)
        per_text: list[list[np.ndarray | None]] = [[] for _ in texts]
        token_vecs: list[np.ndarray] = [np.empty((0, dim), np.float32)] * len(texts)
        with _progress(label, len(texts), progress and len(texts) > PROGRESS_MIN) as advance:
            for idx in _length_batches(texts, self.batch):
                vecs, sents, toks = model.encode_with_spans(
                    [texts[i] for i in idx], [spans[i] for i in idx], tokens=tokens)
                out[idx] = vecs
                it = iter(sents)
                for n, i in enumerate(idx):
                    per_text[i] = [next(it) for _ in spans[i]]
                    if toks is not None:
                        token_vecs[i] = toks[n]
                advance(len(idx))
        missing = [(i, j) for i, vs in enumerate(per_text) for j, v in enumerate(vs) if v is None]
        if missing:
            alone = self.encode([texts[i][slice(*spans[i][j])] for i, j in missing])
            for (i, j), v in zip(missing, alone, strict=True):
                per_text[i][j] = v
        flat = [v for vs in per_text for v in vs]
        return (out, np.asarray(flat, dtype=np.float32).reshape(-1, dim),
                token_vecs if tokens else None)

    def tokenize(self, text: str) -> tuple[Sequence[Sequence[int]], Sequence[int]]:
        enc = self.model.tokenizer.encode(text)
        return enc.offsets, enc.special_tokens_mask


class TorchBackend(Backend["SentenceTransformer"]):
    """sentence-transformers itself, on `device`, in length-sorted batches of 32."""

    batch = 32

    def __init__(self, name: str, device: str = "cpu") -> None:
        super().__init__(name)
        self.device = device

    def _load(self) -> SentenceTransformer:
        source = str(verified_bundled_path()) if is_bundled(self.name) else self.name
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelError(f"sentence-transformers cannot be imported: {exc}.") from None
        # The loader's own progress bars and notices are noise in a CLI or a bot log.
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        try:
            return SentenceTransformer(source, device=self.device)
        except Exception as exc:  # any loader failure becomes one sentence
            raise ModelError(
                f"Cannot load embedding model {self.name!r} ({type(exc).__name__}); set "
                "BYLINE_MODEL to a local sentence-transformers folder or an installed model."
            ) from exc

    @property
    def dimension(self) -> int:
        model = self.model
        getter = (getattr(model, "get_embedding_dimension", None)
                  or model.get_sentence_embedding_dimension)
        dim = getter()
        if not dim:
            raise ModelError(f"Model {self.name} does not report an embedding dimension.")
        return int(dim)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[Tokens]]:
        model = self.model
        outs = self._outputs(texts)
        ids = [o["input_ids"][o["attention_mask"].bool()].tolist() for o in outs]
        pieces = [model.tokenizer.convert_ids_to_tokens(i)[1:-1] for i in ids]
        unit_rows = _onnx().unit_rows
        vecs = unit_rows(np.stack([o["sentence_embedding"].float().numpy() for o in outs]))
        return vecs, list(zip(pieces, _token_states(outs), strict=True))

    def encode_passages(self, texts: list[str], spans: Spans, progress: bool, label: str,
                        tokens: bool) -> Passages:
        """The sentences of multi-sentence passages are encoded separately (in the passages'
        batches), the tokens in one more pass."""
        extra = [t[a:b] for t, sp in zip(texts, spans, strict=True) if len(sp) > 1
                 for a, b in sp]
        vecs = self.encode(texts + extra, progress=progress, label=label)
        passages, it = vecs[:len(texts)], iter(vecs[len(texts):])
        sentences = [p for sp, pv in zip(spans, passages, strict=True)
                     for p in ([pv] if len(sp) == 1 else [next(it) for _ in sp])]
        token_vecs = _token_states(self._outputs(texts)) if tokens else None
        return (passages, np.asarray(sentences, dtype=np.float32).reshape(-1, self.dimension),
                token_vecs)

    def tokenize(self, text: str) -> tuple[Sequence[Sequence[int]], Sequence[int]]:
        model = self.model
        enc = model.tokenizer(text, truncation=True, max_length=model.max_seq_length,
                              return_offsets_mapping=True, return_special_tokens_mask=True)
        return enc["offset_mapping"], enc["special_tokens_mask"]

    def _outputs(self, texts: list[str]) -> list[dict[str, Any]]:
        """sentence-transformers' full outputs (token embeddings, ids, mask) per text."""
        return self.model.encode(texts, output_value=None, batch_size=self.batch,
                                 show_progress_bar=False)


def make_backend(encoder: str, model: str, device: str = "cpu") -> Backend:
    """The backend that runs the model named `model` with `encoder` (one of ENCODERS)."""
    if encoder not in ENCODERS:
        raise ModelError(f"Unknown encoder {encoder!r}; use one of {', '.join(ENCODERS)}.")
    if encoder == "torch":
        return TorchBackend(model, device)
    return OnnxBackend(model, encoder)


def _length_batches(texts: list[str], size: int) -> list[np.ndarray]:
    """Indices of `texts`, longest first, in batches of `size` (so each batch pads little)."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    return [order[i:i + size] for i in range(0, len(texts), size)]


def _token_states(outs: list[dict[str, Any]]) -> list[np.ndarray]:
    """Each output's real (not special, not padding) tokens' unit vectors in context."""
    return [_onnx().unit_rows(o["token_embeddings"][o["attention_mask"].bool()].float()
                              .numpy()[1:-1]) for o in outs]


def _onnx() -> ModuleType:
    """retrieval.model.onnx_model, imported only when a model is used."""
    from retrieval.model import onnx_model

    return onnx_model
