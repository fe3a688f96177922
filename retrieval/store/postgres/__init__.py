"""The PostgreSQL store (`postgresql://` locations): the same index, shared by many processes
and machines. `open_postgres` reads the current generation, `publish_postgres` writes one in
a single transaction and NOTIFYs listeners; see docs/postgres.md."""

from retrieval.store.postgres.reader import PgIndex, open_postgres
from retrieval.store.postgres.writer import PostgresWriterLock, publish_postgres

__all__ = ["PgIndex", "PostgresWriterLock", "open_postgres", "publish_postgres"]
