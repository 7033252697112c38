"""Delivery: the worker that claims notifications and hands them to providers."""
