"""Is the process that is writing a run still alive? (pid, start time, host, heartbeat)."""
from __future__ import annotations

import os
import socket
import sys
import time
from typing import Optional

#: A ``running`` row written on another host counts as abandoned after this many seconds
#: without a heartbeat (a recorder beats every :data:`HEARTBEAT_S` seconds and every epoch).
STALE_AFTER_S = 15 * 60.0
HEARTBEAT_S = 30.0


def hostname() -> str:
    """This machine's name, as stored with each running run."""
    return socket.gethostname()


def start_token(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), or ``None``.

    Stored with a running run so a later process that reuses the pid is not taken for it.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            rest = fh.read().rsplit(b")", 1)[1].split()
        return rest[19].decode()
    except (OSError, IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def process_alive(pid: Optional[int], host: Optional[str], token: Optional[str],
                  heartbeat: Optional[float], now: Optional[float] = None) -> bool:
    """Whether the writer of a ``running`` run may still be working on it.

    On this host: ``os.kill(pid, 0)`` must succeed, the process must not be a zombie and (where
    ``/proc`` exists) its start time must equal ``token``. On another host, or on Windows where
    signal 0 is not a probe, the heartbeat must be younger than :data:`STALE_AFTER_S`.

    Parameters
    ----------
    pid : int or None
    host : str or None
    token : str or None
        :func:`start_token` recorded when the run began.
    heartbeat : float or None
        Unix time (seconds) of the last sign of life.
    now : float, optional
        Current Unix time (for tests).

    Returns
    -------
    bool
    """
    now = time.time() if now is None else now
    if host != hostname() or sys.platform.startswith("win") or not pid:
        return heartbeat is not None and now - float(heartbeat) < STALE_AFTER_S
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    if _zombie(int(pid)):
        return False
    current = start_token(int(pid))
    return not (token and current and current != token)
