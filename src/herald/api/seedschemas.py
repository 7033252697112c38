"""Bodies of the seeds' routes (seeds 000 and 001): signups, logins, resets, purchases, friends.

Each route is a thin alias: its body becomes the ``data`` of a built-in event
type. As with the Mongoose models they replace, unknown fields are dropped,
never stored, so a stray ``confirmPassword`` cannot end up in the database.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import validation
from .eventschemas import NotificationBrief, Storable
from .schemas import LogOut, Pagination, StatusName

UserId = (
    Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[str, Field(min_length=1, max_length=128)]
)
Name = Annotated[str, Field(min_length=1, max_length=100)]
Email = Annotated[str, Field(min_length=3, max_length=320)]


class SeedBody(Storable):
    model_config = ConfigDict(extra="ignore")

    locale: str | None = Field(
        None, min_length=2, max_length=35, description="Template locale; default en."
    )


class _EmailChecked(SeedBody):
    @field_validator("email", "toEmail", check_fields=False)
    @classmethod
    def _address(cls, value: str) -> str:
        return validation.email(value)


class SignupIn(_EmailChecked):
    """``POST /api/signups`` (seed 000): a welcome email with a one-time verification link."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "username": "testuser",
                    "email": "test@example.com",
                    "firstName": "Test",
                    "lastName": "User",
                    "userId": 12345,
                }
            ]
        },
    )

    username: Name
    email: Email
    firstName: Name | None = None
    lastName: Name | None = None
    userId: UserId
    password: str | None = Field(
        None, min_length=1, max_length=1024, description="Kept only as a salted scrypt hash."
    )


class LoginIn(_EmailChecked):
    """``POST /api/logins`` (seed 000): a security alert with the IP address and user agent."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "username": "testuser",
                    "email": "test@example.com",
                    "userId": 12345,
                    "ipAddress": "192.168.1.1",
                    "userAgent": "Mozilla/5.0...",
                }
            ]
        },
    )

    username: Name
    email: Email
    userId: UserId
    ipAddress: str = Field(min_length=1, max_length=64)
    userAgent: str = Field(min_length=1, max_length=1000)


class ResetPasswordIn(_EmailChecked):
    """``POST /api/reset-passwords`` (seed 000): the reset code (or link) by email."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "username": "testuser",
                    "email": "test@example.com",
                    "userId": 12345,
                    "resetToken": "abc123def456",
                }
            ]
        },
    )

    username: Name
    email: Email
    userId: UserId
    resetToken: str = Field(
        min_length=1, max_length=2048, description="Sent by email; stored as [redacted]."
    )
    resetUrl: str | None = Field(
        None, max_length=4096, description="Sent instead of the bare code; stored as [redacted]."
    )


class PurchaseItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=1_000_000)
    price: float = Field(ge=0, le=1e12, allow_inf_nan=False)


class PurchaseIn(_EmailChecked):
    """``POST /api/purchases`` (seed 001): the receipt."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "userId": 12345,
                    "email": "test@example.com",
                    "orderId": "ORD-1001",
                    "items": [{"name": "Notebook", "quantity": 2, "price": 4.5}],
                    "total": 9.0,
                    "currency": "USD",
                }
            ]
        },
    )

    userId: UserId
    email: Email
    username: Name | None = None
    orderId: UserId
    items: list[PurchaseItem] = Field(min_length=1, max_length=500)
    total: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")


class FriendRequestIn(_EmailChecked):
    """``POST /api/friend-requests`` (seed 001): a note to the person asked."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "fromUserId": 12345,
                    "fromUsername": "testuser",
                    "toUserId": 67890,
                    "toEmail": "friend@example.com",
                }
            ]
        },
    )

    fromUserId: UserId
    fromUsername: Name
    toUserId: UserId
    toEmail: Email


SeedStatus = Literal[
    "pending", "queued", "sending", "sent", "delivered", "bounced", "complained", "failed",
    "cancelled", "suppressed", "unknown",
]  # fmt: skip


class WelcomeEmail(BaseModel):
    status: SeedStatus = Field(description="Seed 001's words; `unknown` once cleaned away")
    notificationStatus: StatusName | None
    notificationId: str | None
    attempts: int
    messageId: str | None
    error: str | None
    sentAt: str | None


class WelcomeEmailDetail(WelcomeEmail):
    deliveryHistory: list[LogOut]


class SignupOut(BaseModel):
    id_: str = Field(alias="_id")
    id: str
    userId: int | str | None
    username: str | None
    email: str | None
    firstName: str | None
    lastName: str | None
    emailVerified: bool
    verifiedAt: str | None
    welcomeEmail: WelcomeEmail
    createdAt: str
    updatedAt: str


class SignupList(BaseModel):
    signups: list[SignupOut]
    pagination: Pagination


class SignupStatus(BaseModel):
    signupId: str
    userId: int | str | None
    email: str | None
    emailVerified: bool
    welcomeEmail: WelcomeEmailDetail


class SignupStatistics(BaseModel):
    totalSignups: int
    verifiedSignups: int
    unverifiedSignups: int
    verificationRate: float = Field(description="Percent of signups verified")
    signupsLast24h: int
    welcomeEmails: dict[str, int] = Field(description="total, and counts by status (seed words)")


class SeedRecord(BaseModel):
    """A login, reset, purchase or friend request: its fields (secrets redacted), plus these."""

    model_config = ConfigDict(extra="allow")

    id_: str = Field(alias="_id")
    id: str
    type: str
    notificationIds: list[str]
    notifications: list[NotificationBrief]
    createdAt: str
