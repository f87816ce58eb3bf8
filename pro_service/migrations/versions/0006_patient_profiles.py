"""per-patient baseline and call information; the team's acute oncology number; RAG outcome on alerts

`patient_profiles` holds one row per patient: the baseline the rules compare with (NULL is "not recorded",
never "normal") and what the nurse needs on the call. Existing patients get no row: their baseline stays
unknown until someone records it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_profiles",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("chronic_neuropathy", sa.Boolean(), nullable=True),
        sa.Column("continence", sa.String(length=32), nullable=True),
        sa.Column("usual_pain", sa.Integer(), nullable=True),
        sa.Column("spinal_levels", sa.String(length=120), nullable=True),
        sa.Column("current_treatment", sa.String(length=500), nullable=True),
        sa.Column("bone_agent", sa.String(length=120), nullable=True),
        sa.Column("steroids", sa.String(length=200), nullable=True),
        sa.Column("metastatic_sites", sa.String(length=500), nullable=True),
        sa.Column("analgesia", sa.String(length=500), nullable=True),
        sa.Column("ceiling_of_care", sa.String(length=500), nullable=True),
        sa.Column("carer_name", sa.String(length=120), nullable=True),
        sa.Column("carer_relation", sa.String(length=60), nullable=True),
        sa.Column("carer_phone", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_profiles_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["staff_users.id"],
            name=op.f("fk_patient_profiles_updated_by_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient_profiles")),
    )
    with op.batch_alter_table("care_teams") as batch:
        batch.add_column(sa.Column("acute_oncology_phone", sa.String(length=32), nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("outcome_rag", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("outcome_rag")
    with op.batch_alter_table("care_teams") as batch:
        batch.drop_column("acute_oncology_phone")
    op.drop_table("patient_profiles")
