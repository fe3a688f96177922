"""BM25's arithmetic, shared by both backends: a folder's build scores postings with it, a
database scores the term counts it keeps with it when a question reads them."""

from __future__ import annotations

import math

import numpy as np

K1, B = 1.5, 0.75  # bm25s's defaults


class Scoring:
    """BM25 weights as bm25s computes them (Lucene, k1 1.5, b 0.75): idf by math.log kept
    as float32, the rest float64, then float32. One place, as `Postings.build`,
    `PostingsWriter` and the PostgreSQL store (which scores term counts as it reads them)
    must agree bit for bit.

    `lengths`: each row's token count, 0 for a row that holds no passage (a PostgreSQL
    generation's rows removed since); the passages are the rows of non-zero length."""

    def __init__(self, df: np.ndarray, lengths: np.ndarray) -> None:
        held = lengths[lengths > 0]
        n = len(held)
        self.passages = n
        idf = {f: math.log(1 + (n - f + 0.5) / (f + 0.5)) for f in set(df.tolist())}
        self.idf32 = np.array([idf[f] for f in df.tolist()], np.float32)
        self.k = K1 * ((1 - B) + B * lengths.astype(np.float64) / (held.mean() if n else 1.0))

    def weights(self, terms: np.ndarray | int, rows: np.ndarray, tf: np.ndarray) -> np.ndarray:
        """The weight of each (term, passage row, term frequency)."""
        tf32 = tf.astype(np.float32)
        # idf32 * (tf32 / (k + tf32)) in float64, computed in one array (a question's
        # postings reach hundreds of thousands of entries)
        out = np.array(self.k[rows], np.float64)  # a copy, whatever `rows` is
        out += tf32
        np.divide(tf32, out, out=out)
        out *= self.idf32[terms]
        return out.astype(np.float32)

    def counts(self, term: int, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The term frequencies `weights` were scored from (uint16), checked: ValueError
        unless they score to `weights` bit for bit."""
        r = weights.astype(np.float64) / float(self.idf32[term])
        tf = np.rint(r * self.k[rows] / (1 - r))
        if len(tf) and (tf.min() < 1 or tf.max() > np.iinfo(np.uint16).max):
            raise ValueError("BM25 weights that no term count gives")
        tf = tf.astype(np.uint16)
        if not np.array_equal(self.weights(term, rows, tf), weights):
            raise ValueError("BM25 weights that no term count gives")
        return tf
