"""The sandbox's firm parameters: defaults reproduce today's firm, each knob moves its trait."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import polars.selectors as cs
import pytest

from daily_profit.config import Settings
from daily_profit.sandbox.__main__ import _parser
from daily_profit.sandbox.launcher import configured_simulation_config, ensure_sandbox
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SKILLED_EDGE, SandboxData, SimulationConfig, simulate

# Digests of every frame of the firm before the firm parameters existed (computed on commit
# 39c0e72 and on this code, equal), over the frames' NDJSON text with floats rounded to 6
# significant digits: the last bits of a float differ between two machines with the same code
# and data (numpy's vectorised math takes other paths on other CPUs: the unrounded digest of
# the same commit differed between two machines of this workplace), and polars' row hash
# differs too. A change of the simulation moves far more than the 6th digit.
SMALL_DIGEST = "0b1f05087fee84a38fd387b9e7020bf7dc5ad945d3f5a459fa139626edba5b44"
DEFAULT_DIGEST = "9725b1bcbbcf49ef46d98af97b5c9eaa31fd7a0245cf2faf491310e314956f4d"


def _digest(data: SandboxData) -> str:
    h = hashlib.sha256()
    for name, frame in sorted(data.frames().items()):
        h.update(name.encode())
        h.update(str(frame.schema).encode())
        h.update(frame.with_columns(cs.float().round_sig_figs(6)).write_ndjson().encode())
    return h.hexdigest()


def test_defaults_reproduce_todays_firm() -> None:
    assert _digest(simulate(SimulationConfig(seed=7, n_accounts=60, n_days=40))) == SMALL_DIGEST
    assert _digest(simulate(SimulationConfig())) == DEFAULT_DIGEST
    # The settings' and the CLI's defaults are the simulation's defaults.
    assert configured_simulation_config(Settings()) == SimulationConfig()
    args = _parser().parse_args([])
    assert (args.skilled_share, args.martingale_share, args.weekend_activity) == (None, 0.3, 0.35)
    assert args.regime_vol == SimulationConfig().regime_vol


def _traders(data: SandboxData) -> pl.DataFrame:
    """One row per trader's traits (accounts of a trader share them)."""
    return data.latent.unique(subset=["edge", "risk_pct", "p_active"])


@pytest.mark.parametrize("share", [0.1, 0.6])
def test_skilled_share_sets_the_share_of_skilled_traders(share: float) -> None:
    config = SimulationConfig(seed=3, n_accounts=1500, n_days=5, skilled_share=share)
    traders = _traders(simulate(config))
    # The edge is drawn before the martingale habit lowers it by 0.05: undo that to count.
    drawn = traders["edge"].to_numpy() + 0.05 * (traders["martingale"].to_numpy() > 0)
    observed = float(np.mean(drawn >= SKILLED_EDGE))
    assert abs(observed - share) < 4 * np.sqrt(share * (1 - share) / traders.height)
    assert config.expected_skilled_share() == pytest.approx(share)


def test_martingale_share_sets_the_share_of_martingale_traders() -> None:
    few = _traders(
        simulate(SimulationConfig(seed=3, n_accounts=1500, n_days=5, martingale_share=0.05))
    )
    many = _traders(
        simulate(SimulationConfig(seed=3, n_accounts=1500, n_days=5, martingale_share=0.8))
    )
    assert float((few["martingale"] > 0).mean()) < 0.1  # type: ignore[operator]
    assert float((many["martingale"] > 0).mean()) > 0.7  # type: ignore[operator]


def _weekend_trades(data: SandboxData) -> int:
    return data.metrics_daily.filter(pl.col("date").dt.weekday() >= 6)["numTrades"].sum()


def test_weekend_activity_moves_weekend_trading() -> None:
    base = SimulationConfig(seed=3, n_accounts=300, n_days=28)
    none = simulate(SimulationConfig(**{**base.__dict__, "weekend_activity": 0.0}))
    lots = simulate(SimulationConfig(**{**base.__dict__, "weekend_activity": 1.0}))
    assert _weekend_trades(none) == 0
    assert _weekend_trades(lots) > _weekend_trades(simulate(base)) > 0


def test_regime_vol_scales_the_pnl_of_its_regime() -> None:
    base = SimulationConfig(seed=3, n_accounts=300, n_days=60)
    calm = simulate(SimulationConfig(**{**base.__dict__, "regime_vol": (1.0, 1.0, 1.0)}))
    wild = simulate(SimulationConfig(**{**base.__dict__, "regime_vol": (0.3, 1.0, 3.0)}))

    def std_by_regime(data: SandboxData) -> dict[str, float]:
        """Standard deviation of the days' net P&L of active accounts, per day's regime."""
        days = data.metrics_daily.filter(pl.col("numTrades") > 0).join(
            data.regimes.select("date", "volatilityRegime"), on="date"
        )
        by = days.group_by("volatilityRegime").agg(pl.col("netProfit").std())
        return dict(zip(by["volatilityRegime"], by["netProfit"], strict=True))

    c, w = std_by_regime(calm), std_by_regime(wild)
    assert w["DISPERSED"] / w["COMPRESSED"] > 2 * c["DISPERSED"] / c["COMPRESSED"]


def test_firm_parameters_are_validated_and_passed_to_the_detached_sandbox() -> None:
    with pytest.raises(ValueError, match="skilled_share"):
        SimulationConfig(skilled_share=1.0)
    with pytest.raises(ValueError, match="regime_vol"):
        SimulationConfig(regime_vol=(1.0, 0.0, 2.0))
    config = SimulationConfig(skilled_share=0.4, martingale_share=0.1, regime_vol=(0.5, 1.0, 2.5))
    args = _parser().parse_args(config.firm_arguments())
    assert (args.skilled_share, args.martingale_share, args.regime_vol) == (
        0.4,
        0.1,
        (0.5, 1.0, 2.5),
    )


def test_a_running_sandbox_of_another_firm_is_refused(tmp_path) -> None:
    config = SimulationConfig(seed=1, n_accounts=6, n_days=3, martingale_share=0.1)
    with SandboxServer(simulate(config), rate_limit=None) as server:
        port = int(server.base_url.rstrip("/").rsplit(":", 1)[1])
        base = Settings(
            data_dir=tmp_path / "data",
            sandbox_port=port,
            sandbox_seed=1,
            sandbox_accounts=6,
            sandbox_days=3,
        )
        with pytest.raises(RuntimeError, match=r"martingale_share is 0\.1, configured 0\.3"):
            ensure_sandbox(base)
        same = base.model_copy(update={"sandbox_martingale_share": 0.1})
        assert ensure_sandbox(same) == server.base_url
