"""The measurement itself: a command's peak RSS is its own, whatever the test process holds."""

from __future__ import annotations

from hostile_run import run_python


def test_the_peak_rss_is_the_commands_not_the_test_processes() -> None:
    ballast = bytearray(600 * 2**20)  # the test process: 600 MiB resident, late in a suite
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = run_python("print('ok')")
    assert small.returncode == 0 and small.stdout.strip() == "ok"
    assert small.max_rss_bytes < 200 * 2**20, f"{small.max_rss_bytes / 2**20:.0f} MiB"
    grown = run_python("b = bytearray(300 * 2**20); b[::4096] = b'y' * len(b[::4096])")
    assert 300 * 2**20 < grown.max_rss_bytes < 500 * 2**20, f"{grown.max_rss_bytes / 2**20:.0f}"
    del ballast
