"""The bundled model as an ONNX Runtime graph: built locally, cached, hash-checked.

`prepare(source, variant)` exports the sentence-transformers folder `source` to ONNX with
torch (once), fuses attention / LayerNorm / GELU with ONNX Runtime's transformer optimizer
and, for the "onnx-int8" variant, quantises the weights to 7-bit signed integers per channel
(see `_quantise`: the same integer sums on every CPU). The result is
cached under the cache folder with a `meta.json` naming the source weights' sha256 and the
graph's own sha256; a cached graph is used only when both still match. Nothing is
downloaded. `OnnxEncoder` runs the graph with the model's own fast tokenizer, mean pooling
and L2 normalisation, as sentence-transformers does, without importing torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort

VARIANTS = ("onnx-int8", "onnx")
_RECIPE = 2  # bump when the export / optimisation / quantisation steps change
# The int8 weights' bound: with activations in 0..255, a pair of products sums to at most
# 2 * 255 * 64 = 32,640, inside the int16 that AVX2's and AVX-512's vpmaddubsw saturates at.
WEIGHT_LIMIT = 64


def default_cache_dir() -> Path:
    """BYLINE_CACHE_DIR, else $XDG_CACHE_HOME/byline, else ~/.cache/byline."""
    env = os.environ.get("BYLINE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "byline"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of `path`, hashed again only when its inode, size, mtime or ctime changed since
    the last time (start-up then need not read 110 MB of weights). ctime cannot be set back by
    a user, so any rewrite of the file is noticed. Remembered in <cache>/hashes.json."""
    st = path.stat()
    stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    key = str(path.resolve())
    memo_path = (cache_dir or default_cache_dir()) / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    entry = memo.get(key)
    if isinstance(entry, dict) and entry.get("stat") == stamp:
        return str(entry.get("sha256"))
    digest = file_sha256(path)
    memo[key] = {"stat": stamp, "sha256": digest}
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f".hashes.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, memo_path)
    except OSError:  # a read-only cache only costs the hash again next time
        pass
    return digest


def prepare(source: Path, source_sha256: str, variant: str,
            cache_dir: Path | None = None) -> Path:
    """Path of the cached ONNX graph for `source` (built now if absent or stale)."""
    if variant not in VARIANTS:
        raise ModelError(f"Unknown encoder {variant!r}; use one of {', '.join(VARIANTS)}.")
    folder = (cache_dir or default_cache_dir()) / f"{source_sha256[:16]}-{recipe(variant)}"
    graph, meta_path = folder / "model.onnx", folder / "meta.json"
    if meta_path.is_file() and graph.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            meta = {}
        if (meta.get("source_sha256") == source_sha256
                and meta.get("onnx_sha256") == cached_sha256(graph, cache_dir)):
            return graph
    _build(source, source_sha256, variant, folder)
    return graph


