"""The project implements the RMS contracts exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from core.contract import MODULE_OF_TABLE, contract_tables

SHARED_CONTRACTS = Path(__file__).resolve().parents[2] / "shared" / "contracts"
# The project's copy -> the upstream file it copies (../shared/contracts beside a working checkout).
UPSTREAM_NAME = {"rms_replica.sql": "rms_replica.sql", "README.upstream.md": "README.md"}


@pytest.mark.pure
def test_the_contract_copy_is_the_one_pinned_and_the_upstream_one_where_present(project_root):
    """The project's copy of the contracts (``contracts/``) is the reference: its files digest to
    what ``contracts/SHA256SUMS`` pins (an edit of the copy fails here, in every checkout), and
    an upstream copy beside the checkout (``../shared/contracts``) is byte for byte the same."""
    import hashlib

    pinned = dict(line.split()[::-1] for line in (project_root / "contracts" / "SHA256SUMS").read_text().splitlines())
    assert set(pinned) == set(UPSTREAM_NAME), "contracts/SHA256SUMS lists each copied contract file"
    for name, digest in pinned.items():
        ours = (project_root / "contracts" / name).read_bytes()
        assert hashlib.sha256(ours).hexdigest() == digest, (
            f"contracts/{name} differs from the contract it copies (SHA256SUMS); take the RMS team's new "
            "version whole and pin its digest, never edit the copy")
        upstream = SHARED_CONTRACTS / UPSTREAM_NAME[name]
        if upstream.exists():
            assert upstream.read_bytes() == ours, f"contracts/{name} differs from {upstream}"


def test_contract_parser_sees_every_table_and_module():
    tables = contract_tables()
    assert set(tables) == set(MODULE_OF_TABLE)
    assert tables["orders_orderitem"] == (
        "id", "order_id", "menu_item_id", "quantity", "unit_price", "has_modifiers", "created_at",
    )
    assert "email" in tables["customers_customerprofile"]


EXPECTED_PREDICTION_COLUMNS = [
    ("id", "bigint", "NO"),
    ("prediction_type", "text", "NO"),
    ("entity_type", "text", "NO"),
    ("entity_id", "bigint", "NO"),
    ("restaurant_id", "bigint", "YES"),
    ("target_start", "timestamp with time zone", "YES"),
    ("granularity", "text", "YES"),
    ("value", "double precision", "NO"),
    ("lower", "double precision", "YES"),
    ("upper", "double precision", "YES"),
    ("details", "jsonb", "NO"),
    ("model_name", "text", "NO"),
    ("model_version", "text", "NO"),
    ("method", "text", "NO"),
    ("run_id", "uuid", "NO"),
    ("generated_at", "timestamp with time zone", "NO"),
    ("expires_at", "timestamp with time zone", "NO"),
]


def test_m_l_predictions_has_contract_columns_key_and_index(predictions_engine):
    with predictions_engine.connect() as conn:
        cols = conn.execute(
            text(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = 'm_l_predictions' ORDER BY ordinal_position"
            )
        ).all()
        identity = conn.execute(
            text("SELECT is_identity FROM information_schema.columns WHERE table_name='m_l_predictions' AND column_name='id'")
        ).scalar()
        key = conn.execute(
            text(
                "SELECT i.indnullsnotdistinct, i.indisunique, "
                "array(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a "
                "      ON a.attrelid = i.indrelid AND a.attnum = k) AS cols "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'm_l_predictions_key'"
            )
        ).one()
        reader_index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'm_l_predictions_reader'")
        ).scalar()
        default = conn.execute(
            text("SELECT column_default FROM information_schema.columns WHERE table_name='m_l_predictions' AND column_name='details'")
        ).scalar()
    assert [tuple(c) for c in cols] == EXPECTED_PREDICTION_COLUMNS
    assert identity == "YES"
    assert key.indisunique and key.indnullsnotdistinct
    assert list(key.cols) == ["prediction_type", "entity_type", "entity_id", "target_start"]
    assert "(restaurant_id, prediction_type, target_start)" in reader_index
    assert default.startswith("'{}'")


def test_null_target_start_is_one_key_not_many(clean_predictions, predictions_engine):
    """NULLS NOT DISTINCT: a point-in-time prediction (churn, LTV) has one row per entity."""
    insert = text(
        "INSERT INTO m_l_predictions (prediction_type, entity_type, entity_id, value, model_name, "
        "model_version, method, run_id, generated_at, expires_at) VALUES ('churn', 'customer', 1, 0.5, "
        "'m', '1', 'model', gen_random_uuid(), now(), now())"
    )
    with predictions_engine.begin() as conn:
        conn.execute(insert)
    with pytest.raises(Exception, match="m_l_predictions_key"):
        with predictions_engine.begin() as conn:
            conn.execute(insert)
