"""Pydantic models for every configuration section (one module per section)."""
