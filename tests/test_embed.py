"""The Embedder's encoders: the default ONNX int8 graph against sentence-transformers itself,
batch independence, and the hash-checked cache of the locally built graph."""

import os
import shutil

import numpy as np
import pytest

from retrieval.errors import ModelError
from retrieval.model import onnx_model
from retrieval.model.embed import BUNDLED_SHA256, Embedder, bundled_model_path, verify_weights

TEXTS = [
    "President Donald Trump on Friday canceled Secretary of State Mike Pompeo's planned trip.",
    "why was the trip cancelled",
    "The Blue House says Moon encouraged Trump to continue his efforts.",
    "Kim was asked whether he was ready to denuclearize.",
]


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder(encoder="torch")


def test_default_encoder_is_onnx_int8_for_the_bundled_model(embedder):
    assert embedder.encoder == "onnx-int8"
    assert Embedder("some/other-model").encoder == "torch"


def test_onnx_vectors_match_sentence_transformers(embedder, torch_embedder):
    fast, plain = embedder.encode(TEXTS), torch_embedder.encode(TEXTS)
    assert fast.shape == plain.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosines = (fast * plain).sum(axis=1)
    assert cosines.min() > 0.98, cosines
    # ...and the float32 graph is the same function as torch, to rounding.
    exact = Embedder(encoder="onnx").encode(TEXTS)
    assert (exact * plain).sum(axis=1).min() > 0.9999


def test_a_text_gets_the_same_vector_alone_or_among_others(embedder):
    together = embedder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_array_equal(embedder.encode([text])[0], together[i])


def test_sentence_vectors_come_from_the_passage_pass(embedder):
    text = TEXTS[0] + " " + TEXTS[2]
    spans = [[(0, len(TEXTS[0])), (len(TEXTS[0]) + 1, len(text))]]
    passage, sentences, tokens = embedder.encode_passages([text], spans)
    assert tokens is None  # only when asked for
    assert passage.shape == (1, 384) and sentences.shape == (2, 384)
    np.testing.assert_array_equal(passage[0], embedder.encode([text])[0])
    alone = embedder.encode([TEXTS[0], TEXTS[2]])
    # In context, yet still each sentence's own meaning.
    assert (sentences * alone).sum(axis=1).min() > 0.6
    assert float(sentences[0] @ alone[0]) > float(sentences[0] @ alone[1])
    assert float(sentences[1] @ alone[1]) > float(sentences[1] @ alone[0])


@pytest.mark.parametrize("which", ["onnx-int8", "torch"])
def test_token_vectors_line_up_with_the_tokenizer(which, embedder, torch_embedder):
    e = embedder if which == "onnx-int8" else torch_embedder
    text = TEXTS[0] + " " + TEXTS[2]
    spans = [[(0, len(TEXTS[0])), (len(TEXTS[0]) + 1, len(text))]]
    _, sentences, tokens = e.encode_passages([text], spans, tokens=True)
    offsets = e.token_offsets(text)
    assert tokens[0].shape == (len(offsets), 384)
    np.testing.assert_allclose(np.linalg.norm(tokens[0], axis=1), 1, atol=1e-5)
    # Offsets point at the tokens' own text; "Pompeo" is three word pieces.
    assert text[offsets[0][0]:offsets[0][1]] == "President"
    assert [text[a:b] for a, b in offsets][10:13] == ["Po", "mp", "eo"]
    # A token in context is closest to the sentence it belongs to.
    first = tokens[0][offsets[:, 1] <= spans[0][0][1]]
    assert float((first @ sentences[0]).mean()) > float((first @ sentences[1]).mean())


def test_question_tokens_are_its_content_words(embedder, torch_embedder):
    vecs, tokens = embedder.encode_questions(["What is the capital of France?",
                                              "why was the trip cancelled", "What is it?"])
    np.testing.assert_array_equal(vecs, embedder.encode(["What is the capital of France?",
                                                         "why was the trip cancelled",
                                                         "What is it?"]))
    assert [len(t) for t in tokens] == [2, 2, 4]  # capital, france | trip, cancelled | all
    t_vecs, t_tokens = torch_embedder.encode_questions(["What is the capital of France?"])
    assert t_tokens[0].shape == (2, 384)
    assert (t_tokens[0] * tokens[0]).sum(axis=1).min() > 0.9  # the same tokens either way
    assert float(t_vecs[0] @ vecs[0]) > 0.99


def test_unknown_or_unsupported_encoder_is_one_clear_error():
    with pytest.raises(ModelError, match="Unknown encoder"):
        Embedder(encoder="tensorrt")
    with pytest.raises(ModelError, match="bundled model only"):
        Embedder("some/other-model", encoder="onnx-int8")


def test_a_tampered_cached_graph_is_rebuilt(embedder, tmp_path):
    graph = onnx_model.prepare(bundled_model_path(), BUNDLED_SHA256, "onnx-int8")
    cache = tmp_path / "cache"
    shutil.copytree(graph.parent, cache / graph.parent.name)
    copy = cache / graph.parent.name / "model.onnx"
    assert onnx_model.prepare(bundled_model_path(), BUNDLED_SHA256, "onnx-int8", cache) == copy
    before = copy.stat().st_mtime_ns
    with copy.open("r+b") as fh:  # flip bytes in the middle of the weights
        fh.seek(copy.stat().st_size // 2)
        fh.write(b"\x00\x01\x02\x03")
    rebuilt = onnx_model.prepare(bundled_model_path(), BUNDLED_SHA256, "onnx-int8", cache)
    assert rebuilt == copy and copy.stat().st_mtime_ns != before
    assert onnx_model.file_sha256(rebuilt) == onnx_model.file_sha256(graph)


def test_int8_products_cannot_saturate_on_any_kernel():
    """AVX2's and AVX-512's u8·s8 kernels add pairs of products in 16-bit lanes that saturate
    at 32,767 (VNNI, AMX and ARM64 sum in 32 bits): so every integer matrix product must
    take uint8 activations (quantised per call) and int8 weights within ±WEIGHT_LIMIT, for
    2 · 255 · WEIGHT_LIMIT to fit; then every kernel's integer sums are the same."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_model.prepare(bundled_model_path(), BUNDLED_SHA256,
                                             "onnx-int8"))).graph
    weights = {t.name: t for t in graph.initializer}
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    products = [n for n in graph.node if n.op_type in ("MatMulInteger", "QAttention")]
    assert len(products) >= 6 * 3  # per layer: attention and the two feed-forward products
    assert not [n.op_type for n in graph.node if n.op_type in (
        "QGemm", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul")]
    for node in products:
        assert made_by[node.input[0]] == "DynamicQuantizeLinear"  # uint8 activations
        w = weights[node.input[1]]
        assert w.data_type == onnx.TensorProto.INT8
        assert int(np.abs(numpy_helper.to_array(w).astype(np.int32)).max()) \
            <= onnx_model.WEIGHT_LIMIT
    assert 2 * 255 * onnx_model.WEIGHT_LIMIT <= 2**15 - 1


def test_weights_are_hashed_once_and_again_after_any_change(tmp_path, monkeypatch):
    monkeypatch.setenv("BYLINE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    shutil.copyfile(bundled_model_path() / "model.safetensors", weights)
    verify_weights(folder)  # hashed, and remembered
    assert onnx_model.cached_sha256(weights) == BUNDLED_SHA256
    st = weights.stat()
    with weights.open("r+b") as fh:  # same size; then the old mtime put back
        fh.seek(st.st_size // 2)
        fh.write(b"\x00\x01\x02\x03")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ModelError, match="do not match the published sha256"):
        verify_weights(folder)
