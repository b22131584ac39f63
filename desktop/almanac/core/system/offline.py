"""The offline switches of every library Almanac uses. Set before those libraries are imported.

Hugging Face Hub, transformers, datasets and sentence-transformers read these at import time, and
ONNX Runtime (1.29 and later) reads ``ORT_DISABLE_TELEMETRY`` once, when it initializes: its
official Linux and macOS builds otherwise send usage events to Microsoft from native code. The
values are forced (a user's ``HF_HUB_OFFLINE=0`` does not turn the network back on). LanceDB
(0.40) has no usage telemetry and only exports metrics to an OpenTelemetry SDK the application
configures (Almanac configures none); llama.cpp, PyTorch, Qt and matplotlib open no connections of
their own. tests/integration/test_offline_guard.py runs the app under a socket audit hook and,
where strace exists, a system-call trace that also sees native code.
"""

from __future__ import annotations

import os

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    # huggingface_hub's CLI checks PyPI for updates; Almanac never runs it, but a stray call must
    # not reach out.
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    # The fine-tuning recipe uses transformers' training utilities: no experiment trackers, even
    # when one happens to be installed.
    "WANDB_MODE": "disabled",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
    # OpenTelemetry (LanceDB's optional metrics bridge): no SDK export, whatever is installed.
    "OTEL_SDK_DISABLED": "true",
    # ONNX Runtime's 1DS telemetry (native, on by default in official non-Windows builds).
    "ORT_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Progress bars and info logs from model loading would corrupt CLI output.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def offline_env() -> dict[str, str]:
    """The variables :func:`enforce_offline_env` sets (for subprocesses and tests)."""
    return dict(_OFFLINE_ENV)


def enforce_offline_env() -> None:
    for key, value in _OFFLINE_ENV.items():
        os.environ[key] = value
