"""Byline's retrieval core: corpus -> passages -> embeddings -> index -> cited answers."""

from retrieval.errors import (
    BadQuestion,
    BylineError,
    CorpusError,
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    ModelError,
)

__all__ = [
    "BadQuestion",
    "BylineError",
    "CorpusError",
    "IndexCorrupt",
    "IndexMismatch",
    "IndexMissing",
    "ModelError",
]
__version__ = "0.1.0"
