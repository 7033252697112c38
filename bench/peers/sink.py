"""The zero-latency sink every peer delivers to: Herald's fault provider at 0 ms.

Herald's drain benchmark sends through a provider that is an in-process call
returning at once, so the figure is the queue's own overhead per
notification. The peers' tasks call ``deliver`` for the same reason; its
return value (status and time) is what each peer stores as the task's status
record, and ``sent_at`` is what the active rate is measured from.
"""

from __future__ import annotations

import time
from typing import Any

SENT = "SENT"


def deliver(notification: dict[str, Any]) -> dict[str, Any]:
    """Accept ``notification`` at once, as the fault provider with no latency does."""
    return {"status": SENT, "recipient": notification["recipient"], "sent_at": time.time()}
