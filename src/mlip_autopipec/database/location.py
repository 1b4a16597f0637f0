"""Where a run's database lives: the one rule for telling a server URL from a file path, the campaign
a server database is shared by, and the URL as it may be shown (without its password).

``database.path`` in the config is either a URL understood by ASE (anything
with ``://``, e.g. ``postgresql://user@host:5432/db``) or a SQLite file name,
relative to the work directory unless absolute.

Campaigns.  One PostgreSQL database holds many campaigns, each in its own
PostgreSQL *schema* (a namespace of tables) named after the campaign: its rows,
ids, settings (split, ownership mark) and write lock are its own, and no query
of one campaign can see another's structures.  A SQLite file is one campaign.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlip_autopipec.exceptions import DatabaseError

DEFAULT_CAMPAIGN = "public"  # PostgreSQL's default schema: where plain ASE puts its tables
CAMPAIGN_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"  # a PostgreSQL identifier that needs no quoting
_CAMPAIGN_RE = re.compile(CAMPAIGN_PATTERN)


def is_url(location: str | os.PathLike) -> bool:
    """True for a database server URL (``scheme://...``), False for a file path."""
    return "://" in os.fspath(location)


def resolve_location(path: str | os.PathLike, workdir: str | os.PathLike) -> str:
    """The database location to open: a URL unchanged, a file path joined to ``workdir`` (an absolute path stays)."""
    text = os.fspath(path)
    if is_url(text):
        return text
    return str(Path(workdir) / text)


def database_file(location: str | os.PathLike) -> Path | None:
    """The SQLite file of ``location``, or ``None`` for a server URL."""
    return None if is_url(location) else Path(location)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: the form shown in messages, logs and reports."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed URL (e.g. a bad port): show none of its user part
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    if password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def has_password(url: str) -> bool:
    """True when a URL carries a password (``scheme://user:password@host``)."""
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return "@" in url.partition("://")[2]


def check_campaign(name: str) -> str:
    """``name`` when it is a valid campaign name (lower-case letters, digits, ``_``; at most 63; not ``pg_*``)."""
    if (
        not isinstance(name, str)
        or not _CAMPAIGN_RE.match(name)
        or name.startswith("pg_")
        or name == "information_schema"
    ):
        raise DatabaseError(
            f"campaign {name!r} is not a valid campaign name: use 1-63 lower-case letters, digits and '_', "
            "starting with a letter or '_' (not 'pg_...'), e.g. 'cu_bulk_2024'"
        )
    return name


def default_campaign(workdir: str | os.PathLike) -> str:
    """The campaign of a run that names none: its work directory's name, made a valid campaign name
    (lower case, other characters as ``_``; ``run_`` in front of a leading digit)."""
    name = re.sub(r"[^a-z0-9_]+", "_", Path(workdir).name.lower()).strip("_") or "campaign"
    if name[0].isdigit() or name.startswith("pg_"):
        name = "run_" + name
    return check_campaign(name[:63])


def campaign_of(configured: str | None, workdir: str | os.PathLike) -> str:
    """The campaign a run uses: the configured one, else :func:`default_campaign` of its work directory."""
    return check_campaign(configured) if configured is not None else default_campaign(workdir)


__all__ = [
    "is_url",
    "resolve_location",
    "database_file",
    "redact_url",
    "has_password",
    "check_campaign",
    "default_campaign",
    "campaign_of",
    "DEFAULT_CAMPAIGN",
    "CAMPAIGN_PATTERN",
]
