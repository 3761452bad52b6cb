"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (standard library only).

Chromium started with ``--remote-debugging-pipe`` reads protocol messages from its file
descriptor 3 and writes to 4, each a JSON object followed by a NUL byte.  Pipes need no port
and no WebSocket library, and only the process that started the browser can talk to it::

    with CdpPipe(["--headless", "--no-sandbox", ...]) as cdp:
        session = cdp.open_page()
        cdp.call("Page.navigate", {"url": "http://127.0.0.1:8000/"}, session)
        png = base64.b64decode(cdp.call("Page.captureScreenshot", {}, session)["data"])

Chromium runs in its own process group; leaving the context closes the browser
(``Browser.close``) and, should it not exit in :data:`CLOSE_TIMEOUT_S`, kills that group.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

CHROMIUM = "chromium"
CALL_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 10.0
_FIRST_FREE_FD = 10
"""Pipe ends are moved to descriptors >= 10 so that the shell's ``3<&N 4>&M`` cannot clobber them."""


class CdpError(RuntimeError):
    """Raised when Chromium answers a call with an error, exits, or does not answer in time."""


def _high_fd(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, _FIRST_FREE_FD)
    os.close(fd)
    return moved


class CdpPipe:
    """Chromium with a DevTools pipe; see the module docstring.

    Parameters
    ----------
    flags
        Command-line flags; ``--remote-debugging-pipe`` and a blank start page are added.
    chromium
        The browser command (Debian's ``chromium`` wrapper by default).
    """

    def __init__(self, flags: Sequence[str], chromium: str = CHROMIUM) -> None:
        executable = shutil.which(chromium)
        if executable is None:
            raise CdpError(f"{chromium} not found; run `bash scripts/install_system_deps.sh` as root")
        self.argv = [executable, *flags, "--remote-debugging-pipe", "about:blank"]
        self._process: subprocess.Popen[bytes] | None = None
        self._to_browser = self._from_browser = -1
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> CdpPipe:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start Chromium with its descriptors 3 and 4 connected to this object."""
        commands_read, commands_write = map(_high_fd, os.pipe())
        replies_read, replies_write = map(_high_fd, os.pipe())
        redirect = f'exec "$@" 3<&{commands_read} 4>&{replies_write} {commands_read}<&- {replies_write}>&-'
        self._process = subprocess.Popen(
            ["/bin/bash", "-c", redirect, "chromium", *self.argv],
            pass_fds=(commands_read, replies_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(commands_read)
        os.close(replies_write)
        self._to_browser, self._from_browser = commands_write, replies_read

    def call(self, method: str, params: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        """Send one command (to ``session``, a page, when given) and return its result.

        Events that arrive meanwhile are kept for :meth:`drain_events`.

        Raises
        ------
        CdpError
            On an error answer, when Chromium closes the pipe, or after :data:`CALL_TIMEOUT_S`.
        """
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            for reply in self._read_messages(deadline, method):
                if reply.get("id") != self._next_id:
                    self._events.append(reply)
                elif "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                else:
                    return dict(reply.get("result", {}))

    def open_page(self) -> str:
        """Open a blank tab and return the session id that addresses it."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        return str(self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])

    def drain_events(self) -> list[dict[str, Any]]:
        """The events received so far (and forget them)."""
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        """Close the browser; kill its process group if it does not exit.  Safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                self.call("Browser.close", {})
        except (CdpError, OSError):
            pass  # it is killed below
        try:
            process.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)

    def _read_messages(self, deadline: float, method: str) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise CdpError(f"{method}: no answer from Chromium within {CALL_TIMEOUT_S:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise CdpError(f"{method}: Chromium closed the DevTools pipe (it exited)")
            self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        return [json.loads(raw) for raw in complete]
