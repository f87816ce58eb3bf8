"""Staff accounts: argon2 password hashes, E.164 phones for pages."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pro_service.models import StaffRole, StaffUser
from pro_service.services.patients import EnrolmentError, normalise_phone

_hasher = PasswordHasher()


class StaffError(ValueError):
    pass


def create_staff(
    session: Session, *, email: str, name: str, role: StaffRole, phone: str | None, password: str | None
) -> StaffUser:
    if role == StaffRole.INTEGRATION:
        raise StaffError("role: integration is for API tokens of hospital systems, not for staff accounts")
    email = email.strip().lower()
    if "@" not in email:
        raise StaffError("email: not an email address")
    if session.scalar(select(StaffUser.id).where(func.lower(StaffUser.email) == email)) is not None:
        raise StaffError(f"email: {email} already has an account")
    if password is not None and len(password) < 12:
        raise StaffError("password: use at least 12 characters")
    if phone:
        try:
            phone = normalise_phone(phone)
        except EnrolmentError as exc:
            raise StaffError(str(exc)) from None
    staff = StaffUser(
        email=email,
        name=name,
        role=role,
        phone=phone or None,
        password_hash=_hasher.hash(password) if password else None,
    )
    session.add(staff)
    session.flush()
    return staff


def check_password(staff: StaffUser, password: str) -> bool:
    if not staff.password_hash or not staff.active:
        return False
    try:
        return _hasher.verify(staff.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
