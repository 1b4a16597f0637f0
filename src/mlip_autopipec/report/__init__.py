"""The report: figures of merit of a fitted potential (``build``, ``validate``, ``seeds``, ``properties``, ``plots``)
and the pages rendered from :class:`~mlip_autopipec.records.summary.RunSummary` through templates (``render``)."""
