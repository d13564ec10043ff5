"""A snapshot of the code location: what the UI lists and what runs by itself.

A change to an asset key, a check, a job, a schedule or a sensor (or its default status) shows
here first; update the snapshot deliberately when the change is meant.
"""

import ast
import inspect
from pathlib import Path

import dagster as dg

from daily_profit.definitions import defs

ASSETS = {
    "raw_plans",
    "raw_metrics_alltime",
    "raw_metrics_daily",
    "raw_metrics_hourly",
    "raw_trades_closed",
    "raw_trades_open",
    "raw_regimes_daily",
    "stg_accounts_daily",
    "account_features_daily",
    "labels_next_session",
    "account_performance_summary",
    "profit_model",
    "model_walk_forward",
    "daily_predictions",
    "prediction_outcomes",
    "model_performance",
    "feature_drift",
    "desk_report",
}
BLOCKING_RAW = {
    "schema_valid",
    "natural_key_unique",
    "complete_against_api",
    "quarantine_share_in_bounds",
    "schema_not_drifted",
    "day_published",
}
SENSORS = {
    "daily_profit_automation": dg.DefaultSensorStatus.RUNNING,
    "daily_profit_alerts": dg.DefaultSensorStatus.RUNNING,
    "daily_profit_predictions_deadline": dg.DefaultSensorStatus.RUNNING,
    "retrain_on_drift_or_decay": dg.DefaultSensorStatus.RUNNING,
}


def test_the_assets_and_their_automation():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS
    automated = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition
    }
    # Everything runs by itself but the model (a schedule and a sensor decide) and the
    # walk-forward backtest (on demand: it trains once per origin).
    assert automated == ASSETS - {"profit_model", "model_walk_forward"}


def test_the_predictions_wait_on_a_registered_champion_not_on_the_decision():
    # The decision is a record; what blocks is whether a champion is registered, a check a
    # person can execute again after promoting a version by hand.
    graph = defs.resolve_asset_graph()
    checks = {
        c.name: graph.get(c).blocking
        for c in graph.asset_check_keys
        if c.asset_key == dg.AssetKey("profit_model")
    }
    assert checks == {"champion_promotion": False, "champion_registered": True}


def test_every_raw_daily_source_declares_its_blocking_checks():
    graph = defs.resolve_asset_graph()
    for table in ("raw_metrics_daily", "raw_trades_closed", "raw_regimes_daily"):
        checks = {
            c.name: graph.get(c).blocking
            for c in graph.asset_check_keys
            if c.asset_key == dg.AssetKey(table)
        }
        assert {name for name, blocking in checks.items() if blocking} == BLOCKING_RAW, table
        assert checks["row_count_in_line"] is False
    for layer in ("stg_accounts_daily", "account_features_daily", "labels_next_session"):
        key = dg.AssetCheckKey(dg.AssetKey(layer), "raw_inputs_published")
        assert graph.get(key).blocking


def test_jobs_schedules_and_sensors_with_their_defaults():
    # Resolving the repository is what the UI and the daemon do: it refuses, for example, a job
    # named like an asset.
    jobs = defs.get_repository_def().get_all_jobs()
    assert {j.name for j in jobs if not j.name.startswith("__")} >= {
        "raw_daily",
        "raw_reference",
        "features",
        "train_profit_model",
        "predictions",
        "score_outcomes",
        "morning_report",
        "walk_forward",
    }
    assert {s.name: s.default_status for s in defs.sensors} == SENSORS
    assert {s.name for s in defs.schedules} == {"weekly_retrain"}


def test_every_warehouse_backed_asset_shows_its_columns_and_what_they_mean():
    from daily_profit.features.catalog import catalog

    graph = defs.resolve_asset_graph()
    without_table = {
        "profit_model",
        "model_performance",
        "account_performance_summary",
        "desk_report",
        "model_walk_forward",
    }
    for key in ASSETS - without_table:
        schema = graph.get(dg.AssetKey(key)).metadata.get("dagster/column_schema")
        assert schema is not None and schema.columns, key
        assert not {c.name for c in schema.columns} & {"_run_id", "_loaded_at"}, key
    features = graph.get(dg.AssetKey("account_features_daily")).metadata["dagster/column_schema"]
    described = {c.name: c.description for c in features.columns}
    for feature in catalog():
        assert described[feature.name] and feature.description in described[feature.name]
    trades = graph.get(dg.AssetKey("raw_trades_closed")).metadata["dagster/column_schema"]
    profit = next(c for c in trades.columns if c.name == "profit")
    assert profit.description == "API field profit" and profit.constraints.nullable is False


