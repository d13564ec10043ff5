"""The sandbox: a seeded simulation of a prop firm served as the Risk API on loopback.

* :mod:`.simulation` - ``simulate(SimulationConfig(...)) -> SandboxData`` (pure numpy/polars).
* :mod:`.server` - ``SandboxServer(data, ...)``: the contract's endpoints over HTTP.
* :mod:`.faults` - ``FaultConfig`` and the ``X-Sandbox-Faults`` request header.

``python -m daily_profit.sandbox --help`` runs it alone.
"""

from daily_profit.sandbox.faults import FAULTS_HEADER, FaultConfig
from daily_profit.sandbox.server import RateLimit, SandboxServer, ServerStats
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, oracle_report, simulate

__all__ = [
    "FAULTS_HEADER",
    "FaultConfig",
    "RateLimit",
    "SandboxData",
    "SandboxServer",
    "ServerStats",
    "SimulationConfig",
    "oracle_report",
    "simulate",
]
