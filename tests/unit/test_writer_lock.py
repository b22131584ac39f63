from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from almanac.core.indexing.writer_lock import WriterBusyError, exclusive_writer


def test_second_writer_is_refused_across_processes(tmp_path: Path) -> None:
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is False
        code = (
            "import sys; from pathlib import Path\n"
            "from almanac.core.indexing.writer_lock import exclusive_writer, WriterBusyError\n"
            "try:\n"
            "    with exclusive_writer(Path(sys.argv[1])): sys.exit(0)\n"
            "except WriterBusyError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        run = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
        )
        assert run.returncode == 3, run.stderr
        assert "another Almanac process is updating" in run.stdout
    # Released: the next writer gets it.
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is False


def test_crash_is_detected_by_the_next_writer(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path\n"
        "from almanac.core.indexing.writer_lock import exclusive_writer\n"
        "with exclusive_writer(Path(sys.argv[1])):\n"
        "    os._exit(9)\n"  # dies holding the lock, like kill -9
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is True
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is False


def test_exception_inside_keeps_the_dirty_marker(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), exclusive_writer(tmp_path):
        raise RuntimeError("boom")
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is True
    with pytest.raises(WriterBusyError), exclusive_writer(tmp_path), exclusive_writer(tmp_path):
        pass
