"""manifest.json: which generation is in use, how it was built, and its files' checksums."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing, StoreError
from retrieval.store.files import write_atomic

# 2: sentence vectors for quotes; 3: memory-mapped folders, IVF, encoder;
# 4: one folder per generation, with every file's size and checksum in the manifest.
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
GENERATION_PREFIX = "gen-"
# Folders and files of format 3, named <kind>-<generation>: removed by the next save.
LEGACY_PREFIXES = ("vectors-", "meta-", "bm25-", "sentences-", "tokens-")
REBUILD = "run `byline index --full` to rebuild it"


@dataclass(frozen=True)
class Manifest:
    """What an index holds and how it was built."""

    format: int
    model: str
    dimension: int
    passages: int
    articles: int
    fingerprint: str
    corpus: str
    created: str
    generation: str
    encoder: str = "torch"  # how the model was run (see retrieval.model.embed.ENCODERS)
    ann: str = "flat"  # "flat" (exact) or "ivf<nlist>" (a folder's FAISS, or lists in SQL)
    nprobe: int = 0  # IVF lists searched per query (tuned when built)
    # Mean evidence of generic off-topic probes against this corpus (see retrieval.model.probes).
    background: dict[str, float] = field(default_factory=dict)
    probes: str = ""  # probes_key() of the probe vectors saved with the index ("" if none)
    parser: str = ""  # parser_fingerprint() of the code that cleaned the articles
    # Every file of the generation's folder: relative path -> [size in bytes, "xxh3_128:<hex>"].
    files: dict[str, list] = field(default_factory=dict)
    graph: str = ""  # the encoder graph's recipe ("onnx-int8-r2"; "" for torch or older)
    kernel: str = ""  # where the vectors were encoded (retrieval.kernel.encoder_kernel)

    @property
    def folder(self) -> str:
        """The generation's folder, beside manifest.json."""
        return f"{GENERATION_PREFIX}{self.generation}"

    def made_by(self, name: str, encoder: str, dimension: int, graph: str) -> bool:
        """Whether a model `name` run by `encoder` (its `graph` recipe) at `dimension` made
        these vectors: a re-index reuses vectors only then."""
        return ((self.model, self.encoder, self.dimension, self.graph)
                == (name, encoder, dimension, graph))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Publish `manifest` atomically: readers see the old one or this one."""
    write_atomic(root / MANIFEST, manifest.to_json())


def read_manifest(root: Path) -> Manifest:
    """Read and validate `manifest.json`; one clear error for every way it can be wrong."""
    path = root / MANIFEST
    try:
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not an index folder; point --index-dir "
                             "(or BYLINE_INDEX_DIR) at a folder.")
        if not path.exists():
            if root.is_dir() and any(p.name.startswith((GENERATION_PREFIX, *LEGACY_PREFIXES))
                                     for p in root.iterdir()):
                # Not "missing": an index is there without its manifest. Nothing may build
                # over it unasked (`ask` builds a missing index from the default folder).
                raise IndexCorrupt(f"The index at {root} has lost its {MANIFEST}; {REBUILD}.")
            raise IndexMissing(f"No index at {root}; run `byline index` to build one.")
        raw = path.read_bytes()
    except PermissionError:
        raise StoreError(f"Cannot read the index at {root}: permission denied.") from None
    try:
        try:
            data = json.loads(raw)  # garbage that is not UTF-8 is a ValueError here too
        except ValueError:
            raise ValueError("not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        fmt = data.get("format")
        if fmt != FORMAT_VERSION:
            raise IndexMismatch(
                f"The index at {root} has format {fmt!r}, this Byline reads format "
                f"{FORMAT_VERSION}; {REBUILD}."
            )
        try:
            manifest = Manifest(**data)
        except TypeError:
            raise ValueError("unknown or missing fields") from None
        _check(manifest)
    except ValueError as exc:
        raise IndexCorrupt(f"The index manifest {path} is damaged ({exc}); {REBUILD}.") from None
    return manifest


def _check(m: Manifest) -> None:
    """ValueError unless the manifest's fields have sane types and values."""
    if not (isinstance(m.generation, str) and m.generation.isalnum()):
        raise ValueError("bad generation name")
    if not all(isinstance(n, int) and n >= 0 for n in (m.passages, m.articles, m.dimension)):
        raise ValueError("bad passage, article or dimension count")
    if not isinstance(m.background, dict) or not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in m.background.values()):
        raise ValueError("its background is not a finite number")
    if not isinstance(m.files, dict) or not m.files or not all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], int)
            and isinstance(v[1], str) and ".." not in Path(k).parts
            for k, v in m.files.items()):
        raise ValueError("bad list of files")
