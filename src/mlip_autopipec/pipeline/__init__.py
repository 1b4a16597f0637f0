"""The end-to-end run: seed → pool → database → labels → split → export → fit → validate → report."""

from mlip_autopipec.pipeline.run import run_pipeline

__all__ = ["run_pipeline"]
