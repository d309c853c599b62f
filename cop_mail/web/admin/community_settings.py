"""The community's settings page: engagement tracking and the attention budget (owners only)."""

from __future__ import annotations
