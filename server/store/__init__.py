"""The store: every Redis key and data shape deskflow uses (layout documented in keys.py)."""

from __future__ import annotations

from server.store.connect import Store, close_store, open_store
from server.store.errors import StoreError, StoreUnavailable

__all__ = ["Store", "open_store", "close_store", "StoreError", "StoreUnavailable"]
