"""``make_oracle``: an oracle from its validated configuration (or the equivalent mapping)."""

from __future__ import annotations

from typing import Any

from mlip_autopipec.config.schemas.oracle import (
    ASEOracleConfig,
    EMTOracleConfig,
    EspressoOracleConfig,
    GPAWOracleConfig,
    validate_oracle_config,
)
from mlip_autopipec.oracle.base import Oracle


def make_oracle(config: Any = None) -> Oracle:
    """Build the oracle an :data:`~mlip_autopipec.config.schemas.oracle.OracleConfig` describes.

    ``config`` may be a validated model, a mapping (validated here; a bad one is a
    :class:`ConfigurationError` naming the field), an :class:`Oracle` (returned
    as is) or None (EMT, the embedded default).
    """
    if isinstance(config, Oracle):
        return config
    cfg = validate_oracle_config({} if config is None else config)
    if isinstance(cfg, EMTOracleConfig):
        from mlip_autopipec.oracle.emt import EMTOracle

        return EMTOracle(cfg)
    if isinstance(cfg, EspressoOracleConfig):
        from mlip_autopipec.oracle.espresso import EspressoOracle

        return EspressoOracle(cfg)
    if isinstance(cfg, GPAWOracleConfig):
        from mlip_autopipec.oracle.gpaw import GPAWOracle

        return GPAWOracle(cfg)
    if isinstance(cfg, ASEOracleConfig):
        from mlip_autopipec.oracle.generic import ASEOracle

        return ASEOracle(cfg)
    raise TypeError(f"unhandled oracle configuration {type(cfg).__name__}")  # pragma: no cover - the union is closed
