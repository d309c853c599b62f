"""Talking to other systems: API tokens with scopes, outbound signed webhooks and their events."""
