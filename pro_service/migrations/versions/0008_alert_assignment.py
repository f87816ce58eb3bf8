"""alert ownership: who an alert is assigned to, and since when (issue 14)

`alerts.assigned_to_id` names the nurse (or administrator) who owns the alert now; NULL means nobody has
taken it. Clearing the staff row leaves the alert unassigned rather than deleting it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_to_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_assigned_to_id_staff_users"),
            "staff_users",
            ["assigned_to_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_alerts_assigned_to_id_staff_users"), type_="foreignkey")
        batch_op.drop_column("assigned_at")
        batch_op.drop_column("assigned_to_id")
