"""The int8 schemes the encoder could use, on this CPU: speed and distance from float32.

    .venv/bin/python -m bench.int8_schemes [--paragraphs 200]
    qemu-x86_64 -cpu Haswell .venv/bin/python -m bench.int8_schemes --paragraphs 20 --save F

Quantises the fused float32 graph (the `onnx` encoder's) three ways: int8 weights over their
full range (u8·s8, recipe 1: saturates on AVX2 and AVX-512 without VNNI), int8 weights kept
to 7 bits (u8·s8 reduce_range, Byline's), uint8 weights (u8·u8); encodes SQuAD B paragraphs
one per call, as Byline does, and prints each scheme's passages/s on 1 and 2 threads and
its passage and token vectors' cosine with float32's. `--save F` keeps the vectors (.npz),
`--against F` compares them with another CPU's saved run (the same scheme's vectors).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from retrieval.model import onnx_model
from retrieval.model.bundled import BUNDLED_SHA256, verified_bundled_path
from retrieval.model.kernel import int8_kernel

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = {"full-range u8·s8 (r1)": {"weight": "QInt8"},
           "7-bit u8·s8 (r2, Byline)": {"weight": "QInt8", "reduce_range": True},
           "u8·u8": {"weight": "QUInt8"}}


def quantise(fused: Path, out: Path, weight: str, reduce_range: bool = False) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)
    quantize_dynamic(str(fused), str(out), weight_type=getattr(QuantType, weight),
                     per_channel=True, reduce_range=reduce_range,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    logging.disable(logging.NOTSET)


def encode(graph: Path, texts: list[str], threads: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Passage vectors, all token vectors, and passages per second."""
    path = verified_bundled_path()
    enc = onnx_model.OnnxEncoder(graph, path / "tokenizer.json", 256, threads=threads)
    enc.encode_batch(texts[:3])
    vecs, toks = [], []
    start = time.perf_counter()
    for text in texts:
        v, t = enc.encode_tokens([text])
        vecs.append(v[0])
        toks.append(t[0][1])
    rate = len(texts) / (time.perf_counter() - start)
    return np.array(vecs), np.concatenate(toks), rate


def cosines(a: np.ndarray, b: np.ndarray) -> str:
    c = (a * b).sum(axis=1)
    return f"{c.min():.4f} / {c.mean():.5f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--paragraphs", type=int, default=200)
    parser.add_argument("--save", type=Path, help="keep every scheme's vectors here (.npz)")
    parser.add_argument("--against", type=Path, help="a --save file from another CPU")
    args = parser.parse_args()
    data = json.loads((args.data / "squad-v1.1-dev-b.json").read_text(encoding="utf-8"))
    texts = [p["context"] for a in data["data"] for p in a["paragraphs"]][:args.paragraphs]
    fused = onnx_model.prepare(verified_bundled_path(), BUNDLED_SHA256, "onnx")
    reference = encode(fused, texts, 2)
    print(f"{int8_kernel()}, {len(texts)} SQuAD B paragraphs ({len(reference[1]):,} tokens); "
          f"float32: {reference[2]:.1f} passages/s on 2 threads\n")
    other = dict(np.load(args.against)) if args.against else {}
    print("| scheme | passages/s, 1 / 2 threads | passages vs float32, min / mean | "
          "tokens vs float32 | passages vs --against | tokens vs --against |")
    print("|---|---|---|---|---|---|")
    saved = {"vf": reference[0], "tf": reference[1]}
    if "vf" in other:
        print(f"| float32 | {reference[2]:.1f} (2 threads) | 1 | 1 | "
              f"{cosines(reference[0], other['vf'])} | {cosines(reference[1], other['tf'])} |")
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, how) in enumerate(SCHEMES.items()):
            graph = Path(tmp) / f"{n}.onnx"
            quantise(fused, graph, how["weight"], how.get("reduce_range", False))
            vecs, toks, one = encode(graph, texts, 1)
            two = encode(graph, texts, 2)[2]
            saved[f"v{n}"], saved[f"t{n}"] = vecs, toks
            there = ((cosines(vecs, other[f"v{n}"]), cosines(toks, other[f"t{n}"]))
                     if f"v{n}" in other else ("", ""))
            print(f"| {name} | {one:.1f} / {two:.1f} | {cosines(vecs, reference[0])} | "
                  f"{cosines(toks, reference[1])} | {there[0]} | {there[1]} |", flush=True)
    if args.save:
        np.savez(args.save, **saved)


if __name__ == "__main__":
    main()
