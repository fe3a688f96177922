"""The feedback store, the `byline feedback` export, and the bot's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import BotConfigError, BotSettings
from retrieval.cli.main import main
from retrieval.search.feedback import FeedbackStore, default_path


def test_record_and_export(tmp_path: Path):
    store = FeedbackStore(tmp_path / "fb.sqlite")
    key = store.remember("why was the trip cancelled", ["a#2", "b#3"])
    assert store.record(key, "up", 1234) is not None
    assert store.record(key, "down", 1234) is not None  # a changed mind replaces the vote
    assert store.record(key, "up", 99) is not None
    assert store.record("0" * 12, "up", 1) is None  # unknown answer
    rows = store.export()
    assert [(r.question, r.passage_ids, r.verdict) for r in rows] == [
        ("why was the trip cancelled", ["a#2", "b#3"], "down"),
        ("why was the trip cancelled", ["a#2", "b#3"], "up"),
    ]
    assert "1234" not in rows[0].user_hash and rows[0].user_hash == store.hash_user(1234)
    store.close()
    # Reopened, the salt is the same, so the same user hashes the same.
    again = FeedbackStore(tmp_path / "fb.sqlite")
    assert again.hash_user(1234) == rows[0].user_hash
    with pytest.raises(ValueError):
        again.record(key, "meh", 1)


def test_feedback_command(tmp_path: Path, monkeypatch, capsys):
    index_dir = tmp_path / "data" / "index"
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(index_dir))
    store = FeedbackStore(default_path(index_dir))
    store.record(store.remember("who met in Hanoi", ["x#1"]), "up", 7)
    store.close()
    assert main(["feedback", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["question"], row["passage_ids"], row["verdict"]) == ("who met in Hanoi",
                                                                     ["x#1"], "up")
    assert main(["feedback"]) == 0
    assert "1 ratings: 1 helpful" in capsys.readouterr().out


def test_bot_settings_from_env():
    s = BotSettings.from_env({"DISCORD_TOKEN": "secret-token", "DISCORD_GUILD_ID": "123",
                              "BYLINE_COOLDOWN_SECONDS": "2.5", "BYLINE_INDEX_DIR": "/x"})
    assert (s.guild_id, s.cooldown_seconds, str(s.index_dir)) == (123, 2.5, "/x")
    assert "secret-token" not in repr(s)


@pytest.mark.parametrize(("env", "message"), [
    ({}, "DISCORD_TOKEN is not set"),
    ({"DISCORD_TOKEN": "t", "DISCORD_GUILD_ID": "abc"}, "DISCORD_GUILD_ID must be"),
    ({"DISCORD_TOKEN": "t", "BYLINE_COOLDOWN_SECONDS": "-1"}, "BYLINE_COOLDOWN_SECONDS must"),
])
def test_bad_bot_settings(env, message):
    with pytest.raises(BotConfigError, match=message):
        BotSettings.from_env(env)


def test_export_is_read_only_and_damage_is_one_line(tmp_path: Path, monkeypatch, capsys):
    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db)
    store.record(store.remember("why", ["a#1"]), "up", 1)
    store.close()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"fb.sqlite{extra}").unlink(missing_ok=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setenv("BYLINE_FEEDBACK_DB", str(db))
    assert main(["feedback", "--json"]) == 0
    assert [r["verdict"] for r in json.loads(capsys.readouterr().out)] == ["up"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no journal files made
    db.write_bytes(b"this is not a database" * 100)
    assert main(["feedback"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"byline: The feedback store {db} cannot be read") and "\n" not in err
