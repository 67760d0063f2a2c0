"""Errors raised while checking requests that arrive at the trigger gateway.

All are :class:`~quayside.errors.InputError` subclasses (the gateway answers them with a 4xx);
errors of messages *we* send are in :mod:`quayside.notify.errors`.
"""

from __future__ import annotations

from quayside.errors import InputError


class SignatureError(InputError):
    """A request's signature or token is missing, malformed or does not match."""

    hint = "check that the secret configured in Quayside matches the sender's"


class StaleTimestampError(SignatureError):
    """A signed request's timestamp is outside the accepted window (too old or in the future)."""

    hint = "check the clocks of both sides (NTP); signed requests are valid for one hour"


class ReplayError(SignatureError):
    """A signed request was seen before inside its validity window."""

    hint = "each signed request is accepted once; send a new one"


class ParseError(InputError):
    """A chat message is not a command Quayside understands; carries the help text."""

    def __init__(self, message: str, *, help_text: str) -> None:
        super().__init__(message, hint=help_text)
        self.help_text = help_text
