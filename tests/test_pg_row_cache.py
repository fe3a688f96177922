"""The PostgreSQL store's row cache (`Lru.get`): questions asked at once about one story read
each shared row once, and a failed read fails every question waiting on it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from retrieval.store.postgres.rows import Lru


class SlowReads:
    """A read that counts each key it is asked for and holds until released."""

    def __init__(self, fail: bool = False) -> None:
        self.asked: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, keys: list[int]) -> dict[int, str]:
        with self._lock:
            self.asked += keys
        self.started.set()
        assert self.release.wait(10)
        if self.fail:
            raise ConnectionError("server went away")
        return {k: f"row {k}" for k in keys}


def test_rows_read_by_one_question_are_not_read_again_by_another_asking_meanwhile():
    cache: Lru[int, str] = Lru(100)
    reads = SlowReads()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get, [1, 2, 3], reads)
        assert reads.started.wait(10)
        second = pool.submit(cache.get, [2, 3, 4], reads)
        while 4 not in reads.asked:  # the second question has read its own row
            threading.Event().wait(0.01)
        reads.release.set()
        assert first.result(10) == {1: "row 1", 2: "row 2", 3: "row 3"}
        assert second.result(10) == {2: "row 2", 3: "row 3", 4: "row 4"}
    assert sorted(reads.asked) == [1, 2, 3, 4]  # each row read once
    assert cache.get([1, 4], reads) == {1: "row 1", 4: "row 4"}  # kept: no read
    assert sorted(reads.asked) == [1, 2, 3, 4]


def test_a_failed_read_fails_the_questions_waiting_on_it_and_is_not_kept():
    cache: Lru[int, str] = Lru(100)
    bad, good = SlowReads(fail=True), SlowReads()
    good.release.set()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get, [1, 2], bad)
        assert bad.started.wait(10)
        second = pool.submit(cache.get, [2, 5], good)  # row 2: waits on the first's read
        assert good.started.wait(10)
        bad.release.set()
        for question in (first, second):
            with pytest.raises(ConnectionError):
                question.result(10)
    assert good.asked == [5]  # the waiter did not read row 2 itself
    assert cache.get([2, 5], good) == {2: "row 2", 5: "row 5"}  # 2 read afresh, 5 kept
    assert good.asked == [5, 2]
