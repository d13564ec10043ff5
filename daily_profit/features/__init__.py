"""Point-in-time staging, features and labels of funded accounts (pure polars/numpy, no Dagster).

- ``pipeline``: the entry points ``build_staging``, ``build_features``, ``build_labels``, the
  history each needs (``required_history_start``, ``label_horizon_end``) and the columns it
  reads (``STAGING_INPUTS``, ``FEATURE_INPUTS``, ``LABEL_INPUTS``).
- ``staging``: ``stg_accounts_daily`` (plan rules, balances, high-water mark, limit distances).
- ``grid``: the dense account x calendar-day grid the windowed families run on.
- ``daily_pnl``, ``behaviour``, ``exposure``, ``market``, ``rules``: one feature family each.
- ``labels``: ``labels_next_session`` (the P&L of each session's target span, to the next
  session) and what a day without a row means.
- ``catalog``: every feature's definition, the feature-set version and the Markdown page.
- ``checks`` and ``schema``: check functions and the pandera schema generated from the catalog.
"""
