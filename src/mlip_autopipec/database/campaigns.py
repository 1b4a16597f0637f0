"""Who may drive a server campaign: the work directory a defaulted campaign belongs to, and one driver at a time.

A run that names no ``database.campaign`` uses its work directory's name
(:func:`~.location.default_campaign`).  Two runs in different folders of the
same name (``a/run1``, ``b/run1``) would then share one campaign by accident;
the first records its work directory in the campaign's settings, and the
second is refused with what to do.  Runs that name a campaign share it on
purpose and are not checked.

One driver at a time (:class:`CampaignDriverLock`): a run holds a session
advisory lock on its campaign (``pg_try_advisory_lock``, keyed by the
campaign's name) on a connection of its own for its whole life, so two work
directories sharing a campaign take turns instead of labelling the same
structures twice.  The server releases the lock when that connection ends,
however the run ends (``kill -9`` included).  The connection's
``application_name`` carries the holder's pid and host, which the refused
driver reads from ``pg_stat_activity``: nothing is written to hold the lock.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Self

from mlip_autopipec.database.location import check_campaign, redact_url
from mlip_autopipec.database.storage import Storage, explain_pg
from mlip_autopipec.exceptions import DatabaseError

KEY_WORKDIR = "workdir"  # in the project's settings: the work directory a defaulted campaign belongs to


def bind_to_workdir(store: Storage, workdir: str | os.PathLike) -> None:
    campaign = getattr(store, "campaign", None)
    if campaign is None:  # a SQLite file: one per work directory already
        return
    here = str(Path(workdir).resolve())
    if store.settings().get(KEY_WORKDIR) == here:
        return
    with store.write_tx():  # under the campaign's lock: two first runs cannot both record themselves
        settings = store.settings()
        owner = settings.get(KEY_WORKDIR)
        if owner is None:
            settings[KEY_WORKDIR] = here
            store.store_settings(settings)
        elif owner != here:
            raise DatabaseError(
                f"{store.location}: campaign '{campaign}' (named after the work directory) belongs to the run in "
                f"{owner}, "
                f"not to this one in {here}. Set database.campaign to a new name to keep the two apart, or to "
                f"'{campaign}' in both configs to share its structures on purpose."
            )


_DRIVER_CLASS = 0x6D6C6964  # "mlid": the first key of the drivers' lock (the writers' is storage._LOCK_CLASS)
_HOLDER_QUERY = (
    "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objid = hashtext(%s)::oid "
    "AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class CampaignDriverLock:
    """``with CampaignDriverLock(url, campaign):`` drives the campaign alone, or raises :class:`DatabaseError`
    naming the run that drives it (pid and host)."""

    def __init__(self, url: str, campaign: str) -> None:
        self.url = url  # only handed to psycopg2.connect; messages use the redacted form
        self.campaign = check_campaign(campaign)
        self.where = f"{redact_url(url)} (campaign {self.campaign})"
        self.con: Any = None

    def acquire(self) -> None:
        """Take the campaign's driver lock at once, or raise without waiting."""
        import psycopg2

        name = f"mlip-autopipec pid {os.getpid()} on {socket.gethostname()}"[:63]  # the server keeps 63 bytes
        try:
            con = psycopg2.connect(self.url, connect_timeout=30, application_name=name)
        except psycopg2.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DatabaseError(
                f"{self.where}: cannot connect to the database server ({first}). Check host, port, database name and "
                "user in the URL; the password comes from PGPASSWORD or ~/.pgpass (keep it out of the config)"
            ) from None
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_DRIVER_CLASS, self.campaign))
                if not cur.fetchone()[0]:
                    raise self._in_use(cur)
        except psycopg2.Error as exc:
            con.close()
            raise explain_pg(self.where, exc, "taking the campaign's driver lock") from exc
        except BaseException:
            con.close()
            raise
        self.con = con

    def _in_use(self, cur: Any) -> DatabaseError:
        cur.execute(_HOLDER_QUERY, (_DRIVER_CLASS, self.campaign))
        found = cur.fetchone()
        holder = "holder unknown"
        if found and found[0]:
            holder = found[0].removeprefix("mlip-autopipec ")
            if found[1] is not None:
                holder += f" since {found[1].isoformat(timespec='seconds')}"
        return DatabaseError(
            f"{self.where}: the campaign is driven by another run ({holder}): one campaign takes one driver at a "
            "time, so no structure is labelled twice. Wait for that run to finish or stop it, then run again"
        )

    def release(self) -> None:
        """Release the lock (closing its connection releases it on the server)."""
        if self.con is not None:
            self.con.close()
            self.con = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["bind_to_workdir", "CampaignDriverLock", "KEY_WORKDIR"]
