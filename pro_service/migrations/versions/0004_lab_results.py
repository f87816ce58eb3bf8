"""lab results from the hospital's systems (FHIR Observation, HL7 v2 ORU^R01)

One row per version of a result: an amended, corrected or entered-in-error version replaces the earlier one
(`replaced_by_id`) or withdraws its value (`withdrawn_at`); nothing is deleted. The same content for the same
result is stored once (uq_lab_results_version). The new API-token role `integration` needs no change here:
roles are stored as strings (models._enum).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column(
            "source", sa.Enum("fhir", "hl7", name="labsource", native_enum=False, length=32), nullable=False
        ),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "preliminary",
                "final",
                "amended",
                "corrected",
                "entered-in-error",
                name="labstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("canonical_value", sa.Float(), nullable=True),
        sa.Column("canonical_unit", sa.String(length=16), nullable=False),
        sa.Column("reference_range", sa.String(length=120), nullable=True),
        sa.Column("interpretation", sa.String(length=16), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("derived", sa.Boolean(), nullable=False),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_lab_results_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["lab_results.id"],
            name=op.f("fk_lab_results_replaced_by_id_lab_results"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_results")),
        sa.UniqueConstraint("source", "source_key", "code", "content_hash", name="uq_lab_results_version"),
    )
    with op.batch_alter_table("lab_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lab_results_patient_effective", ["patient_id", "effective_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("lab_results", schema=None) as batch_op:
        batch_op.drop_index("ix_lab_results_patient_effective")
    op.drop_table("lab_results")
