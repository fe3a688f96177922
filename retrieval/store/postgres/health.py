"""`byline check` for a PostgreSQL store: reachable, schema version, the current generation
whole (its row counts are the manifest's) and its IVF lists present."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, failure, redact

if TYPE_CHECKING:
    import psycopg


def check_postgres(url: str, as_json: bool = False) -> int:
    """`byline check` on a database store, printed; the exit status (0: healthy). Every
    problem is one line, a database error included."""
    import psycopg

    where = redact(url)
    problems: list[str] = []
    info: dict[str, object] = {"store": where}
    try:
        with connect(url) as conn:
            _inspect(conn, info, problems)
    except psycopg.Error as exc:
        problems.append(str(failure(url, exc)).removesuffix("."))
    info["ok"], info["problems"] = not problems, problems
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(f"Store: {where} (schema version {info.get('schema', '?')})")
        if "generation" in info:
            print(f"Generation {info['generation']}, built {info['created']}: "
                  f"{info['articles']:,} articles, {info['passages']:,} passages "
                  f"({info['model']}), {info['size']}")
        for p in problems:
            print(f"byline: {p}", file=sys.stderr)
        if not problems:
            print("OK")
    return 0 if not problems else 1


def _inspect(conn: psycopg.Connection, info: dict[str, object], problems: list[str]) -> None:
    """What `check` reports of the store on `conn`, into `info`; what is wrong, into
    `problems`."""
    import psycopg

    info["schema"] = found = schema.version(conn)
    if found != schema.LATEST:
        vector = conn.execute("SELECT count(*) FROM pg_available_extensions "
                              "WHERE name = 'vector'").fetchone()[0]
        problems.append(schema.NO_PGVECTOR.removesuffix(".") if not vector else
                        f"schema version {found}, this Byline reads {schema.LATEST}: run "
                        "`byline migrate --to URL`")
        return
    row = conn.execute("SELECT generation, manifest, published FROM byline_manifest").fetchone()
    if row is None:
        problems.append("no generation published yet")
        return
    generation, m = row[0], row[1]
    placed = conn.execute("SELECT layout, data, seq FROM byline_generations "
                          "WHERE generation = %s", (generation,)).fetchone()
    if placed is None or placed[0] != schema.LAYOUT or placed[1] is None:
        problems.append(f"generation {generation} was published by an older Byline (layout "
                        f"{placed[0] if placed else '?'}, this Byline reads {schema.LAYOUT}): "
                        "publish it again (`byline index --full` or `byline migrate --from "
                        "FOLDER`)")
        return
    s, seq = placed[1], int(placed[2])
    live = schema.live("a", seq)
    held = f"{s}.passages p JOIN {s}.articles a ON a.code = p.code WHERE {live}"
    try:
        counts = conn.execute(
            f"SELECT (SELECT count(*) FROM {held}), "
            f"(SELECT count(*) FROM {s}.articles a WHERE {live}), "
            f"(SELECT count(*) FROM {s}.sentences s WHERE s.rowno IN (SELECT p.rowno FROM "
            f"{held})), pg_size_pretty(("
            f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r')::bigint)",
            (s,)).fetchone()
    except psycopg.errors.UndefinedTable:
        problems.append(f"generation {generation} is served but its tables are gone (schema "
                        f"{s} was dropped): publish the index again (`byline index` or "
                        "`byline migrate --from FOLDER`)")
        return
    vectors = conn.execute(f"SELECT count(*) FROM {s}.vectors v WHERE v.rowno IN "
                           f"(SELECT p.rowno FROM {held})").fetchone()[0]
    lists = m.get("ann") == "flat" or conn.execute(f"SELECT count(*) FROM {s}.ivf").fetchone()[0]
    info.update(generation=generation, passages=counts[0], articles=counts[1],
                size=counts[3], model=m.get("model"), created=m.get("created"))
    if (counts[0], counts[1], counts[2]) != (m["passages"], m["articles"], m["passages"]):
        problems.append(f"generation {generation} holds {counts[0]} passages and "
                        f"{counts[1]} articles; its manifest says {m['passages']} and "
                        f"{m['articles']}")
    if vectors != m["passages"]:
        problems.append(f"generation {generation} holds {vectors} passage vectors for "
                        f"{m['passages']} passages")
    if not lists:
        problems.append(f"generation {generation} has no IVF lists ({s}.ivf)")
