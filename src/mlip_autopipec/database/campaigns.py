"""Which work directory a server campaign named after its work directory belongs to.

A run that names no ``database.campaign`` uses its work directory's name
(:func:`~.location.default_campaign`).  Two runs in different folders of the
same name (``a/run1``, ``b/run1``) would then share one campaign by accident;
the first records its work directory in the campaign's settings, and the
second is refused with what to do.  Runs that name a campaign share it on
purpose and are not checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlip_autopipec.database.storage import Storage
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
                f"{store.location}: campaign '{campaign}' (named after the work directory) belongs to the run in {owner}, "
                f"not to this one in {here}. Set database.campaign to a new name to keep the two apart, or to "
                f"'{campaign}' in both configs to share its structures on purpose."
            )


__all__ = ["bind_to_workdir", "KEY_WORKDIR"]
