"""alert episodes: a notice counter and the previous alert of an episode

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("previous_alert_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_previous_alert_id_alerts"),
            "alerts",
            ["previous_alert_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_alerts_previous_alert_id_alerts"), type_="foreignkey")
        batch_op.drop_column("previous_alert_id")
        batch_op.drop_column("notice")
