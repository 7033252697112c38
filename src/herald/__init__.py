"""Herald: self-hosted notification delivery.

Notifications are stored durably before they are acknowledged, delivered by a
worker that claims them in batches under a lease, retried on a ladder and parked
in a dead letter queue when they cannot be delivered.
"""

__version__ = "0.1.0"
