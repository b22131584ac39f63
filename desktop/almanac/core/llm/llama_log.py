"""llama.cpp's log, routed into Python logging at the levels llama.cpp meant.

llama-cpp-python (0.3.x) maps ggml's log levels by an old numbering in which 3 was ERROR; ggml
now numbers DEBUG 1, INFO 2, WARN 3, ERROR 4. So with ``verbose=False`` every llama.cpp warning
still reached the terminal as if it were an error: 27 lines each time the default model's adapter
was loaded ("lora for 'blk.0.attn_output.weight' cannot use buft 'CPU_REPACK', fallback to CPU"),
in the middle of ``almanac ask``'s output. Here llama.cpp's warnings are INFO records (they
describe llama.cpp's own choices; a real failure comes back from the call that failed), its
informational chatter DEBUG, its errors ERROR, and the last errors are kept so that a failed load
can say what llama.cpp objected to.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque
from typing import Any

log = logging.getLogger("almanac.llama_cpp")

# ggml_log_level -> logging level; 5 (CONT) continues the previous message.
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
_CONT = 5

_lock = threading.Lock()
_pending: list[str] = []
_pending_level = logging.DEBUG
_errors: deque[str] = deque(maxlen=4)
_callback: Any = None  # kept referenced: llama.cpp calls it for as long as the process lives


def _receive(level: int, text: bytes | None) -> None:
    global _pending_level
    piece = (text or b"").decode("utf-8", "replace")
    with _lock:
        if level != _CONT:
            _flush()
            _pending_level = _LEVELS.get(level, logging.DEBUG)
        _pending.append(piece)
        if piece.endswith("\n"):
            _flush()


def _flush() -> None:
    message = "".join(_pending).strip()
    _pending.clear()
    if not message:
        return
    if _pending_level >= logging.ERROR:
        _errors.append(message)
    log.log(_pending_level, "%s", message)


def route_llama_log() -> None:
    """Install the router (once; after ``import llama_cpp``, which installs its own)."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        _receive(level, text)

    _callback = callback
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def take_errors() -> list[str]:
    """The error messages llama.cpp logged since the last call (at most the last four)."""
    with _lock:
        _flush()
        errors = list(_errors)
        _errors.clear()
    return errors
