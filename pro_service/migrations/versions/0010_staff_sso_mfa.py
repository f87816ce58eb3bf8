"""staff second factor (TOTP) and single sign-on identity (issue 15)

- `totp_secret`: the confirmed authenticator secret, encrypted (Fernet, key derived from SECRET_KEY; see
  services/mfa.py); `totp_pending_secret`: one being enrolled, encrypted the same way, until confirmed.
- `totp_confirmed_at`: when the second factor was turned on (NULL: none).
- `totp_last_step`: the 30-second time step of the last code accepted: a code is never accepted twice.
- `oidc_issuer`, `oidc_subject`: the identity provider's account this staff member signs in as (unique).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("totp_pending_secret", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("totp_confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("oidc_issuer", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("oidc_subject", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint("uq_staff_users_oidc_identity", ["oidc_issuer", "oidc_subject"])


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_staff_users_oidc_identity", type_="unique")
        batch_op.drop_column("oidc_subject")
        batch_op.drop_column("oidc_issuer")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_confirmed_at")
        batch_op.drop_column("totp_pending_secret")
        batch_op.drop_column("totp_secret")
