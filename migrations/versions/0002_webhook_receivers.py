"""Webhook deliveries know their receiver, their attempt budget and their last error.

Revision ID: 0002_webhook_receivers
Revises: 0001
Create Date: 2026-11-23

Why each column:
- ``receiver``: secrets live in settings by receiver name (and rotate), so every attempt signs
  with the receiver's current secrets; the URL alone cannot find them.
- ``attempt_limit``: the attempt number at which retrying stops. An admin's redelivery raises it
  by another ``max_attempts`` while attempt numbers keep counting, so the history stays whole.
- ``last_error`` and ``delivered_at``: what an operator asks first, without joining attempts.
"""

from alembic import op

revision = "0002_webhook_receivers"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE ml_webhook_delivery
            ADD COLUMN receiver      text NOT NULL DEFAULT 'default',
            ADD COLUMN attempt_limit integer NOT NULL DEFAULT 8,
            ADD COLUMN last_error    text,
            ADD COLUMN delivered_at  timestamptz;
        CREATE INDEX ml_webhook_delivery_run ON ml_webhook_delivery (run_id, receiver);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS ml_webhook_delivery_run;
        ALTER TABLE ml_webhook_delivery
            DROP COLUMN IF EXISTS delivered_at,
            DROP COLUMN IF EXISTS last_error,
            DROP COLUMN IF EXISTS attempt_limit,
            DROP COLUMN IF EXISTS receiver;
        """
    )
