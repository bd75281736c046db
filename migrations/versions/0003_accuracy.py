"""Prediction history, realised accuracy, drift alerts, and what the run report needs.

Revision ID: 0003_accuracy
Revises: 0002_webhook_receivers
Create Date: 2026-11-23

Why each table (docs/accuracy.md):
- ``ml_prediction_history``: ``m_l_predictions`` keeps only the newest prediction per target, so
  what an earlier run said about a day is gone by the time the day has passed. The writer appends
  every scored type's rows here in the same transaction that replaces them there. Append-only
  (rows of a re-run of the same run replace themselves, nothing else is ever updated), compact
  (only what scoring needs: float4 values, no details, the entity type implied by the type), and
  pruned by ``accuracy.history_retention_days``.
- ``ml_accuracy``: one row per scoring run, type, restaurant (NULL = chain-wide) and horizon
  bucket: what "realised accuracy over time" is drawn from.
- ``ml_drift_alert``: each degradation or input-drift alert a run raised, and the types it made
  the next run retrain.
- ``ml_run`` gains the alerts, retrain list, accuracy summary, report path and time per step the
  run record and the completion webhook carry; ``ml_run_shard`` gains time per unit.

No foreign keys to ``ml_run``: the tests (and admins) truncate run records on their own.
"""

from alembic import op

revision = "0003_accuracy"
down_revision = "0002_webhook_receivers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ml_prediction_history (
            run_id          uuid NOT NULL,
            as_of           timestamptz NOT NULL,
            prediction_type text NOT NULL,
            entity_id       bigint NOT NULL,
            restaurant_id   bigint,
            target_start    timestamptz,
            value           real NOT NULL,
            lower           real,
            upper           real,
            model_name      text NOT NULL,
            model_version   text NOT NULL,
            method          text NOT NULL,
            CONSTRAINT ml_prediction_history_key UNIQUE NULLS NOT DISTINCT
                (run_id, prediction_type, entity_id, target_start)
        );
        CREATE INDEX ml_prediction_history_target
            ON ml_prediction_history (prediction_type, target_start);
        CREATE INDEX ml_prediction_history_as_of ON ml_prediction_history (as_of);

        CREATE TABLE ml_accuracy (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id          uuid NOT NULL,
            as_of           timestamptz NOT NULL,
            prediction_type text NOT NULL,
            restaurant_id   bigint,
            horizon         text NOT NULL,
            window_start    timestamptz NOT NULL,
            window_end      timestamptz NOT NULL,
            n               integer NOT NULL,
            actual_total    double precision,
            predicted_total double precision,
            wape            double precision,
            mae             double precision,
            bias            double precision,
            coverage80      double precision,
            n_interval      integer NOT NULL DEFAULT 0,
            backtest_wape   double precision,
            backtest_coverage80 double precision,
            excluded        jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ml_accuracy_key UNIQUE NULLS NOT DISTINCT
                (run_id, prediction_type, restaurant_id, horizon)
        );
        CREATE INDEX ml_accuracy_over_time ON ml_accuracy (prediction_type, restaurant_id, as_of);

        CREATE TABLE ml_drift_alert (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id          uuid NOT NULL,
            kind            text NOT NULL,
            signal          text NOT NULL,
            prediction_type text,
            restaurant_id   bigint,
            observed        double precision,
            reference       double precision,
            threshold       double precision,
            retrain         jsonb NOT NULL DEFAULT '[]'::jsonb,
            message         text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ml_drift_alert_kind_check CHECK (kind IN ('degradation', 'input_drift')),
            CONSTRAINT ml_drift_alert_key UNIQUE NULLS NOT DISTINCT
                (run_id, kind, signal, prediction_type, restaurant_id)
        );
        CREATE INDEX ml_drift_alert_run ON ml_drift_alert (run_id);

        ALTER TABLE ml_run
            ADD COLUMN alerts       jsonb NOT NULL DEFAULT '[]'::jsonb,
            ADD COLUMN retrain      jsonb NOT NULL DEFAULT '[]'::jsonb,
            ADD COLUMN accuracy     jsonb NOT NULL DEFAULT '{}'::jsonb,
            ADD COLUMN step_seconds jsonb NOT NULL DEFAULT '{}'::jsonb,
            ADD COLUMN report_path  text;
        ALTER TABLE ml_run_shard
            ADD COLUMN step_seconds jsonb NOT NULL DEFAULT '{}'::jsonb;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE ml_run_shard DROP COLUMN IF EXISTS step_seconds;
        ALTER TABLE ml_run
            DROP COLUMN IF EXISTS report_path,
            DROP COLUMN IF EXISTS step_seconds,
            DROP COLUMN IF EXISTS accuracy,
            DROP COLUMN IF EXISTS retrain,
            DROP COLUMN IF EXISTS alerts;
        DROP TABLE IF EXISTS ml_drift_alert;
        DROP TABLE IF EXISTS ml_accuracy;
        DROP TABLE IF EXISTS ml_prediction_history;
        """
    )
