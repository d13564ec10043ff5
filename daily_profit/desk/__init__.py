"""The desk report: what the risk desk reads every morning (pure: polars and numpy, no Dagster).

``ranking``: the accounts ranked by risk and what changed since yesterday; ``firm``: the firm's
next-session P&L and payout distribution from the per-account predictions with their shared
dependence; ``exposure``: open positions by symbol, asset class and trader; ``report``: the
tables together, written as CSV and Parquet; ``plots``: its figures.
"""
