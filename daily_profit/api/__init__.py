"""Risk API client (no Dagster below this line)."""