def test_the_desk_reads_what_each_prediction_and_outcome_column_means():
    graph = defs.resolve_asset_graph()
    for key in (
        "stg_accounts_daily",
        "daily_predictions",
        "prediction_outcomes",
        "labels_next_session",
    ):
        schema = graph.get(dg.AssetKey(key)).metadata["dagster/column_schema"]
        assert all(c.description for c in schema.columns), [
            c.name for c in schema.columns if not c.description
        ]


def test_the_code_location_module_holds_one_definitions():
    """`dagster dev -m daily_profit.definitions` refuses a module with more than one
    Definitions at its top level: the layers' are imported as modules, not as objects."""
    import daily_profit.definitions as location

    assert [n for n, v in vars(location).items() if isinstance(v, dg.Definitions)] == ["defs"]


def _asset_key_constants() -> dict[str, dg.AssetKey]:
    from daily_profit.defs import asset_keys

    return {n: v for n, v in vars(asset_keys).items() if isinstance(v, dg.AssetKey)}


def test_every_asset_has_one_key_constant_named_after_it():
    keys = _asset_key_constants()
    graph_keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert set(keys.values()) == graph_keys
    for name, key in keys.items():
        assert name == key.to_python_identifier().upper(), name


def _table_parameters(call: ast.Call, local_signatures: dict[str, list[str]]) -> set[int | str]:
    """The positions and keywords of ``call`` that take a warehouse table (a parameter named
    ``table`` or ``tables``): a Warehouse method, or a helper of the same module."""
    from daily_profit.warehouse.io import Warehouse

    if isinstance(call.func, ast.Attribute) and callable(getattr(Warehouse, call.func.attr, None)):
        params = list(inspect.signature(getattr(Warehouse, call.func.attr)).parameters)[1:]
    elif isinstance(call.func, ast.Name) and call.func.id in local_signatures:
        params = local_signatures[call.func.id]
    else:
        return set()
    return {p for i, name in enumerate(params) if name in ("table", "tables") for p in (i, name)}


def _local_signatures(tree: ast.Module) -> dict[str, list[str]]:
    """Parameter names of the module's functions and classes (their __init__, without self)."""
    out: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    out[node.name] = [a.arg for a in item.args.args][1:]
    return out


def _allowed_literals(tree: ast.Module) -> set[int]:
    """ids of the string constants that may spell an asset's name: docstrings, f-string parts,
    an asset decorator's own ``name=``, and table names passed where a table is asked for."""
    allowed: set[int] = set()
    signatures = _local_signatures(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            allowed.add(id(node.value))
        elif isinstance(node, ast.JoinedStr):
            allowed.update(id(v) for v in ast.walk(node))
        elif isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call):
                    allowed.update(id(k.value) for k in decorator.keywords if k.arg == "name")
        elif isinstance(node, ast.Call):
            takes_table = _table_parameters(node, signatures)
            args = [a for i, a in enumerate(node.args) if i in takes_table]
            args += [k.value for k in node.keywords if k.arg in takes_table]
            for arg in args:
                allowed.update(id(v) for v in ast.walk(arg))
    return allowed


def test_no_module_spells_an_asset_key_outside_asset_keys():
    """A renamed asset is renamed in asset_keys.py: the definitions, the CLI and the operations
    refer to an asset through its constant, never its name typed again."""
    import daily_profit

    names = {k.to_user_string() for k in _asset_key_constants().values()}
    package = Path(daily_profit.__file__).parent
    files = [
        *(package / "defs").rglob("*.py"),
        package / "cli.py",
        *(package / "operations").rglob("*.py"),
    ]
    offending = []
    for path in sorted(files):
        if path.name == "asset_keys.py" and path.parent.name == "defs":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        allowed = _allowed_literals(tree)
        offending += [
            f"{path.relative_to(package.parent)}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in allowed
        ]
    assert not offending, "\n".join(offending)
