"""The one driver: seed → pool → database → labels → split → export → fit → (active learning) → validate → report.

Modules: ``run`` (run_pipeline), ``context`` (RunContext, the step timer),
``steps`` (the cold start's steps), ``active_learning`` (the campaign and its
stop rules), ``generation`` (one generation's steps), ``fits`` (fit or reuse),
``state`` (config fingerprints), ``records`` (the typed records of a work
directory), ``migrate`` (reading records, older layouts), ``summary`` (the
report's summary), ``status`` and ``checks`` (for the CLI).
"""

from mlip_autopipec.pipeline.run import run_pipeline

__all__ = ["run_pipeline"]
