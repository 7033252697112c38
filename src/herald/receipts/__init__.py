"""Inbound delivery receipts: one verifier per provider, each a pure function.

``base`` holds what they share (``Inbound``, ``ReceiptEvent``, ``ReceiptKind``,
``Seen``); ``twilio``, ``sendgrid``, ``ses`` (with ``sns``), ``postmark`` and
``mailgun`` each expose ``verify``. See ``base`` for how an endpoint uses them.
"""

from .base import Inbound, ReceiptEvent, ReceiptKind, ReceiptRefused, ReceiptReplayed, Seen, SeenSet

__all__ = [
    "Inbound",
    "ReceiptEvent",
    "ReceiptKind",
    "ReceiptRefused",
    "ReceiptReplayed",
    "Seen",
    "SeenSet",
]
