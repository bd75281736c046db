"""Connection strings shared by the code that talks to PostgreSQL through psycopg2 directly.

The generator and the importer stand in for the RMS and write with libpq's own COPY; the settings
hold SQLAlchemy URLs. One translation keeps both spellings of a database the same database.
"""

from __future__ import annotations

import re


def libpq_dsn(dsn: str) -> str:
    """A libpq URL from a SQLAlchemy one: drop the '+driver' part (postgresql+psycopg2://)."""
    return re.sub(r"^(postgres(?:ql)?)\+[\w-]+://", r"\1://", dsn.strip())
