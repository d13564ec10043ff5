"""From the Risk API to the raw warehouse tables (no Dagster here)."""
