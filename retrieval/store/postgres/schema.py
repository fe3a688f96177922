"""The PostgreSQL store's tables: versioned migrations of the shared tables (recorded in
`byline_migrations`, applied in order, once, under an advisory lock) and the layout of one
generation (a schema of its own, `byline_g_<generation>`, created by each publish).

Shared tables: `byline_manifest` (one row: the generation readers use, its manifest as
JSON, the background probes' vectors) and `byline_generations` (every generation published
and not yet dropped). A generation's schema holds its articles, passages, passage vectors
(pgvector, grouped in IVF lists: lists.py), sentence and token vectors, and BM25 postings.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from retrieval.errors import IndexMismatch, StoreError

if TYPE_CHECKING:
    import psycopg

# (version, name, SQL): append only; a released migration is never edited.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "vector extension, manifest and generations", """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE byline_manifest (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    generation text NOT NULL,
    manifest jsonb NOT NULL,
    probe_vectors bytea,
    published timestamptz NOT NULL DEFAULT now());
CREATE TABLE byline_generations (
    generation text PRIMARY KEY,
    layout integer NOT NULL,
    passages integer NOT NULL,
    published timestamptz NOT NULL DEFAULT now());
"""),
    (2, "generations record where their rows live", """
ALTER TABLE byline_generations ADD COLUMN data text, ADD COLUMN seq integer;
"""),
]
LATEST = MIGRATIONS[-1][0]
# The layout of a generation's tables (GENERATION_DDL). 3: the rows of a full publish and of
# the incremental publishes after it share one schema (`data` in byline_generations), each
# row marked with the generation (`seq` within that schema) that added it and the one that
# removed it; BM25 kept as term counts and passage lengths, scored when read. A store of an
# older layout is published again whole. 4: passage vectors in a table of their own, each
# row in an IVF list (lists.py), instead of a column of `passages` under an HNSW index.
LAYOUT = 4
CHANNEL = "byline_generation"  # NOTIFY'd with the new generation's name on each publish
MIGRATE_LOCK = 0x6279_6C69_6E65_01  # advisory lock keys ("byline" + n)
PUBLISH_LOCK = 0x6279_6C69_6E65_02
WRITER_LOCK = 0x6279_6C69_6E65_03
NEVER = 2**31 - 1  # `died` of an article no generation has removed

# A question reads its candidates' whole rows (rows.py), each at a random place. A row kept in
# one piece is one heap page read; PostgreSQL's default moves the largest value of any row
# over 2 kB out to the TOAST table (a passage's sentence vectors), which costs an index lookup
# and another page per value. So rows stay whole up to a page (toast_tuple_target), and the
# vectors (MAIN) are the last values moved out, only when a row still exceeds a page
# (docs/postgres.md, "Where a question's time goes").
#
# `vectors` holds each passage's vector and IVF list (`lst`); a dense search reads the rows of
# a few lists, so a full publish writes them in list order: a list is a run of pages. `ivf`
# holds the lists' centroids (float32) and the nprobe tuned when they were made; a flat
# schema (searched exactly, in the reader's process) has no such row and puts every row in
# list 0.
#
# A passage row is never updated: it lives as long as its article's row (`code`), and an
# article's row is only ever marked removed (`died`), so an incremental publish touches no
# passage row it keeps.
# Generation `seq` sees the articles with born <= seq < died and their passages, whose rows
# run from the article's `first_row`, one per paragraph. `generations` holds, per generation,
# each row's BM25 length (0: a row it does not hold), each term's document frequency and each
# row's near-duplicate group (-1: none), as arrays; a term's postings are one row per
# generation that added passages holding it.
GENERATION_DDL = """
CREATE SCHEMA {s};
CREATE TABLE {s}.generations (seq integer PRIMARY KEY, generation text UNIQUE NOT NULL,
    rows integer NOT NULL, lengths bytea NOT NULL, df bytea NOT NULL, groups bytea NOT NULL);
CREATE TABLE {s}.articles (code integer PRIMARY KEY, id text NOT NULL,
    title text NOT NULL, source text NOT NULL, outlet text, date text, url text,
    author text, sha256 text NOT NULL, digest text NOT NULL, first_row integer NOT NULL,
    born integer NOT NULL, died integer NOT NULL DEFAULT {never});
CREATE TABLE {s}.passages (rowno integer PRIMARY KEY, id text NOT NULL, code integer NOT NULL,
    article_id text NOT NULL, paragraph integer NOT NULL, text text NOT NULL,
    hash text NOT NULL) WITH (toast_tuple_target = 8160);
CREATE TABLE {s}.vectors (rowno integer PRIMARY KEY, lst integer NOT NULL,
    embedding vector({dim}) NOT NULL) WITH (toast_tuple_target = 8160);
