"""An incremental publish: the next generation of a schema written as what changed.

Articles whose digest (fill.digests) differs from the served generation's, or that are gone,
are marked removed (their passage rows are left as they are); new and changed articles'
rows are added, each vector in the IVF list of its nearest centroid (lists.py); BM25 gets
one postings row per term the new passages hold, and the new generation gets its arrays
(passage lengths, document frequencies, near-duplicate groups) and copy lists. No row kept is
touched, so the time follows what changed, but for a few passes over the index's tables and
arrays. All of it happens inside the publish's transaction: readers see the old generation or
the new one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retrieval.store.postgres import lists, schema
from retrieval.store.postgres.fill import (
    ARTICLE_FIELDS,
    as_bytes,
    digests,
    first_rows,
    groups_of,
    length,
    storable,
    write_copy_lists,
    write_passages,
    write_state,
)
from retrieval.text import analyze

if TYPE_CHECKING:
    import psycopg

    from retrieval.store.folder.index import FolderIndex

# A full publish instead, when removed rows would make up more than this share of the
# schema's rows (they stay in its IVF lists and BM25 postings until then) ...
DEAD_MAX = 0.25
SEQ_MAX = 1_000  # ... or after this many incremental publishes on one full one


@dataclass(frozen=True)
class Delta:
    """What an incremental publish changed."""

    removed_articles: int
    added_articles: int
    removed_passages: int
    added_passages: int


class NotIncremental(Exception):
    """The change is too large (or the rows do not add up): publish in full."""


def write_delta(conn: psycopg.Connection, s: str, seq: int, index: FolderIndex,
                generation: str) -> Delta:
    """Write `index` as generation `seq + 1` of schema `s`, whose generation `seq` is served;
    NotIncremental (nothing written that the caller's savepoint does not undo) when a full
    publish is due."""
    new = digests(index)
    first = first_rows(index)
    a = "a"
    old = {aid: (code, digest, row) for code, aid, digest, row in conn.execute(
        f"SELECT code, id, digest, first_row FROM {s}.articles {a} "
        f"WHERE {schema.live(a, seq)}")}
    removed = [code for aid, (code, digest, _) in old.items() if new.get(aid) != digest]
    added = sorted((aid for aid, digest in new.items() if old.get(aid, (0, "", 0))[1] != digest),
                   key=lambda aid: first[aid][0])
    state = conn.execute(f"SELECT rows, lengths, df FROM {s}.generations WHERE seq = %s",
                         (seq,)).fetchone()
    newest = conn.execute(f"SELECT max(seq) FROM {s}.generations").fetchone()[0]
    if state is None or newest != seq:  # an older generation served again: not one line
        raise NotIncremental("the served generation is not the schema's newest")
    rows = int(state[0])
    lengths = np.frombuffer(state[1], "<i4").astype(np.int32)
    df = np.frombuffer(state[2], "<i4").astype(np.int64)
    nxt = seq + 1
    added_rows = sum(first[aid][1] for aid in added)
    died = conn.execute(f"SELECT rowno, text FROM {s}.passages WHERE code = ANY(%s)",
                        (removed,)).fetchall() if removed else []
    dead = int(np.count_nonzero(lengths == 0)) + len(died)
    total = rows + added_rows
    if (total and dead / total > DEAD_MAX) or nxt > SEQ_MAX:
        raise NotIncremental("too much of the schema would be removed rows")
    # Articles removed (and with them their passages): marked; their terms taken off the
    # document frequencies, their rows' lengths zeroed.
    conn.execute(f"UPDATE {s}.articles SET died = %s WHERE code = ANY(%s)", (nxt, removed))
    vocab = _vocab(conn, s, {t for _, text in died for t in analyze(text)})
    for rowno, text in died:
        lengths[rowno] = 0
        for t in set(analyze(text)):
            if t in vocab:
                df[vocab[t]] -= 1
    # Articles added: new codes, their rows after every one the schema holds, in order.
    first_code = int(conn.execute(f"SELECT coalesce(max(code), 0) FROM {s}.articles"
                                  ).fetchone()[0]) + 1
    codes = {aid: first_code + i for i, aid in enumerate(added)}
    placed: dict[str, int] = {aid: row for aid, (_, _, row) in old.items()}
    cursor = rows
    for aid in added:
        placed[aid], cursor = cursor, cursor + first[aid][1]
    db = index.db
    with conn.cursor() as cur, cur.copy(
            f"COPY {s}.articles (code, {ARTICLE_FIELDS}, digest, first_row, born) "
            "FROM STDIN") as cp:
        for r in db.execute(f"SELECT {ARTICLE_FIELDS} FROM articles WHERE id IN "
                            "(SELECT value FROM json_each(?))", (json.dumps(added),)):
            cp.write_row((codes[r[0]], *r, new[r[0]], placed[r[0]], nxt))
    new_rows = [r for aid in added for r in range(first[aid][0], first[aid][0] + first[aid][1])]
    rownos = list(range(rows, rows + len(new_rows)))
    analysed = [analyze(t) for t in write_passages(conn, s, index, new_rows, rownos, codes,
                                                   _lists(conn, s, index, new_rows))]
    df = _add_postings(conn, s, nxt, rownos, analysed, vocab, df)
    lengths = np.concatenate([lengths, np.array([length(t) for t in analysed], np.int32)])
    if int(np.count_nonzero(lengths)) != len(index) or (df < 0).any():
        raise NotIncremental("the rows do not add up to the index's")
    write_state(conn, s, nxt, generation, lengths, df, groups_of(index, _rownos(first, placed)))
    write_copy_lists(conn, s, index, nxt)
    return Delta(len(removed), len(added), len(died), len(new_rows))


def _lists(conn: psycopg.Connection, s: str, index: FolderIndex, rows: list[int]
           ) -> np.ndarray:
    """The IVF list of each of the index's `rows` under schema `s`'s centroids (list 0 in a
    flat schema)."""
    found = lists.read(conn, s, index.manifest.dimension)
    if found is None or not rows:
        return np.zeros(len(rows), np.int32)
    return lists.assign(found[0], index.passage_vectors[np.asarray(rows, np.int64)])


def _rownos(first: dict[str, tuple[int, int]], placed: dict[str, int]) -> np.ndarray:
    """The store row of each of the index's rows: an article's rows are consecutive in both,
    from its first row there (`first`: index row and count) and here (`placed`)."""
    ids = sorted(first, key=lambda aid: first[aid][0])
    start = np.array([first[aid][0] for aid in ids], np.int64)
    count = np.array([first[aid][1] for aid in ids], np.int64)
    at = np.array([placed[aid] for aid in ids], np.int64)
    if len(ids) and (int(count.sum()) != int(start[-1] + count[-1])
                     or (np.diff(start) != count[:-1]).any()):
        raise NotIncremental("an article's rows are not consecutive in the index")
    return np.arange(int(count.sum()), dtype=np.int64) + np.repeat(at - start, count)


def _add_postings(conn: psycopg.Connection, s: str, seq: int, rownos: list[int],
                  analysed: list[list[str]], vocab: dict[str, int], df: np.ndarray
                  ) -> np.ndarray:
    """The new rows' postings as generation `seq`'s (new terms get the next ids); the
    document frequencies with them counted."""
    vocab.update(_vocab(conn, s, {t for toks in analysed for t in toks}))
    next_id = max(len(df), int(conn.execute(f"SELECT coalesce(max(term_id) + 1, 0) "
                                            f"FROM {s}.terms").fetchone()[0]))
    fresh: dict[str, int] = {}
    postings: dict[int, tuple[list[int], list[int]]] = {}
    for rowno, toks in zip(rownos, analysed, strict=True):
        for term, count in Counter(toks).items():
            if not storable(term):
                continue
            t = vocab.get(term)
            if t is None:
                t = vocab[term] = fresh[term] = next_id
                next_id += 1
            docs, tfs = postings.setdefault(t, ([], []))
            docs.append(rowno)
            tfs.append(count)
    if next_id > len(df):
        df = np.concatenate([df, np.zeros(next_id - len(df), np.int64)])
    for t, (docs, _) in postings.items():
        df[t] += len(docs)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {s}.terms (term_id, term) FROM STDIN") as cp:
            for term, t in fresh.items():
                cp.write_row((t, term))
        with cur.copy(f"COPY {s}.postings (term_id, seq, docs, counts) FROM STDIN "
                      "(FORMAT BINARY)") as cp:
            cp.set_types(["int4", "int4", "bytea", "bytea"])
            for t, (docs, tfs) in sorted(postings.items()):
                if max(tfs) > np.iinfo(np.uint16).max:
                    raise NotIncremental("a term repeats more than 65,535 times")
                cp.write_row((t, seq, as_bytes(docs, np.int32), as_bytes(tfs, np.uint16)))
    return df


def _vocab(conn: psycopg.Connection, s: str, terms: set[str]) -> dict[str, int]:
    """term -> id of those of `terms` the schema already has."""
    terms = {t for t in terms if storable(t)}
    if not terms:
        return {}
    return dict(conn.execute(f"SELECT term, term_id FROM {s}.terms WHERE term = ANY(%s)",
                             (sorted(terms),)).fetchall())


