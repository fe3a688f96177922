"""Per-passage arrays grouped by passage row: sentence vectors and spans, token vectors."""

from __future__ import annotations

import errno
import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retrieval.store.files import save_array
from retrieval.store.folder.rows import (
    MAP_MAX,
    RowFile,
    Spliced,
    check_offsets,
    load_array,
    load_rows,
)
from retrieval.store.quantise import quantise

# A re-index links the previous token file instead of copying it from this size up (below,
# a copy costs little): see PendingTokens.save.
SPLICE_MIN = 16 * 1024 * 1024
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOSYS, errno.EOPNOTSUPP,
            errno.EACCES}


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
        """`passage(row)` for each of `rows`, read in one go (runs of consecutive rows are
        one read: a re-index takes thousands)."""
        take, counts = runs(self.offsets, rows)
        if not len(counts):
            return []
        cut = np.cumsum(counts)[:-1]
        return list(zip(np.split(np.asarray(self.vectors[take]), cut),
                        np.split(np.asarray(self.spans[take]), cut), strict=True))

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sentence vectors (as stored) of all `rows`, one after another, and how many
        each row has: one batched read."""
        take, counts = runs(self.offsets, rows)
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
        """Vectors read by row (memory-mapped up to MAP_MAX bytes), spans and offsets
        memory-mapped: a query reads only its candidates' sentences. ValueError when the
        arrays do not fit together."""
        sentences = cls(load_rows(folder / "vectors.npy", MAP_MAX),
                        load_array(folder / "spans.npy", 2), load_array(folder / "offsets.npy", 1))
        n = len(sentences.vectors)
        if sentences.vectors.shape[1:] != (dim,) or sentences.spans.shape != (n, 2):
            raise ValueError("sentence arrays have the wrong shape")
        check_offsets(sentences.offsets, passages, n, "sentences/offsets.npy")
        return sentences


@dataclass(frozen=True)
class Tokens:
    """Every passage's token vectors in context, int8 with a scale per token, grouped by
    passage row (rows `offsets[r]:offsets[r + 1]`); empty when the index is too large."""

    copied_on_save = True  # a new generation copies unchanged rows file to file

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
        row has: one batched read."""
        codes, scales, counts = self.codes(rows)
        vecs = codes.astype(np.float32)
        vecs *= scales[:, None]
        return vecs, counts

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The int8 codes and scales of all `rows`' tokens, one after another, and how many
        each row has: one batched read (late interaction scores 20 candidates a question)."""
        take, counts = runs(self.offsets, rows)
        return np.asarray(self.vectors[take]), np.asarray(self.scales[take], np.float32), counts

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
        """Vectors read by row (spliced from base.npy and vectors.npy where a re-index left
        them so); the rest memory-mapped (ValueError when the arrays do not fit together)."""
        tokens = cls(load_rows(folder / "vectors.npy"), load_array(folder / "scales.npy", 1),
                     load_array(folder / "offsets.npy", 1), load_array(folder / "spans.npy", 2))
        if (folder / "base.npy").exists():
            check_offsets(tokens.offsets, passages, len(tokens.scales), "tokens/offsets.npy")
            tokens = replace(tokens, vectors=Spliced(
                load_rows(folder / "base.npy"), tokens.vectors,
                load_array(folder / "starts.npy", 1), tokens.offsets))
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


def runs(offsets: np.ndarray, rows: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The item indices of every row's run `offsets[r]:offsets[r + 1]`, one row after
    another, and each row's count."""
    rows = np.asarray(rows, np.int64)
    starts, ends = offsets[rows], offsets[rows + 1]
    counts = ends - starts
    take = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    return take, counts