ALTER TABLE {s}.vectors ALTER embedding SET STORAGE MAIN;
CREATE TABLE {s}.ivf (one boolean PRIMARY KEY DEFAULT true CHECK (one),
    nprobe integer NOT NULL, centroids bytea NOT NULL);
CREATE TABLE {s}.sentences (rowno integer PRIMARY KEY, vectors bytea NOT NULL,
    spans bytea NOT NULL) WITH (toast_tuple_target = 8160);
ALTER TABLE {s}.sentences ALTER vectors SET STORAGE MAIN, ALTER spans SET STORAGE MAIN;
CREATE TABLE {s}.tokens (rowno integer PRIMARY KEY, codes bytea NOT NULL,
    scales bytea NOT NULL, spans bytea NOT NULL);
CREATE TABLE {s}.terms (term_id integer PRIMARY KEY, term text UNIQUE NOT NULL);
CREATE TABLE {s}.postings (term_id integer NOT NULL, seq integer NOT NULL,
    docs bytea NOT NULL, counts bytea NOT NULL, PRIMARY KEY (term_id, seq));
CREATE TABLE {s}.copy_lists (seq integer NOT NULL, grp integer NOT NULL, n integer NOT NULL,
    article_id text NOT NULL, PRIMARY KEY (seq, grp, n));
"""
# Created after a full publish's rows are in (faster than keeping them up to date row by
# row); an incremental publish's rows update them in place.
GENERATION_INDEXES = """
CREATE INDEX ON {s}.passages (code);
CREATE INDEX ON {s}.passages (id);
CREATE INDEX ON {s}.articles (id);
CREATE INDEX ON {s}.vectors (lst);
ANALYZE {s}.articles; ANALYZE {s}.passages; ANALYZE {s}.vectors;
"""


def live(alias: str, seq: int) -> str:
    """SQL: the articles (table alias `alias`) that generation `seq` of their schema holds."""
    return f"{alias}.born <= {int(seq)} AND {alias}.died > {int(seq)}"


NO_PGVECTOR = ("The PostgreSQL server has no pgvector extension (\"vector\" is not available "
               "to CREATE EXTENSION); install pgvector 0.5 or later on the server, or keep the "
               "index in a folder.")


def schema_of(generation: str) -> str:
    """The schema holding `generation` (generation names are short alphanumerics)."""
    if not re.fullmatch(r"[0-9A-Za-z]{1,40}", generation):
        raise ValueError(f"bad generation name {generation!r}")
    return f"byline_g_{generation.lower()}"


def version(conn: psycopg.Connection) -> int:
    """The latest migration applied (0: none, or no store here)."""
    found = conn.execute("SELECT to_regclass('byline_migrations') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM byline_migrations").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply the migrations not applied yet, each in its own transaction, one migrating
    process at a time; the versions applied now."""
    import psycopg

    applied: list[int] = []
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS byline_migrations ("
                         "version integer PRIMARY KEY, name text NOT NULL, "
                         "applied timestamptz NOT NULL DEFAULT now())")
            done = {r[0] for r in conn.execute("SELECT version FROM byline_migrations")}
            if done and max(done) > LATEST:
                raise IndexMismatch(f"The store's schema is at version {max(done)}; this Byline "
                                    f"knows up to {LATEST}: upgrade Byline.")
            for number, name, sql in MIGRATIONS:
                if number in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO byline_migrations (version, name) VALUES (%s, %s)",
                                 (number, name))
                applied.append(number)
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise StoreError(read_only(str(exc).splitlines()[0])) from None
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile) as exc:
        if "vector" not in str(exc):
            raise
        raise StoreError(NO_PGVECTOR) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError("The store's tables cannot be created: permission denied "
                         f"({str(exc).splitlines()[0]}); a database owner must run "
                         "`byline migrate --to URL` (and CREATE EXTENSION vector).") from None
    return applied


def read_only(reason: str) -> str:
    """The error for a write to a hot standby."""
    return (f"The store is read-only, a hot standby (a read replica) ({reason}); write to the "
            "primary's URL: readers may use a standby, writers may not.")


def check_version(conn: psycopg.Connection, where: str) -> None:
    """IndexMismatch unless the store's schema is the one this Byline reads."""
    found = version(conn)
    if found == LATEST:
        return
    if found > LATEST:
        raise IndexMismatch(f"The store at {where} has schema version {found}; this Byline "
                            f"reads {LATEST}: upgrade Byline.")
    raise IndexMismatch(f"The store at {where} has schema version {found}, this Byline reads "
                        f"{LATEST}: run `byline migrate --to URL` to upgrade it.")
