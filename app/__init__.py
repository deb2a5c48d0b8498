"""Glimpse: find any photo on your own disk by describing it or by showing a similar one."""

__version__ = "0.1.0"