class PendingTokens:
    """A new generation's token vectors before they are packed: each row's are either new
    (int8 codes, scales, character spans) or row `r` of the `previous` index's tokens.

    Saving writes the new rows and copies the previous file's runs of rows kernel-side
    (os.copy_file_range), or, when most of a large previous file is still in use, hard-links
    it as base.npy and writes only the other rows, so a re-index that changes a few
    paragraphs of a 125 MB token file neither copies it nor packs it in memory. Reading (an
    index built but not loaded from disk) packs everything once, on first use."""

    copied_on_save = True

    def __init__(self, items: list[tuple[np.ndarray, np.ndarray, np.ndarray] | int],
                 previous: Tokens | None, dim: int, splice_min: int = SPLICE_MIN) -> None:
        self.items, self.previous, self.dim = items, previous, dim
        self.splice_min = splice_min  # bytes: a smaller previous file is copied, not linked
        counts = np.array([len(it[1]) if isinstance(it, tuple)
                           else int(previous.offsets[it + 1] - previous.offsets[it])
                           for it in items], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._packed: Tokens | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def packed(self) -> Tokens:
        """These tokens as one in-memory Tokens."""
        if self._packed is None:
            self._packed = Tokens.pack([it if isinstance(it, tuple) else self.previous.raw(it)
                                        for it in self.items], self.dim)
        return self._packed

    vectors = property(lambda self: self.packed().vectors)
    scales = property(lambda self: self.packed().scales)
    spans = property(lambda self: self.packed().spans)

    def of(self, row: int) -> np.ndarray:
        return self.packed().of(row)

    def raw(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.packed().raw(row)

    def many(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.packed().many(rows)

    def raws(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return self.packed().raws(rows)

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.packed().codes(rows)

    def _runs(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[int, int]]:
        """The items with consecutive previous rows merged: (first, end) row ranges."""
        runs: list = []
        for it in self.items:
            if isinstance(it, tuple):
                runs.append(it)
            elif runs and isinstance(runs[-1], list) and runs[-1][1] == it:
                runs[-1][1] = it + 1
            else:
                runs.append([it, it + 1])
        return [tuple(r) if isinstance(r, list) else r for r in runs]

    def save(self, folder: Path) -> None:
        """Write the tokens into the new folder `folder`: spliced (the previous token file
        hard-linked as base.npy, only the other rows written) when that spares copying most
        of a large file, else all in vectors.npy."""
        if self._packed is not None:
            self._packed.save(folder)
            return
        folder.mkdir()
        places = self._places()
        base = self._base(places, folder)
        counts = np.diff(self.offsets)
        mine = [i for i, pl in enumerate(places) if base is None or pl[0] is not base]
        fd = os.open(folder / "vectors.npy", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.int8)),
                "fortran_order": False, "shape": (int(counts[mine].sum()), self.dim)})
            at = _write_all(fd, header.getvalue(), 0)
            run: list = []  # [file or array, first row, count]: consecutive rows, one copy
            for i in [*mine, None]:
                pl = places[i] if i is not None else (None,)
                if run and pl[0] is run[0] and run[1] + run[2] == pl[1]:
                    run[2] += pl[2]
                    continue
                if run:
                    at = _copy(run[0], run[1], run[2], fd, at)
                    run = []
                if pl[0] is None and i is not None:
                    at = _write_all(fd, np.ascontiguousarray(pl[1], np.int8).tobytes(), at)
                elif pl[0] is not None:
                    run = list(pl)
        finally:
            os.close(fd)
        if base is not None:
            starts = np.array([pl[1] if pl[0] is base else -1 for pl in places], np.int64)
            own = starts < 0
            starts[own] = len(base) + np.concatenate([[0], np.cumsum(counts[own])])[:-1]
            save_array(folder / "starts.npy", starts)
        prev = self.previous
        parts: dict[str, list[np.ndarray]] = {"scales": [], "spans": []}
        for r in self._runs():
            if len(r) == 3:
                parts["scales"].append(np.asarray(r[1], np.float32))
                parts["spans"].append(np.asarray(r[2]).reshape(-1, 2))
            else:
                a, b = int(prev.offsets[r[0]]), int(prev.offsets[r[1]])
                parts["scales"].append(np.asarray(prev.scales[a:b], np.float32))
                parts["spans"].append(np.asarray(prev.spans[a:b]).reshape(-1, 2))
        save_array(folder / "scales.npy", np.concatenate(parts["scales"]) if self.items
                   else np.empty(0, np.float32))
        save_array(folder / "spans.npy", (np.concatenate(parts["spans"]) if self.items
                                          else np.empty((0, 2))).astype(np.int32))
        save_array(folder / "offsets.npy", self.offsets)

    def _places(self) -> list[tuple]:
        """Where each item's rows are: (None, int8 codes) when new, else (the previous
        index's file or array holding them, first row there, count)."""
        prev = self.previous
        vectors = prev.vectors if prev is not None else None
        out: list[tuple] = []
        for it in self.items:
            if isinstance(it, tuple):
                out.append((None, it[0]))
                continue
            count = int(prev.offsets[it + 1] - prev.offsets[it])
            if isinstance(vectors, Spliced):
                start = int(vectors.starts[it])
                in_base = start < len(vectors.base)
                out.append((vectors.base, start, count) if in_base
                           else (vectors.own, start - len(vectors.base), count))
            else:
                out.append((vectors, int(prev.offsets[it]), count))
        return out

    def _base(self, places: list[tuple], folder: Path) -> RowFile | None:
        """The previous token file, hard-linked into `folder` as base.npy, when it is large
        (`splice_min` bytes), at least half of it is still used, and it holds at least three
        quarters of the new rows; else None (every row is written into vectors.npy)."""
        prev = self.previous.vectors if self.previous is not None else None
        base = prev.base if isinstance(prev, Spliced) else prev
        if not isinstance(base, RowFile) or len(base) * self.dim < self.splice_min:
            return None
        used = sum(pl[2] for pl in places if pl[0] is base)
        if 2 * used < len(base) or 4 * used < 3 * len(self):
            return None
        try:
            os.link(base.path, folder / "base.npy")
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            return None
        return base


def _copy(source: RowFile | np.ndarray, row: int, count: int, fd: int, at: int) -> int:
    """Rows `row:row + count` of `source` written into `fd` at `at`; the offset after them."""
    if isinstance(source, RowFile):
        return source.copy_rows(row, count, fd, at)
    return _write_all(fd, np.asarray(source[row:row + count], np.int8).tobytes(), at)


def _write_all(fd: int, data: bytes, at: int) -> int:
    """Write all of `data` at offset `at` of `fd`; the offset after it."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, at)
        view, at = view[done:], at + done
    return at
