"""The HTTP API (ASGI): seed-compatible routes and envelopes under ``/api``."""
