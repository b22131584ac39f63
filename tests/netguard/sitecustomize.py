"""Network guard for processes under test: no socket may reach beyond this machine.

Python imports ``sitecustomize`` at start-up from ``sys.path``, so putting this folder on
``PYTHONPATH`` arms every Python process of a test, including the subprocesses they start (the
llama.cpp converter inherits the environment). It does nothing unless ``$ALMANAC_NETGUARD_LOG``
names a file.

Armed, an audit hook (PEP 578) watches ``socket.connect``, ``socket.sendto``/``sendmsg``,
``socket.getaddrinfo`` and the ``gethostby*`` look-ups. Loopback addresses, ``localhost`` and
Unix sockets pass; anything else is appended to the log as one JSON line and refused with
``PermissionError`` before the call runs. The log, not the exception, is the verdict: a library
may swallow the error and carry on. Each process also logs an ``armed`` line, so a test can prove
that a subprocess it cares about was watched. Native code that opens sockets without Python
(Rust, C++) is outside an audit hook's sight; the network-namespace check of the installed
bundle (packaging/verify_bundle.py) covers that.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
from typing import Any

_LOG = os.environ.get("ALMANAC_NETGUARD_LOG", "")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_write_lock = threading.Lock()


def _is_local_host(host: object) -> bool:
    if host is None or host == "" or host == b"":
        return True  # getaddrinfo(None, port): a local, passive address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name would need a DNS look-up


def _is_local_address(family: int, address: object) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # Unix sockets, netlink: not a network connection
    host = address[0] if isinstance(address, tuple) and address else address
    return _is_local_host(host)


def _record(event: str, target: object | None = None) -> None:
    entry = {"pid": os.getpid(), "event": event, "argv": [a[:200] for a in sys.orig_argv[:4]]}
    if target is not None:
        entry["target"] = repr(target)
    with _write_lock, open(_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("socket."):
        return
    target: object
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if address is None or _is_local_address(getattr(sock, "family", -1), address):
            return
        target = address
    elif event == "socket.getaddrinfo":
        if _is_local_host(args[0]):
            return
        target = (args[0], args[1])
    elif event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        if _is_local_host(args[0]):
            return
        target = args[0]
    else:
        return
    _record(event, target)
    raise PermissionError(f"netguard: network access refused: {event} {target!r}")


def _arm() -> None:
    sys.addaudithook(_hook)
    # The log's own open() is an "open" event, not a socket one: recording cannot recurse.
    _record("armed")


if _LOG:
    _arm()