def _build(source: Path, source_sha256: str, variant: str, folder: Path) -> None:
    """Export, optimise and (int8) quantise into a temp folder, then rename into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        started = time.perf_counter()
        raw, fused = tmp / "raw.onnx", tmp / "fused.onnx"
        hidden, heads = _export(source, raw)
        _optimise(raw, fused, hidden, heads)
        graph = tmp / "model.onnx"
        if variant == "onnx-int8":
            _quantise(fused, graph)
        else:
            fused.replace(graph)
        for extra in (raw, fused):
            extra.unlink(missing_ok=True)
        meta = {"source_sha256": source_sha256, "onnx_sha256": file_sha256(graph),
                "variant": variant, "recipe": _RECIPE,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.perf_counter() - started, 2)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except ModelError:
        raise
    except Exception as exc:  # any exporter failure becomes one sentence
        raise ModelError(
            f"Cannot build the {variant} encoder ({type(exc).__name__}: {exc}); set "
            "BYLINE_ENCODER=torch to use sentence-transformers directly."
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export(source: Path, out: Path) -> tuple[int, int]:
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # Eager attention exports the pattern ONNX Runtime's optimiser fuses into one kernel.
    bert = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    dummy = torch.ones(2, 8, dtype=torch.long)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(bert).eval(), (dummy, dummy, torch.zeros_like(dummy)),
                          str(out), input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"}
                                        for n in [*names, "last_hidden_state"]},
                          opset_version=17, dynamo=False)
    return int(bert.config.hidden_size), int(bert.config.num_attention_heads)


def _optimise(raw: Path, out: Path, hidden: int, heads: int) -> None:
    import logging

    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=heads,
                                     hidden_size=hidden, opt_level=1)
    model.save_model_to_file(str(out))


def _quantise(fused: Path, out: Path) -> None:
    """Dynamic int8 quantisation: uint8 activations (per call), int8 weights per channel in
    [-64, 64] (`reduce_range`). Full-range weights make x86's u8·s8 kernels disagree: AVX2 and
    AVX-512 without VNNI add pairs of products in saturating 16-bit lanes, VNNI and AMX do
    not, so the same text got other vectors (and answers) on another CPU. With 7-bit weights
    no pair can saturate, so every kernel (SSE4.1, AVX2, AVX-512, VNNI, AMX, ARM64's NEON,
    dot-product and i8mm) sums exactly; it keeps u8·s8's speed, where u8·u8 (also exact)
    ran at 0.57x here (AVX-512 VNNI). docs/quality.md measures each kernel against float32."""
    import logging

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # it advises "pre-processing" on the root logger
    try:
        quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)


def recipe(variant: str) -> str:
    """The graph's name in an index manifest: vectors of two recipes are not mixed."""
    return f"{variant}-r{_RECIPE}"


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """ONNX Runtime settings for the encoder. Idle worker threads sleep rather than spin
    (`spin`): on a small shared CPU spinning steals the cores that the bot, FAISS or another
    encode need (docs/performance.md measures both)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spin)))
    options.log_severity_level = 3
    return options


class OnnxEncoder:
    """Tokenise, run the graph, mean-pool over real tokens, L2-normalise."""

    def __init__(self, graph: Path, tokenizer_json: Path, max_tokens: int,
                 threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.session = ort.InferenceSession(str(graph), session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding()
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit vectors for one batch (pad to its longest text)."""
        return self._run(self.tokenizer.encode_batch(list(texts)))[0]

    def encode_with_spans(self, texts: Sequence[str],
                          spans: Sequence[Sequence[tuple[int, int]]], tokens: bool = False
                          ) -> tuple[np.ndarray, list[np.ndarray | None],
                                     list[np.ndarray] | None]:
        """Each text's vector and, from the same forward pass, one vector per character span
        (mean of the span's tokens in context; a span cut off by truncation gets None) and,
        with `tokens`, each text's token vectors (see `encode_tokens`)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        vecs, hidden, mask = self._run(encodings)
        out: list[np.ndarray | None] = []
        per_text: list[np.ndarray] | None = [] if tokens else None
        for e, h, sp, m in zip(encodings, hidden, spans, mask, strict=True):
            offsets = np.array(e.offsets, dtype=np.int64)
            real = (m == 1) & (np.array(e.special_tokens_mask) == 0)
            for a, b in sp:
                take = real & (offsets[:, 0] >= a) & (offsets[:, 1] <= b) & (offsets[:, 1] > a)
                if not take.any():
                    out.append(None)
                    continue
                v = h[take].mean(axis=0)
                out.append((v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32))
            if per_text is not None:
                per_text.append(unit_rows(h[real]))
        return vecs, out, per_text

    def encode_tokens(self, texts: Sequence[str]
                      ) -> tuple[np.ndarray, list[tuple[list[str], np.ndarray]]]:
        """Each text's vector and its real (not special, not padding) tokens: their word
        pieces and unit vectors in context, from one forward pass."""
        encodings = self.tokenizer.encode_batch(list(texts))
        vecs, hidden, mask = self._run(encodings)
        out = []
        for e, h, m in zip(encodings, hidden, mask, strict=True):
            real = (m == 1) & (np.array(e.special_tokens_mask) == 0)
            out.append(([t for t, keep in zip(e.tokens, real, strict=True) if keep],
                        unit_rows(h[real])))
        return vecs, out

    def _run(self, encodings: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32), hidden, mask


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length, as float32 (also used by retrieval.model.embed)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
