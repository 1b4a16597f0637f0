"""The one driver: seed → pool → database → labels → split → export → fit → (active learning) → validate → report.

Modules: ``run`` (run_pipeline), ``context`` (RunContext, the step timer),
``cold_start`` (the cold start's steps), ``active_learning`` (package:
``policy`` its decisions, ``steps`` one generation's steps, ``loop`` the
generations and their stop rules, ``md_runs`` the MD runs of a generation and
their files), ``fits`` (fit or reuse),
``state`` (config fingerprints, ``--force``'s fresh start), ``origin`` (whether
the database may serve this run), ``lock`` (the run's locks), ``summary`` (the report step; the typed
records it writes live in :mod:`mlip_autopipec.records`), ``status`` and
``checks`` (for the CLI).
"""

from mlip_autopipec.pipeline.run import run_pipeline

__all__ = ["run_pipeline"]
