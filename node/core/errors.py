"""Errors by blame (h11 style).

A peer's bad input is the peer's problem: the frame is dropped, the connection closed, a warning logged.
Our own impossible state is a bug: it must crash loudly (systemd restarts us; durable state makes it safe).
"""


class RemoteProtocolError(Exception):
    """A peer sent something we cannot accept: oversize frame, bad JSON, unknown type, bad HMAC, ..."""


class LocalProtocolError(Exception):
    """This node reached a state the protocol forbids. Never caught: the process must die."""
