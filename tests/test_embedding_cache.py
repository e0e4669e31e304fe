"""The embedding cache is bounded (issue #21): past its size limit the least recently used
entries go, a read counts as a use, and a cache file written before the limit existed
keeps working."""
from __future__ import annotations

import sqlite3

from schema.encoders import EmbeddingCache


def _value(i: int) -> bytes:
    return bytes([i % 256]) * 1000


def test_the_cache_stays_under_its_limit_and_evicts_the_least_recently_used(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=10_000)
    cache.put_many((f"k{i}", _value(i)) for i in range(8))
    assert set(cache.get_many(["k0"])) == {"k0"}  # k0 used again: now the most recent
    cache.put_many((f"n{i}", _value(i)) for i in range(4))  # 12 KB asked for, 10 KB allowed
    assert cache.stored_bytes() <= 10_000
    left = set(cache.get_many([f"k{i}" for i in range(8)] + [f"n{i}" for i in range(4)]))
    assert {"k0", "n0", "n1", "n2", "n3"} <= left  # the recent ones stay
    assert "k1" not in left and "k2" not in left  # the oldest unused ones went first
    assert cache.get_many(["k0"])["k0"] == _value(0)


def test_the_limit_holds_across_processes_opening_the_same_file(tmp_path):
    first = EmbeddingCache(tmp_path, max_bytes=5_000)
    second = EmbeddingCache(tmp_path, max_bytes=5_000)
    for i in range(10):
        (first if i % 2 else second).put_many([(f"k{i}", _value(i))])
    assert first.stored_bytes() <= 5_000 and second.stored_bytes() <= 5_000
    assert set(first.get_many(["k8", "k9"])) == {"k8", "k9"}


def test_a_cache_written_before_the_limit_existed_is_upgraded(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "embeddings.sqlite"))
    conn.execute("CREATE TABLE emb (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    conn.executemany("INSERT INTO emb VALUES (?, ?)", [(f"old{i}", _value(i)) for i in range(5)])
    conn.commit()
    conn.close()
    cache = EmbeddingCache(tmp_path, max_bytes=4_000)
    assert cache.stored_bytes() <= 4_000  # trimmed on opening
    cache.put_many([("new", _value(9))])
    assert cache.get_many(["new"]) == {"new": _value(9)}


def test_the_limit_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDDING_CACHE_MAX_BYTES", "3000")
    cache = EmbeddingCache(tmp_path)
    cache.put_many((f"k{i}", _value(i)) for i in range(6))
    assert cache.max_bytes == 3000 and cache.stored_bytes() <= 3000
