"""Per-passage arrays grouped by passage row: sentence vectors and spans, token vectors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.store.files import save_array
from retrieval.store.quantise import quantise
from retrieval.store.rows import RowFile, check_offsets, load_array, load_rows


@dataclass(frozen=True)
class Sentences:
    """Every passage's sentences: their vectors and character spans, grouped by passage row.

    Passage `r` owns sentences `offsets[r]:offsets[r + 1]`; `spans[i]` is (start, end) of
    sentence i in its passage's text. Stored so quotes cost a dot product, not an encode."""

    vectors: np.ndarray | RowFile  # (n_sentences, dim) float16
    spans: np.ndarray  # (n_sentences, 2) int32
    offsets: np.ndarray  # (n_passages + 1,) int64

    def of(self, row: int) -> slice:
        return slice(int(self.offsets[row]), int(self.offsets[row + 1]))

    def passage(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Passage `row`'s sentence vectors (float16, as stored) and (start, end) spans."""
        sl = self.of(row)
        return np.asarray(self.vectors[sl]), np.asarray(self.spans[sl])

    def passages(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """`passage(row)` for each of `rows` (a store reads them in one go)."""
        return [self.passage(int(r)) for r in rows]

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sentence vectors (as stored) of all `rows`, one after another, and how many
        each row has: one batched read."""
        rows = np.asarray(rows, np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        counts = ends - starts
        take = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return np.asarray(self.vectors[take]), counts

    @classmethod
    def pack(cls, spans: list[np.ndarray], vectors: np.ndarray) -> Sentences:
        """Every passage's (n, 2) spans and the sentence vectors, in passage order."""
        counts = np.array([len(sp) for sp in spans], dtype=np.int64)
        return cls(
            vectors=np.asarray(vectors, dtype=np.float16).reshape(-1, vectors.shape[1]),
            spans=(np.concatenate(spans).astype(np.int32) if spans
                   else np.empty((0, 2), np.int32)),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        )

    def save(self, folder: Path) -> None:
        folder.mkdir()
        for name in ("vectors", "spans", "offsets"):
            save_array(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path, passages: int, dim: int) -> Sentences:
        """Vectors read by row, spans and offsets memory-mapped: a query reads only its
        candidates' sentences. ValueError when the arrays do not fit together."""
        sentences = cls(load_rows(folder / "vectors.npy"), load_array(folder / "spans.npy", 2),
                        load_array(folder / "offsets.npy", 1))
        n = len(sentences.vectors)
        if sentences.vectors.shape[1:] != (dim,) or sentences.spans.shape != (n, 2):
            raise ValueError("sentence arrays have the wrong shape")
        check_offsets(sentences.offsets, passages, n, "sentences/offsets.npy")
        return sentences


@dataclass(frozen=True)
class Tokens:
    """Every passage's token vectors in context, int8 with a scale per token, grouped by
    passage row (rows `offsets[r]:offsets[r + 1]`); empty when the index is too large."""

    vectors: np.ndarray | RowFile  # (n_tokens, dim) int8
    scales: np.ndarray  # (n_tokens,) float32: vector = int8 row * scale
    offsets: np.ndarray  # (n_passages + 1,) int64
    spans: np.ndarray  # (n_tokens, 2) int32: each token's characters in its passage's text

    def __len__(self) -> int:
        return int(self.offsets[-1]) if len(self.offsets) else 0

    def of(self, row: int) -> np.ndarray:
        """Passage `row`'s token vectors as float32 (unit length, to int8 precision)."""
        codes, scales, _ = self.raw(row)
        return codes.astype(np.float32) * scales[:, None]

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The token vectors (float32) of all `rows`, one after another, and how many each
        row has: one batched read (late interaction scores 20 candidates a question)."""
        rows = np.asarray(rows, np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        counts = ends - starts
        take = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        vecs = np.asarray(self.vectors[take]).astype(np.float32)
        vecs *= self.scales[take][:, None]
        return vecs, counts

    def raw(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Passage `row`'s int8 token codes, their scales and character spans, as stored."""
        a, b = int(self.offsets[row]), int(self.offsets[row + 1])
        return (np.asarray(self.vectors[a:b]), np.asarray(self.scales[a:b], np.float32),
                np.asarray(self.spans[a:b]))

    def raws(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`raw(row)` for each of `rows` (a store reads them in one go)."""
        return [self.raw(int(r)) for r in rows]

    @classmethod
    def pack(cls, per_passage: list[np.ndarray | tuple[np.ndarray, ...]], dim: int) -> Tokens:
        """Pack each passage's (float token vectors, spans), quantised here, or (codes,
        scales, spans) as stored (so a re-index keeps unchanged passages' bytes); bare
        float vectors get (0, 0) spans."""
        parts = [_stored(t, dim) for t in per_passage]
        counts = np.array([len(s) for _, s, _ in parts], dtype=np.int64)
        return cls(vectors=(np.concatenate([c for c, _, _ in parts]) if parts
                            else np.empty((0, dim), np.int8)).reshape(-1, dim),
                   scales=(np.concatenate([s for _, s, _ in parts]) if parts
                           else np.empty(0, np.float32)).astype(np.float32),
                   offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   spans=(np.concatenate([sp.reshape(-1, 2) for _, _, sp in parts]) if parts
                          else np.empty((0, 2))).astype(np.int32))

    @classmethod
    def empty(cls, passages: int, dim: int) -> Tokens:
        return cls(np.empty((0, dim), np.int8), np.empty(0, np.float32),
                   np.zeros(passages + 1, np.int64), np.empty((0, 2), np.int32))

    def save(self, folder: Path) -> None:
        folder.mkdir()
        for name in ("vectors", "scales", "offsets", "spans"):
            save_array(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path, passages: int, dim: int) -> Tokens:
        """Vectors read by row; the rest memory-mapped (ValueError when the arrays do not
        fit together)."""
        tokens = cls(load_rows(folder / "vectors.npy"), load_array(folder / "scales.npy", 1),
                     load_array(folder / "offsets.npy", 1), load_array(folder / "spans.npy", 2))
        n = len(tokens.vectors)
        if (tokens.vectors.shape[1:] != (dim,) or tokens.scales.shape != (n,)
                or tokens.spans.shape != (n, 2)):
            raise ValueError("token arrays have the wrong shape")
        check_offsets(tokens.offsets, passages, n, "tokens/offsets.npy")
        return tokens


def _stored(item: np.ndarray | tuple[np.ndarray, ...], dim: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, scales, spans) of one passage's tokens, as Tokens.pack takes them."""
    if isinstance(item, np.ndarray):
        item = (item, np.zeros((len(item), 2), np.int32))
    if len(item) == 3:
        return item
    return (*quantise(item[0], dim), item[1])
