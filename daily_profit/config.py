"""The one place configuration comes from.

Every setting reads an environment variable (prefix ``DAILY_PROFIT_``) and falls back to an
embedded default, so a fresh clone runs with no configuration at all: a SQLite warehouse and a
local MLflow store under ``data/``, and the built-in sandbox in place of the real Risk API.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The sandbox accepts this key; it is not a secret, the real API's key comes from the environment.
SANDBOX_API_KEY = "sandbox-key"
SANDBOX_MARKER = "sandbox"
# Keys the masks of logins, trader ids and account ids (daily_profit.privacy). Public, so fit for
# the embedded demo only: production sets DAILY_PROFIT_IDENTITY_HASH_KEY to a long random secret.
DEMO_IDENTITY_HASH_KEY = "daily-profit-demo-identity-key"


# The sandbox's symbols and their classes; a deployment sets its own map.
DEFAULT_SYMBOL_CLASSES: dict[str, str] = {
    "EURUSD": "fx",
    "GBPUSD": "fx",
    "USDJPY": "fx",
    "XAUUSD": "metals",
    "NDX100": "indices",
    "SPX500": "indices",
    "US30": "indices",
    "BTCUSD": "crypto",
}


class Settings(BaseSettings):
    """Runtime settings. Unset means embedded default."""

    model_config = SettingsConfigDict(env_prefix="DAILY_PROFIT_", extra="ignore")

    data_dir: Path = Field(
        default=PROJECT_ROOT / "data",
        description="Folder for the embedded SQLite warehouse, MLflow store and exports.",
    )
    warehouse_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the warehouse; default a SQLite file under data_dir.",
    )
    risk_api_base_url: str = Field(
        default=SANDBOX_MARKER,
        description="Base URL of the Risk API, or 'sandbox' to start the built-in simulation.",
    )
    risk_api_key: SecretStr = Field(default=SecretStr(SANDBOX_API_KEY))
    identity_hash_key: SecretStr = Field(
        default=SecretStr(DEMO_IDENTITY_HASH_KEY),
        description="Secret of the keyed hash that masks logins, trader ids and account ids "
        "in metadata and logs; the default is public (demo only): set it in production, the "
        "same on every host so masks match.",
    )
    rate_limit_backend: Literal["file", "redis", "postgres"] = Field(
        default="file",
        description="Where the API key's allowance is shared: 'file' (every process on this "
        "machine), 'redis' or 'postgres' (every process on every host using the key).",
    )
    rate_limit_redis_url: SecretStr | None = Field(
        default=None,
        description="Redis URL of the shared allowance (backend 'redis'); a secret, it may "
        "embed a password.",
    )
    rate_limit_postgres_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL of the shared allowance (backend 'postgres'); default the "
        "warehouse's when that is PostgreSQL. A secret, it may embed a password.",
    )
    celery_broker_url: SecretStr | None = Field(
        default=None,
        description="Celery broker (RabbitMQ amqp://user:password@host:5672// or Redis "
        "redis://host:6379/0). Set: runs execute their steps on Celery workers (`./dp worker` "
        "on any host); unset: in the run's own processes. A secret, it may embed a password.",
    )
    step_execution: Literal["processes", "in_process"] = Field(
        default="processes",
        description="Without a Celery broker, where a run's steps execute: `processes`, one "
        "process per step (Dagster's multiprocess default: steps of a run run side by side), "
        "or `in_process`, every step in the run's own process one after the other (a laptop's "
        "`dagster dev`: a small run starts Python and loads the definitions once, not once "
        "per step).",
    )
    celery_result_backend_url: SecretStr | None = Field(
        default=None,
        description="Celery result backend; default rpc:// (over a RabbitMQ broker). With a "
        "Redis broker set it to a Redis URL. A secret, it may embed a password.",
    )
    dask_scheduler_address: str | None = Field(
        default=None,
        description="Dask scheduler (tcp://host:8786). Set: every XGBoost fit of training "
        "(profit_model, model_walk_forward) runs through xgboost.dask on its workers (`dask "
        "worker` on any host); unset: in the training step's own process.",
    )
    plans_csv_path: Path | None = Field(
        default=None,
        description="Plans CSV export; default the one the sandbox writes under data_dir.",
    )
    start_date: dt.date = Field(
        default=dt.date(2025, 1, 1),
        description="First trading date of the daily partitions.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default a SQLite store under data_dir.",
    )
    trading_weekdays: str = Field(
        default="mon,tue,wed,thu,fri",
        description="Weekdays that are trading sessions (comma separated, or a range mon-fri).",
    )
    trading_holidays: list[dt.date] = Field(
        default_factory=list,
        description="Dates that are not sessions although their weekday is, as a JSON list "
        '(\'["2025-12-25", "2026-01-01"]\'). Known ahead: configure a holiday before it.',
    )
    raw_quarantine_max_share: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="A raw source-day of at least raw_quarantine_min_records records fails its "
        "audit (and is not published) when more than this share of them is quarantined.",
    )
    raw_quarantine_min_records: int = Field(
        default=50,
        ge=1,
        description="Below this many records a source-day fails only when none of them is valid.",
    )
    automation_enabled: bool = Field(
        default=True,
        description="Start the automation, deadline and alert sensors RUNNING on a fresh "
        "instance. Off for a laptop session or a test that starts `dagster dev` for another "
        "reason.",
    )
    broker_timezone: str = Field(
        default="Etc/GMT-2",
        description="IANA time zone of the broker's trading day (MetaTrader servers: GMT+2).",
    )
    nightly_run_time: dt.time = Field(
        default=dt.time(0, 30),
        description="When, in the broker's zone, the nightly tick ingests the day that just "
        "closed (after the API's rollover).",
    )
    restatement_days: int = Field(
        default=3,
        ge=0,
        description="Trailing days re-ingested every night besides the new one; a day whose "
        "data changed is recomputed downstream, an unchanged one is not.",
    )
    predictions_deadline: dt.time = Field(
        default=dt.time(6, 0),
        description="By when, in the broker's zone, the predictions of the session that closed "
        "overnight must exist and have passed their checks.",
    )
    dagster_ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Base URL of the Dagster UI, for the run links in alerts.",
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack-compatible incoming webhook for alerts (a secret: it embeds a token).",
    )
    alert_smtp_host: str | None = Field(default=None, description="SMTP server for alert email.")
    alert_smtp_port: int = 25
    alert_smtp_username: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_starttls: bool = False
    alert_email_from: str = "daily-profit@localhost"
    alert_email_to: list[str] = Field(
        default_factory=list, description="Alert recipients, a JSON list: '[\"desk@firm.com\"]'."
    )
    risk_api_max_retry_after_s: float = Field(
        default=300.0,
        description="Longest Retry-After (seconds) the client honours on a 429; a longer ask "
        "is waited this long.",
    )
    risk_api_request_budget_s: float = Field(
        default=600.0,
        description="Time budget of one API request with its retries and waits (seconds).",
    )
    risk_api_fetch_budget_s: float = Field(
        default=1800.0,
        description="Time budget of one query paged through whole, re-reads included (seconds): "
        "a raw step's fetch. A Retry-After beyond what is left of it fails the request at once.",
    )
    risk_api_reread_max_passes: int = Field(
        default=4, description="Re-reads of a query that fell short of the API's total."
    )
    risk_api_reread_max_calls: int = Field(
        default=200, description="Most API calls the re-reads of one query may make."
    )
    risk_api_reread_max_s: float = Field(
        default=300.0, description="Most time (seconds) the re-reads of one query may take."
    )
    drift_feature_psi_threshold: float = Field(
        default=0.2,
        gt=0,
        description="A feature whose day's population stability index against the champion's "
        "training reference, in excess of a training day's own, reaches this counts as "
        "drifted (0.1-0.25 moderate, >0.25 large).",
    )
    drift_weighted_psi_threshold: float = Field(
        default=0.2,
        gt=0,
        description="A day drifts when its PSI in excess of a training day's own, weighted by "
        "the champion's feature importance, exceeds this: the features_not_drifted check "
        "warns, and the retrain sensor counts it.",
    )
    retrain_drift_days: int = Field(
        default=3,
        ge=1,
        description="The retrain sensor acts on drift only when the mean weighted PSI of the "
        "latest this many measured days (against the same champion) exceeds the threshold: "
        "not on one day's noise.",
    )
    retrain_cooldown_days: float = Field(
        default=3.0,
        ge=0,
        description="After requesting a retrain, the sensor asks again no sooner than this.",
    )
    retrain_cron: str = Field(
        default="0 4 * * 6",
        description="Cron of the weekly retraining schedule (train_profit_model).",
    )
    retrain_timezone: str | None = Field(
        default=None,
        description="IANA time zone of retrain_cron (default: broker_timezone).",
    )
    model_decay_rmse_margin: float = Field(
        default=0.05,
        ge=0,
        description="The champion has decayed when its RMSE over the 28-session window is "
        "worse than the best baseline's by more than this share (0.05: 5% worse).",
    )
    model_coverage_min: float = Field(
        default=0.85,
        ge=0,
        le=1,
        description="Lowest acceptable coverage of the 90% interval over the 28-session window.",
    )
    model_coverage_max: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="Highest acceptable coverage of the 90% interval over the 28-session window.",
    )
    model_decay_min_days: int = Field(
        default=10,
        ge=1,
        description="Days with outcomes the 28-session window needs before decay is judged.",
    )
    features_chunk_account_days: int = Field(
        default=1_000_000,
        ge=1,
        description="Account-days of raw_metrics_daily staging, features and labels compute "
        "and write at once in a range run (whole days, at least one): a year's backfill or a "
        "nightly tick of a large firm holds one chunk and its lookback in memory, never the "
        "whole history.",
    )
    desk_top_n: int = Field(
        default=20, ge=1, description="Accounts in the desk report's ranking and its changes."
    )
    desk_simulations: int = Field(
        default=20_000,
        ge=1_000,
        description="Simulated sessions behind the firm's next-session distribution.",
    )
    desk_backtest_simulations: int = Field(
        default=4_000,
        ge=500,
        description="Simulated sessions per known day when the report checks its firm interval.",
    )
    desk_dependence_days: int = Field(
        default=60,
        ge=1,
        description="Trailing days of realised outcomes the accounts' dependence is estimated on.",
    )
    desk_backtest_days: int = Field(
        default=30,
        ge=0,
        description="Latest known out-of-sample days the firm interval is checked against.",
    )
    desk_symbol_classes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SYMBOL_CLASSES),
        description="Asset class of each symbol (stdSymbol) for the exposure tables, as JSON; "
        "a symbol missing here is classed by the feature catalog's naming rules.",
    )
    desk_fallback_profit_share_pct: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description="Trader's profit share (%) for an account whose plan is not in the plans "
        "export (the plan's profitSharePct is used otherwise).",
    )
    promotion_mse_margin: float = Field(
        default=0.005,
        ge=0,
        description="A challenger replaces the champion only when its MSE is lower by at least "
        "this share of the champion's (0.005: 0.5%), significantly: the upper end of the "
        "day-block bootstrap interval of the relative difference lies below minus the margin.",
    )
    promotion_noninferiority_margin: float = Field(
        default=0.02,
        ge=0,
        description="A challenger (and the first champion) must be non-inferior to the best "
        "mean baseline on the same days: MSE at most this share above it, significantly.",
    )
    promotion_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="One-sided level of the promotion's paired tests (its intervals are "
        "1 - 2 x alpha).",
    )
    promotion_block_days: int = Field(
        default=5,
        ge=1,
        description="Length in days of the blocks the promotion's bootstrap resamples: "
        "consecutive days share the market, so they are drawn together.",
    )
    promotion_walk_forward_days: int = Field(
        default=60,
        ge=0,
        description="Promotion judges a challenger on the walk-forward days of its own method "
        "(hyperparameters fixed, retrained at each origin over the last origins of the "
        "history) covering at least this many labelled trading days where the history allows; "
        "0: on the challenger's test days only.",
    )
    walk_forward_step_days: int = Field(
        default=14,
        ge=1,
        description="The walk-forward backtest retrains every this many calendar days, and "
        "each model predicts the feature days until the next retraining.",
    )
    walk_forward_min_train_days: int = Field(
        default=56,
        ge=7,
        description="Calendar days of history before the walk-forward's first origin.",
    )
    sandbox_seed: int = 7
    sandbox_port: int = 8765
    sandbox_accounts: int = 300
    sandbox_days: int = 120
    sandbox_skilled_share: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Share of the simulated firm's traders who are skilled (edge of at least "
        "0.25 daily standard deviations). Unset: the tuned population (27% in expectation).",
    )
    sandbox_martingale_share: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Share of simulated traders who size up after a losing day (martingale).",
    )
    sandbox_weekend_activity: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="How likely a crypto trader trades on a weekend day, relative to a weekday.",
    )
    sandbox_regime_vol: tuple[float, float, float] = Field(
        default=(0.55, 1.0, 1.8),
        description="P&L volatility multipliers of the COMPRESSED, BALANCED and DISPERSED "
        'regimes (JSON in the environment: "[0.55, 1.0, 1.8]").',
    )
    sandbox_clock_start_offset_days: int = Field(
        default=0,
        ge=0,
        description="Days the sandbox holds back when it starts: its clock stands this many "
        "days before the last simulated day, and `./dp sandbox --advance N` moves it on.",
    )

    @property
    def resolved_warehouse_url(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"sqlite:///{self.data_dir / 'warehouse.sqlite'}"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.data_dir / 'mlflow.sqlite'}"

    @property
    def mlflow_artifact_dir(self) -> Path:
        return self.data_dir / "mlflow-artifacts"

    @property
    def resolved_plans_csv_path(self) -> Path:
        return self.plans_csv_path or self.data_dir / "plans.csv"

    @property
    def uses_sandbox(self) -> bool:
        return self.risk_api_base_url == SANDBOX_MARKER

    @property
    def sandbox_end_date(self) -> dt.date:
        """The last simulated day (the clock may stand before it: sandbox.clock)."""
        return self.start_date + dt.timedelta(days=self.sandbox_days - 1)


@cache
def get_settings() -> Settings:
    return Settings()
