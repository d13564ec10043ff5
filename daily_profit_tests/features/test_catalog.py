"""The catalog drives the output, the schema and the documentation, and versions them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from daily_profit.features import catalog as cat
from daily_profit.features.checks import check_columns
from daily_profit.features.schema import feature_schema, validate_features

DOCS = Path(__file__).resolve().parents[2] / "docs" / "feature_catalog.md"


def test_features_have_exactly_the_catalog_columns(built) -> None:
    assert built.features.columns == cat.output_columns()
    assert dict(built.features.schema) == dict(cat.output_schema())
    assert check_columns(built.features).passed


def test_every_row_carries_the_feature_set_version(built) -> None:
    assert built.features["feature_set_version"].unique().to_list() == [cat.feature_set_version()]


def test_catalog_entries_are_complete() -> None:
    for f in cat.catalog():
        assert f.family in cat.FAMILIES
        assert f.description.endswith(".") and f.unit
        # A nullable feature says when it is null; a required one has nothing to say.
        assert bool(f.null_when) == f.nullable, f.name
        if f.min_value is not None and f.max_value is not None:
            assert f.min_value <= f.max_value


def test_any_definition_change_changes_the_version() -> None:
    features = cat.catalog()
    base = cat.version_of(features, cat.FEATURE_CODE_VERSION)
    assert base == cat.feature_set_version()
    assert cat.version_of(features, cat.FEATURE_CODE_VERSION + "-next") != base
    first = features[0]
    for change in (
        {"name": first.name + "_x"},
        {"description": first.description + " More."},
        {"window": 7},
        {"unit": "EUR"},
        {"dtype": "int"},
        {"min_value": -1.0},
    ):
        edited = (dataclasses.replace(first, **change), *features[1:])
        assert cat.version_of(edited, cat.FEATURE_CODE_VERSION) != base, change


def test_committed_docs_page_is_generated_from_the_catalog() -> None:
    assert DOCS.read_text() == cat.render_markdown(), (
        "docs/feature_catalog.md is stale: "
        "uv run python -m daily_profit.features.catalog > docs/feature_catalog.md"
    )


def test_markdown_lists_every_feature_once() -> None:
    page = cat.render_markdown()
    for f in cat.catalog():
        assert page.count(f"| `{f.name}` |") == 1
    assert cat.feature_set_version() in page


def test_pandera_schema_accepts_a_real_build_and_rejects_a_broken_one(built) -> None:
    assert list(feature_schema().columns) == cat.output_columns()
    assert validate_features(built.features).passed
    broken = built.features.with_columns(
        pl.lit(1.5).alias("buy_share_20d"), pl.lit(None, dtype=pl.Float64).alias("pnl_1d")
    )
    result = validate_features(broken)
    assert not result.passed
    failing = {row["column"] for row in result.metadata["by_column"]}
    assert {"buy_share_20d", "pnl_1d"} <= failing
