"""A headline that states the answer the body assumes is shown as the answer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from retrieval import index_corpus
from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever, SearchSettings


@pytest.fixture(scope="module")
def sports(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Retriever:
    corpus = tmp_path_factory.mktemp("sports")
    (corpus / "cup.txt").write_text(
        "Outlet: Mountain Post\nDate: 2022-06-27\n\n"
        "Colorado Avalanche win first Stanley Cup title since 2001\n\n"
        "The team's only loss in the finals came against Tampa Bay in Game 3, and the series "
        "ended in six games on Sunday night.\n\n"
        "Fans filled the streets of downtown Denver to celebrate, and the parade is planned "
        "for Thursday afternoon.\n", "utf-8")
    (corpus / "bridge.txt").write_text(
        "Outlet: Coast Herald\nDate: 2022-05-02\n\nCouncil meeting notes\n\n"
        "The Old Mill bridge reopened on Wednesday after eight months of repairs to its deck "
        "and railings, the council said.\n", "utf-8")
    return Retriever(index_corpus(corpus, tmp_path_factory.mktemp("idx"), embedder,
                                  progress=False), embedder)


def test_answering_headline_is_the_quote(sports: Retriever):
    top = sports.ask("Which team won the Stanley Cup title?").hits[0]
    assert top.passage.source == "cup.txt"
    assert (top.quote_from, top.quote) == (
        "headline", "Colorado Avalanche win first Stanley Cup title since 2001")
    assert top.to_dict()["quote_from"] == "headline"
    # Switched off, the quote is a sentence of the passage again.
    off = Retriever(sports.index, sports.embedder,
                    replace(SearchSettings(), headline_margin=None))
    plain = off.ask("Which team won the Stanley Cup title?").hits[0]
    assert plain.quote_from == "text" and plain.quote in plain.passage.text


def test_a_sentence_that_answers_beats_an_unhelpful_headline(sports: Retriever):
    top = sports.ask("When did the Old Mill bridge reopen after repairs?").hits[0]
    assert top.passage.source == "bridge.txt"
    assert top.quote_from == "text" and "reopened on Wednesday" in top.quote
    assert all(h.quote_from == "text" for h in sports.ask("When is the parade?").hits)
