"""Journeys: automated sequences a member goes through after an event (the welcome journey first).

- `definitions`: create and edit journeys and their steps, in plain words.
- `welcome`: the welcome journey cop-mail ships, switched off until a coordinator switches it on.
- `triggers`: the events that put a member into a journey (called in the event's own transaction).
- `runner`: takes each member's due steps, at most once per step, and stops when a member leaves.
- `steps`: what each kind of step does; `messages`: the mail steps send.
- `progress`: where each member is, for the member's page and the journey's page.

This package module imports nothing, so `triggers` stays cheap to import from audience and connect.
"""
