"""the red-flag ruleset version each patient is on

Patients enrolled before this revision were scored by the newest ruleset then installed, sre version 2; they
are pinned to it, so installing a new version (sre v3, questionnaire sre-weekly v2) changes nobody's
questions or rules until an administrator moves them. NULL follows the newest installed version.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("ruleset_version", sa.Integer(), nullable=True))
    op.execute("UPDATE patients SET ruleset_version = 2")


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("ruleset_version")
