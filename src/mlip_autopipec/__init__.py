"""mlip-autopipec: from a crystal and a DFT setup to a fitted, validated ACE potential."""

__version__ = "0.1.0"
