"""``make_oracle``: an oracle from its validated configuration."""

from __future__ import annotations

from mlip_autopipec.config.loader import require_config
from mlip_autopipec.config.schemas.oracle import (
    ASEOracleConfig,
    EMTOracleConfig,
    EspressoOracleConfig,
    FoundationModelOracleConfig,
    GPAWOracleConfig,
    OracleConfig,
)
from mlip_autopipec.oracle.base import Oracle


def make_oracle(config: OracleConfig | Oracle | None = None) -> Oracle:
    """Build the oracle an :data:`~mlip_autopipec.config.schemas.oracle.OracleConfig` describes.

    ``config`` is a validated model (e.g. ``EMTOracleConfig()``, or a mapping passed
    through ``mlip_autopipec.config.validate_config(OracleConfig, data)`` first), an
    :class:`Oracle` (returned as is) or None (EMT, the embedded default).
    """
    if isinstance(config, Oracle):
        return config
    cfg = EMTOracleConfig() if config is None else require_config(config, OracleConfig, "make_oracle")
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
    if isinstance(cfg, FoundationModelOracleConfig):
        from mlip_autopipec.oracle.foundation import FoundationModelOracle

        return FoundationModelOracle(cfg)
    raise TypeError(f"unhandled oracle configuration {type(cfg).__name__}")  # pragma: no cover - the union is closed
