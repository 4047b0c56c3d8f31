"""Adapters connecting the disbursement service to external systems."""
