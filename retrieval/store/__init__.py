"""The store: writes and reads index generations on disk.

Parts: `index` (the Index read side and its assembly from finished arrays), `generations`
(atomic publish, verification, clean-up), `manifest`, `lock` (one writer at a time),
`rows` (row-by-row .npy reads), `parts` (sentence and token arrays), `quantise`, `ann`
(FAISS structures), `tables` (SQLite metadata), `files` (fsync, checksums), `health`
(`byline check`). The indexer builds; the store only stores.
"""

from retrieval.store.ann import ANN_DEPTH, EXACT_MAX
from retrieval.store.folder.index import TOKENS_MAX, Index, corpus_fingerprint, probes_key
from retrieval.store.folder.lock import WriterLock
from retrieval.store.folder.parts import Sentences, Tokens
from retrieval.store.folder.rows import RowFile
from retrieval.store.manifest import FORMAT_VERSION, MANIFEST, Manifest, read_manifest
from retrieval.store.tables import ArticleInfo, Copy

__all__ = ["ANN_DEPTH", "EXACT_MAX", "FORMAT_VERSION", "MANIFEST", "TOKENS_MAX", "ArticleInfo",
           "Copy", "Index", "Manifest", "RowFile", "Sentences", "Tokens", "WriterLock",
           "corpus_fingerprint", "probes_key", "read_manifest"]
