"""Dagster wiring only: one folder per layer, assets and their checks side by side."""
