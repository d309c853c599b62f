"""Journeys in the admin: the welcome journey and other automated sequences."""

from __future__ import annotations
