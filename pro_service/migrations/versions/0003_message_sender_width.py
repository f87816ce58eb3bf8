"""messages.from_number wide enough for a Messaging Service SID

With only TWILIO_MESSAGING_SERVICE_SID configured, an outbound row names the service (MG + 32 hex digits,
34 characters) as its sender until Twilio picks a number from the service's pool; VARCHAR(32) refused it on
PostgreSQL. 64 also fits Twilio's channel addresses (`whatsapp:+…`) and matches `twilio_sid`.

On PostgreSQL widening a VARCHAR is a catalogue change (no table rewrite, a brief ACCESS EXCLUSIVE lock).
SQLite does not enforce VARCHAR lengths; batch mode recreates the table there so its declared type matches.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column(
            "from_number",
            existing_type=sa.String(length=32),
            type_=sa.String(length=64),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Fails (as it should) while a row holds a sender longer than 32 characters.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column(
            "from_number",
            existing_type=sa.String(length=64),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
