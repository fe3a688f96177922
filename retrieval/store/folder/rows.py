"""RowFile: a 2-D .npy array read row by row with positional reads."""

from __future__ import annotations

import errno
import os
import weakref
from pathlib import Path

import numpy as np

_NO_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}


class _Rows2D:
    """What RowFile and Spliced share: a 2-D array's length, conversion and row indexing."""

    ndim = 2
    shape: tuple[int, int]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> np.ndarray:
        raise NotImplementedError

    def _rows(self, key: slice | np.ndarray | list[int]) -> np.ndarray:
        """The rows `key` names, negatives counted from the end (IndexError outside)."""
        rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range for {len(self)} rows")
        return rows


class RowFile(_Rows2D):
    """A 2-D array in a .npy file, read row by row with positional reads.

    For the passage and sentence vectors (3.8 GB at a million passages): a query reads only
    its candidates' rows, and nothing stays mapped, so the process's memory does not grow with
    the rows queries have touched. (With a memory map the kernel also maps the cached pages
    around each touched row, and after a few hundred queries most of the file counts as the
    process's resident memory, madvise(MADV_RANDOM) or not.) Indexing returns ndarrays: by
    row, slice or array of rows (runs of consecutive rows are one read)."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version not in _NPY_HEADERS:
                raise ValueError(f"{path.name}: unsupported .npy version {version}")
            shape, fortran, dtype = _NPY_HEADERS[version](fh)
            self._start = fh.tell()
        if fortran or len(shape) != 2 or dtype.hasobject:
            raise ValueError(f"{path.name} is not a 2-D C-order array")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._row = self.shape[1] * self.dtype.itemsize
        if path.stat().st_size != self._start + self.shape[0] * self._row:
            raise ValueError(f"{path.name} is truncated")
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        if hasattr(os, "posix_fadvise"):
            # Rows are read at random: the kernel's read-ahead (128 kB around each row) would
            # fill the page cache with rows no question asked for, pushing out the index's
            # other files once the vectors outgrow memory (36 GB at ten million passages).
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            row = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            return self._read(row, 1)[0]
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            return self._read(start, max(stop - start, 0))
        rows = self._rows(key)
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        if not len(rows):
            return out
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip([0, *breaks.tolist()], [*breaks.tolist(), len(rows)], strict=True):
            self._read_into(out[a:b], int(rows[a]))
        return out

    def copy_rows(self, row: int, count: int, fd: int, at: int) -> int:
        """Copy rows `row:row + count` into file `fd` at offset `at`, kernel-side where the
        platform can (os.copy_file_range), else by reads and writes; the offset after them."""
        start, left = self._start + row * self._row, count * self._row
        while left:
            try:
                done = os.copy_file_range(self._fd, fd, left, start, at)
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno not in _NO_COPY:
                    raise  # a full disk, say: the caller reports it
                done = os.pwrite(fd, os.pread(self._fd, min(left, 1 << 24), start), at)
            if not done:
                raise OSError(f"short read: the rows end {left} bytes early")
            start, at, left = start + done, at + done, left - done
        return at

    def _read(self, row: int, count: int) -> np.ndarray:
        out = np.empty((count, self.shape[1]), self.dtype)
        if count:
            self._read_into(out, row)
        return out

    def _read_into(self, out: np.ndarray, row: int) -> None:
        """Fill `out` (C-contiguous rows) with the rows from `row` on."""
        got = os.preadv(self._fd, [memoryview(out).cast("B")], self._start + row * self._row)
        if got != out.nbytes:
            raise OSError(f"short read: {got} of {out.nbytes} bytes")


class Spliced(_Rows2D):
    """Rows grouped by passage read as one array, stored in two files: group `g` owns rows
    `offsets[g]:offsets[g + 1]`, kept from row `starts[g]` of `base` followed by `own`.

    A re-index hard-links the previous generation's token file as `base` and writes only
    the rows it does not hold into `own` (see PendingTokens.save)."""

    def __init__(self, base: RowFile | np.ndarray, own: RowFile | np.ndarray,
                 starts: np.ndarray, offsets: np.ndarray) -> None:
        counts = np.diff(offsets)
        if (base.shape[1:] != own.shape[1:] or starts.shape != counts.shape
                or starts.dtype.kind not in "iu"):
            raise ValueError("tokens/starts.npy does not match its rows")
        ends, edge = starts + counts, len(base)
        inside = (starts >= 0) & ((ends <= edge) | ((starts >= edge) & (ends <= edge + len(own))))
        if not bool((inside | (counts == 0)).all()):
            raise ValueError("tokens/starts.npy points outside its rows")
        self.base, self.own, self.starts, self.offsets = base, own, starts, offsets
        self.shape: tuple[int, int] = (int(offsets[-1]), int(base.shape[1]))
        self.dtype = np.dtype(base.dtype)

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([int(key)])][0]
        rows = self._rows(key)
        group = np.searchsorted(self.offsets, rows, side="right") - 1
        at = self.starts[group] + (rows - self.offsets[group])
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        in_base = at < len(self.base)
        out[in_base] = self.base[at[in_base]]
        out[~in_base] = self.own[at[~in_base] - len(self.base)]
        return out


# A file up to this size is memory-mapped instead: all of it may as well stay resident, and a
# question's candidates then cost no system call each (0.8 ms of a 2,000-passage question).
MAP_MAX = 16 * 1024 * 1024


def load_rows(path: Path, map_max: int = 0) -> RowFile | np.ndarray:
    """Vectors read by row where the platform has positional reads and the file is larger
    than `map_max` bytes, else memory-mapped."""
    if hasattr(os, "preadv") and path.stat().st_size > map_max:
        return RowFile(path)
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.ndim != 2:
        raise ValueError(f"{path.name} is not a 2-D array")
    return array.view(np.ndarray)


def load_array(path: Path, ndim: int) -> np.ndarray:
    """A memory-mapped .npy array of `ndim` dimensions (ValueError if it is not), as a plain
    ndarray view of the map (np.memmap's per-index bookkeeping costs time on every read)."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.ndim != ndim:
        raise ValueError(f"{path.name} has {array.ndim} dimensions, not {ndim}")
    return array.view(np.ndarray)


def check_offsets(offsets: np.ndarray, groups: int, items: int, name: str) -> None:
    """`offsets` must split `items` rows into `groups` runs: 0 first, rising, `items` last."""
    if (offsets.shape != (groups + 1,) or int(offsets[0]) != 0
            or int(offsets[-1]) != items or bool((np.diff(offsets) < 0).any())):
        raise ValueError(f"{name} does not match its rows")
