"""m_l_predictions (the RMS contract), run records, model registry, webhook deliveries.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Plain SQL on purpose: the contract is written in PostgreSQL terms (identity, jsonb,
UNIQUE NULLS NOT DISTINCT, which needs PostgreSQL 15+), and reviewing the DDL here against
docs/predictions.md should need no knowledge of SQLAlchemy.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# The schema as one DDL script (a module constant: it is data, not logic).
SCHEMA = (
        """
        CREATE TABLE m_l_predictions (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            prediction_type text NOT NULL,
            entity_type     text NOT NULL,
            entity_id       bigint NOT NULL,
            restaurant_id   bigint,
            target_start    timestamptz,
            granularity     text,
            value           double precision NOT NULL,
            lower           double precision,
            upper           double precision,
            details         jsonb NOT NULL DEFAULT '{}'::jsonb,
            model_name      text NOT NULL,
            model_version   text NOT NULL,
            method          text NOT NULL,
            run_id          uuid NOT NULL,
            generated_at    timestamptz NOT NULL,
            expires_at      timestamptz NOT NULL,
            CONSTRAINT m_l_predictions_key UNIQUE NULLS NOT DISTINCT
                (prediction_type, entity_type, entity_id, target_start),
            CONSTRAINT m_l_predictions_method_check
                CHECK (method IN ('model', 'previous_model', 'rule', 'average')),
            CONSTRAINT m_l_predictions_granularity_check
                CHECK (granularity IS NULL OR granularity IN ('hour', 'day'))
        );
        CREATE INDEX m_l_predictions_reader
            ON m_l_predictions (restaurant_id, prediction_type, target_start);
        CREATE INDEX m_l_predictions_run ON m_l_predictions (run_id);

        CREATE TABLE ml_run (
            id              uuid PRIMARY KEY,
            schedule        text NOT NULL,
            as_of           timestamptz NOT NULL,
            status          text NOT NULL,
            trigger         text NOT NULL DEFAULT 'cli',
            restaurant_ids  jsonb NOT NULL DEFAULT '[]'::jsonb,
            prediction_types jsonb NOT NULL DEFAULT '[]'::jsonb,
            started_at      timestamptz NOT NULL DEFAULT now(),
            heartbeat_at    timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz,
            rows_written    jsonb NOT NULL DEFAULT '{}'::jsonb,
            rows_skipped    jsonb NOT NULL DEFAULT '{}'::jsonb,
            modules_skipped jsonb NOT NULL DEFAULT '{}'::jsonb,
            messages        jsonb NOT NULL DEFAULT '[]'::jsonb,
            failed          jsonb NOT NULL DEFAULT '[]'::jsonb,
            error           text,
            CONSTRAINT ml_run_status_check
                CHECK (status IN ('running', 'succeeded', 'partial', 'failed'))
        );
        CREATE INDEX ml_run_schedule_started ON ml_run (schedule, started_at DESC);

        CREATE TABLE ml_run_shard (
            run_id          uuid NOT NULL REFERENCES ml_run (id) ON DELETE CASCADE,
            shard_no        integer NOT NULL,
            restaurant_ids  jsonb NOT NULL,
            status          text NOT NULL,
            attempts        integer NOT NULL DEFAULT 0,
            started_at      timestamptz,
            finished_at     timestamptz,
            rows_written    jsonb NOT NULL DEFAULT '{}'::jsonb,
            rows_skipped    jsonb NOT NULL DEFAULT '{}'::jsonb,
            modules_skipped jsonb NOT NULL DEFAULT '{}'::jsonb,
            messages        jsonb NOT NULL DEFAULT '[]'::jsonb,
            error           text,
            PRIMARY KEY (run_id, shard_no),
            CONSTRAINT ml_run_shard_status_check
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed'))
        );

        CREATE TABLE ml_model_registry (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name            text NOT NULL,
            version         text NOT NULL,
            prediction_type text NOT NULL,
            artifact_path   text NOT NULL,
            sha256          text NOT NULL,
            training_start  timestamptz,
            training_end    timestamptz,
            metrics         jsonb NOT NULL DEFAULT '{}'::jsonb,
            params          jsonb NOT NULL DEFAULT '{}'::jsonb,
            status          text NOT NULL DEFAULT 'active',
            run_id          uuid,
            created_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ml_model_registry_name_version UNIQUE (name, version),
            CONSTRAINT ml_model_registry_status_check
                CHECK (status IN ('candidate', 'active', 'retired', 'rejected'))
        );
        CREATE INDEX ml_model_registry_type_created
            ON ml_model_registry (prediction_type, created_at DESC);

        CREATE TABLE ml_webhook_delivery (
            id              text PRIMARY KEY,
            event_type      text NOT NULL,
            run_id          uuid,
            url             text NOT NULL,
            payload         text NOT NULL,
            status          text NOT NULL DEFAULT 'pending',
            attempt_count   integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ml_webhook_delivery_status_check
                CHECK (status IN ('pending', 'delivered', 'failed', 'exhausted'))
        );
        CREATE INDEX ml_webhook_delivery_due ON ml_webhook_delivery (status, next_attempt_at);

        CREATE TABLE ml_webhook_attempt (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            delivery_id     text NOT NULL REFERENCES ml_webhook_delivery (id) ON DELETE CASCADE,
            attempt_no      integer NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz,
            status          text NOT NULL DEFAULT 'pending',
            response_status integer,
            response_body   text,
            error           text,
            duration_ms     integer,
            CONSTRAINT ml_webhook_attempt_unique UNIQUE (delivery_id, attempt_no)
        );
        """
)


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS ml_webhook_attempt;
        DROP TABLE IF EXISTS ml_webhook_delivery;
        DROP TABLE IF EXISTS ml_model_registry;
        DROP TABLE IF EXISTS ml_run_shard;
        DROP TABLE IF EXISTS ml_run;
        DROP TABLE IF EXISTS m_l_predictions;
        """
    )
