"""`byline check` for a PostgreSQL store: reachable, schema version, the current generation
whole (its row counts are the manifest's) and its HNSW index present."""

from __future__ import annotations

import json
import sys

from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, redact


def check_postgres(url: str, as_json: bool = False) -> int:
    where = redact(url)
    problems: list[str] = []
    info: dict[str, object] = {"store": where}
    with connect(url) as conn:
        info["schema"] = found = schema.version(conn)
        row = None
        if found != schema.LATEST:
            problems.append(f"schema version {found}, this Byline reads {schema.LATEST}: "
                            "run `byline migrate --to URL`")
        else:
            row = conn.execute("SELECT generation, manifest, published FROM byline_manifest"
                               ).fetchone()
            if row is None:
                problems.append("no generation published yet")
        if row is not None:
            generation, m = row[0], row[1]
            s = schema.schema_of(generation)
            counts = conn.execute(
                f"SELECT (SELECT count(*) FROM {s}.passages), (SELECT count(*) FROM {s}.articles),"
                f" (SELECT count(*) FROM {s}.sentences), pg_size_pretty(("
                f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                f"ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r')::bigint)",
                (s,)).fetchone()
            hnsw = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s "
                                "AND indexdef ILIKE '%%USING hnsw%%'", (s,)).fetchone()[0]
            info.update(generation=generation, passages=counts[0], articles=counts[1],
                        size=counts[3], model=m.get("model"), created=m.get("created"))
            if (counts[0], counts[1], counts[2]) != (m["passages"], m["articles"], m["passages"]):
                problems.append(f"generation {generation} holds {counts[0]} passages and "
                                f"{counts[1]} articles; its manifest says {m['passages']} and "
                                f"{m['articles']}")
            if not hnsw:
                problems.append(f"generation {generation} has no HNSW index")
    info["ok"], info["problems"] = not problems, problems
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(f"Store: {where} (schema version {info['schema']})")
        if "generation" in info:
            print(f"Generation {info['generation']}, built {info['created']}: "
                  f"{info['articles']:,} articles, {info['passages']:,} passages "
                  f"({info['model']}), {info['size']}")
        for p in problems:
            print(f"byline: {p}", file=sys.stderr)
        if not problems:
            print("OK")
    return 0 if not problems else 1

