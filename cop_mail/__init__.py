"""cop-mail: email and newsletter automation for communities of practice."""

__version__ = "0.1.0"
