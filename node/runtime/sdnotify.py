"""sd_notify(3) in a few lines of standard library: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.

Without `$NOTIFY_SOCKET` (not run by systemd, or not Type=notify) every call is a no-op. Once
`stopping()` sent `STOPPING=1` with `STATUS=stopping`, later `status()` calls are dropped: the hand-off
that follows changes the role, and `systemctl status` must keep saying "stopping", not a stale role.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        self._socket: socket.socket | None = None
        if address.startswith(("/", "@")):
            # '@' is Linux's abstract namespace, spelled with a leading NUL byte on the wire.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        self.watchdog_interval_ms = self._watchdog_interval_ms()
        self.is_stopping = False

    @staticmethod
    def _watchdog_interval_ms() -> int | None:
        """Ping at half of WatchdogSec, as sd_watchdog_enabled(3) advises; None when no watchdog."""
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
            return None
        return max(1, int(usec) // 2000)

    def notify(self, *assignments: str) -> None:
        if self._socket is None or self._address is None:
            return
        # systemd gone or busy: a missed notification must never stop the node.
        with contextlib.suppress(OSError):
            self._socket.sendto("\n".join(assignments).encode(), self._address)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        if self.is_stopping:
            return  # STATUS=stopping stays until the process is gone
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.is_stopping = True
        self.notify("STOPPING=1", "STATUS=stopping")
