"""API token owners: every token belongs to a staff member or to a named integration client (issue 15)

A token now has exactly one owner:

- `staff_id`: a person. The token acts with that person's *current* role and care teams and stops working
  when the person is deactivated. Deleting the staff row deletes their tokens (ON DELETE CASCADE): a token
  whose person is gone must not survive as an ownerless credential, and audit rows keep the
  `staff:N (token M)` text, not a foreign key, so no history is lost.
- `client_name`: an integration (an EHR interface, a lab system). It may do only what `scopes` says
  (space-separated, from `read`, `labs:write`, `enrolment`, `admin`; see services/tokens.py).

`role` goes: a person's role is read from the person, a client's rights from its scopes.

Existing rows (which had only a name and a role) become clients named after the token, so they keep working:

- `admin` tokens: every scope (`read labs:write enrolment admin`), the rights they had.
- `integration` tokens: `labs:write`, the rights they had.
- `nurse` tokens: no scopes. They belonged to nobody and were already refused every patient route; giving
  them `read` would widen them to every patient. They still authenticate (so the admin sees and revokes
  them) but are refused everything; replace them with a token owned by the nurse.

Downgrade maps back: a staff token takes its person's role; a client with `admin` becomes `admin`, any
other client `integration`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ALL_SCOPES = "read labs:write enrolment admin"  # services/tokens.py SCOPES, frozen here


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("staff_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("client_name", sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.String(length=200), server_default="", nullable=False))

    tokens = sa.table(
        "api_tokens",
        sa.column("name", sa.String),
        sa.column("role", sa.String),
        sa.column("client_name", sa.String),
        sa.column("scopes", sa.String),
    )
    for role, scopes in (("admin", ALL_SCOPES), ("integration", "labs:write"), ("nurse", "")):
        op.execute(
            tokens.update()
            .where(tokens.c.role == role)
            .values(client_name=sa.func.substr(tokens.c.name, 1, 60), scopes=scopes)
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_api_tokens_staff_id_staff_users"),
            "staff_users",
            ["staff_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_api_tokens_staff_id"), ["staff_id"], unique=False)
        batch_op.create_check_constraint(
            batch_op.f("ck_api_tokens_one_owner"),
            "(staff_id IS NULL) <> (client_name IS NULL)",
        )
        batch_op.drop_column("role")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=32), nullable=True))

    op.execute(
        "UPDATE api_tokens SET role = (SELECT s.role FROM staff_users s WHERE s.id = api_tokens.staff_id) "
        "WHERE staff_id IS NOT NULL"
    )
    # Never wider than now: under 0008 an integration token may write labs, so only a client that may
    # (labs:write) becomes one; a client with neither admin nor labs:write (read, enrolment, or none) has no
    # 0008 role that fits, so it comes back as a revoked nurse token rather than as one that writes labs.
    op.execute(
        "UPDATE api_tokens SET role = CASE WHEN (' ' || scopes || ' ') LIKE '% admin %' THEN 'admin' "
        "WHEN (' ' || scopes || ' ') LIKE '% labs:write %' THEN 'integration' ELSE 'nurse' END "
        "WHERE staff_id IS NULL"
    )
    # Under 0008 a token is checked only against its hash: a deactivated person's token would work again.
    op.execute(
        "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE revoked_at IS NULL AND staff_id IN "
        "(SELECT id FROM staff_users WHERE NOT active)"
    )
    op.execute(
        "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE staff_id IS NULL AND revoked_at IS NULL "
        "AND (' ' || scopes || ' ') NOT LIKE '% admin %' AND (' ' || scopes || ' ') NOT LIKE '% labs:write %'"
    )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint(batch_op.f("ck_api_tokens_one_owner"), type_="check")
        batch_op.drop_index(batch_op.f("ix_api_tokens_staff_id"))
        batch_op.drop_constraint(batch_op.f("fk_api_tokens_staff_id_staff_users"), type_="foreignkey")
        batch_op.drop_column("scopes")
        batch_op.drop_column("client_name")
        batch_op.drop_column("staff_id")
