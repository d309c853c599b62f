"""Process start-up for cop-mail's RQ worker and its scheduler."""
