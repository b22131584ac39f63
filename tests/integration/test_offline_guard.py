"""Nothing Almanac does reaches the network.

Ingest, search, ask (real llama.cpp with the tiny GGUF), the desktop app's start-up (offscreen)
and the fine-tuning recipe's export step (llama.cpp's converter, then quantization) each run in a
subprocess armed by tests/netguard: a socket audit hook that refuses and logs every connection
or name look-up beyond loopback, in that process and in every Python process it starts. Where
strace exists, the same runs are traced at the system-call level too, which also sees native code
(LanceDB's Rust, llama.cpp, ONNX Runtime). The subprocesses get an environment without any of the
offline switches, so the app has to set them itself, and a home folder of their own.

Self-checks first: both layers must catch a real attempt, or a clean result would mean nothing.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from almanac.app.settings import Settings, SettingsStore
from almanac.core.system.offline import offline_env
from almanac.tooling import gguf_export

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NETGUARD = REPO / "tests" / "netguard"
TEST_MODELS = REPO / "build" / "test-models"
STRACE = shutil.which("strace")
UNROUTABLE = ("10.255.255.1", 9)
QUESTION = "How long is the password reset link valid?"
_FAMILY = re.compile(r"sa_family=(AF_INET6?)\b")
_IPV4 = re.compile(r'inet_addr\("([^"]+)"\)')
_IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')


@dataclass
class Guarded:
    proc: subprocess.CompletedProcess[str]
    refused: list[dict[str, object]]  # what the audit hook refused (Python sockets)
    armed: list[dict[str, object]]  # every Python process the hook watched
    native: list[str]  # strace lines with a non-loopback address (any code), [] without strace

    def check_clean(self) -> None:
        assert self.proc.returncode == 0, self.proc.stderr[-3000:]
        assert self.refused == [], f"network attempts: {self.refused}"
        assert self.native == [], f"network system calls: {self.native}"


def _non_loopback(line: str) -> bool:
    if not _FAMILY.search(line):
        return False  # Unix sockets, netlink, or a send on an already-connected socket
    for address in _IPV4.findall(line) + _IPV6.findall(line):
        ip = ipaddress.ip_address(address)
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (mapped or ip).is_loopback:
            return True
    return False


class Guard:
    """Runs commands with the network guard armed, each with its own log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = 0
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        strip = set(offline_env())
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in strip
            and not k.startswith(("HF_", "TRANSFORMERS_", "XDG_", "ALMANAC_", "PYTEST_"))
        }
        env.update(
            HOME=str(home),
            PYTHONPATH=os.pathsep.join(p for p in (str(NETGUARD), env.get("PYTHONPATH")) if p),
            QT_QPA_PLATFORM="offscreen",
            ALMANAC_CONFIG_DIR=str(root / "config"),
            ALMANAC_DATA_DIR=str(root / "data"),
            ALMANAC_KB=str(root / "kb"),
            ALMANAC_DOCUMENTS_DIR=str(root / "documents"),
        )
        self.env = env

    def run(self, args: list[str], extra_env: dict[str, str] | None = None) -> Guarded:
        self.runs += 1
        log = self.root / f"netguard-{self.runs}.jsonl"
        trace = self.root / f"strace-{self.runs}.txt"
        env = {**self.env, **(extra_env or {}), "ALMANAC_NETGUARD_LOG": str(log)}
        cmd = [sys.executable, *args]
        if STRACE:
            cmd = [
                STRACE,
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-e",
                "trace=connect,sendto,sendmsg",
                "-e",
                "signal=none",
                "-o",
                str(trace),
                "--",
                *cmd,
            ]
        proc = subprocess.run(
            cmd, env=env, cwd=self.root, capture_output=True, text=True, timeout=540, check=False
        )
        records = (
            [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
            if log.exists()
            else []
        )
        native = (
            [line for line in trace.read_text(errors="replace").splitlines() if _non_loopback(line)]
            if trace.exists()
            else []
        )
        return Guarded(
            proc=proc,
            refused=[r for r in records if r["event"] != "armed"],
            armed=[r for r in records if r["event"] == "armed"],
            native=native,
        )


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    return Guard(tmp_path)


# -- the guard itself -----------------------------------------------------------------------------

SELF_CHECK = """
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
socket.create_connection(listener.getsockname(), timeout=5).close()  # loopback: allowed
target = (sys.argv[1], int(sys.argv[2]))
for attempt in (
    lambda: socket.socket().connect(target),
    lambda: socket.create_connection(target, timeout=2),  # resolves first: refused there
    lambda: socket.getaddrinfo("example.org", 443),
):
    try:
        attempt()
    except PermissionError as exc:
        print("caught:", exc)
    else:
        sys.exit("not refused")
"""

NATIVE_CONNECT = """
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0)
address = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(int(sys.argv[2])),
                      socket.inet_aton(sys.argv[1]))
buf = ctypes.create_string_buffer(address, len(address))
print("connect ->", libc.connect(fd, buf, len(address)), ctypes.get_errno())
"""


def test_guard_refuses_a_connection_to_another_machine(guard: Guard) -> None:
    result = guard.run(["-c", SELF_CHECK, *map(str, UNROUTABLE)])
    assert result.proc.returncode == 0, result.proc.stderr + result.proc.stdout
    assert result.proc.stdout.count("caught:") == 3
    events = [(r["event"], r["target"]) for r in result.refused]
    assert events == [
        ("socket.connect", repr(UNROUTABLE)),
        ("socket.getaddrinfo", repr(UNROUTABLE)),
        ("socket.getaddrinfo", repr(("example.org", 443))),
    ]
    assert len(result.armed) == 1
    # Refused before the system call: nothing left the process.
    assert result.native == []


@pytest.mark.skipif(STRACE is None, reason="strace is not installed: no native-code layer")
def test_system_call_trace_sees_a_connection_from_native_code(guard: Guard) -> None:
    # libc's connect() through ctypes: no Python socket, so no audit event.
    result = guard.run(["-c", NATIVE_CONNECT, *map(str, UNROUTABLE)])
    assert result.proc.returncode == 0, result.proc.stderr
    assert result.refused == []
    assert any(UNROUTABLE[0] in line for line in result.native), result.native


# -- the app --------------------------------------------------------------------------------------

SWITCHES = """
import json, os, sys
from pathlib import Path
from almanac.app.services import build_services
build_services(Path(sys.argv[1]))
import huggingface_hub.constants as hub
from transformers.utils.hub import is_offline_mode
print(json.dumps({
    "hub_offline": hub.HF_HUB_OFFLINE,
    "hub_telemetry_off": hub.HF_HUB_DISABLE_TELEMETRY,
    "transformers_offline": is_offline_mode(),
    "ort_telemetry_off": os.environ.get("ORT_DISABLE_TELEMETRY"),
}))
"""


def test_library_switches_are_on_when_the_libraries_load(guard: Guard, tmp_path: Path) -> None:
    result = guard.run(["-c", SWITCHES, str(tmp_path / "kb-switches")])
    result.check_clean()
    state = json.loads(result.proc.stdout.strip().splitlines()[-1])
    assert state == {
        "hub_offline": True,
        "hub_telemetry_off": True,
        "transformers_offline": True,
        "ort_telemetry_off": "1",
    }


def test_ingest_search_ask_stay_offline(
    guard: Guard, tmp_path: Path, sample_kb: Path, tiny_gguf: Path
) -> None:
    kb = str(tmp_path / "kb-cli")
    ingest = guard.run(["-m", "almanac", "ingest", str(sample_kb), "--kb", kb, "--json", "-q"])
    ingest.check_clean()
    report = json.loads(ingest.proc.stdout)
    assert report["added"] == sum(1 for p in sample_kb.rglob("*") if p.is_file())
    assert report["failed"] == []

    search = guard.run(["-m", "almanac", "search", QUESTION, "--kb", kb, "--json", "-k", "3"])
    search.check_clean()
    hits = json.loads(search.proc.stdout)["hits"]
    assert hits and any("30 minutes" in h["text"] for h in hits)

    ask = guard.run(
        [
            "-m",
            "almanac",
            "ask",
            # One the tiny model answers from its source (its reset-link answer is withheld).
            "How do I reset my password?",
            "--kb",
            kb,
            "--model",
            str(tiny_gguf),
            "--json",
            "--max-tokens",
            "48",
            "--temperature",
            "0",
            "--threads",
            "1",
        ]
    )
    ask.check_clean()
    answer = json.loads(ask.proc.stdout)
    assert answer["mode"] == "model"
    assert answer["answer"].strip()
    assert answer["citations"] or answer["also_retrieved"]


def test_desktop_app_start_up_stays_offline(guard: Guard, tmp_path: Path) -> None:
    docs = tmp_path / "gui-docs"
    docs.mkdir()
    (docs / "faq.md").write_text(
        "# Passwords\n\nA password reset link is valid for 30 minutes.\n", encoding="utf-8"
    )
    # An existing settings file: the window opens on this folder, not the first-start samples.
    SettingsStore(tmp_path / "config" / "settings.json").save(
        Settings(documents_folders=(str(docs),))
    )
    result = guard.run(["-m", "almanac"], extra_env={"ALMANAC_QUIT_AFTER_MS": "1500"})
    result.check_clean()
    assert "almanac: window shown" in result.proc.stderr


# -- the fine-tuning recipe's export step ---------------------------------------------------------

EXPORT = """
import sys
from pathlib import Path
hf, out, cache = map(Path, sys.argv[1:4])
try:
    from almanac.finetune.export import export_gguf  # the export step of `almanac finetune`
except ImportError:
    export_gguf = None
if export_gguf is not None:
    done = export_gguf(hf, out / "model-q8_0.gguf", "Q8_0", cache=cache, work=out / "work")
    print("finetune.export", done.path)
else:  # the same two calls, before the recipe existed
    from almanac.tooling import gguf_export
    f16 = gguf_export.convert_hf_to_gguf(hf, out / "model-f16.gguf", "f16", cache=cache)
    q8 = gguf_export.quantize(f16, out / "model-q8_0.gguf", "Q8_0")
    gguf_export.verify_quantized(q8, "Q8_0")
    print("gguf_export", q8)
"""


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face Llama folder (random weights, SentencePiece tokenizer), made in-process."""
    import torch
    from transformers import LlamaForCausalLM

    from almanac.devtools import tiny_model as tm

    out = tmp_path_factory.mktemp("tiny-hf")
    cfg = tm.TinyConfig()
    sp_vocab = tm._train_tokenizer(tm._corpus(tm.training_examples(cfg)), cfg.vocab_size, out)
    torch.manual_seed(0)
    config = tm._llama_config(tm._tiny_shape(cfg, sp_vocab), eos_token_id=4, pad_token_id=4)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def _repacked_sdist(tmp_path: Path) -> Path:
    """A llama-cpp-python sdist holding just the converter, in the layout the bundle ships (the
    real converter files, from the cache the test models are built with)."""
    version = gguf_export.llama_cpp_version()
    src = gguf_export.converter_dir(TEST_MODELS)  # set-up, unguarded: may fetch it once
    sdist = tmp_path / f"llama_cpp_python-{version}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for part in gguf_export._VENDOR_PARTS:
            tar.add(src / part, arcname=f"llama_cpp_python-{version}/vendor/llama.cpp/{part}")
    return sdist


def test_export_step_stays_offline(guard: Guard, tmp_path: Path, tiny_hf_model: Path) -> None:
    # The export of `almanac finetune` (gguf_export.convert_hf_to_gguf + quantize + verify) on a
    # tiny Llama, with an empty converter cache and the sdist from a local file (as installed
    # from the bundle), so the converter must come out of that file and not from pip.
    sdist = _repacked_sdist(tmp_path)
    cache, out = tmp_path / "converter-cache", tmp_path / "export"
    result = guard.run(
        ["-c", EXPORT, str(tiny_hf_model), str(out), str(cache)],
        extra_env={gguf_export.SDIST_ENV: str(sdist)},
    )
    result.check_clean()
    used, exported = result.proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert Path(exported).is_file()
    if importlib.util.find_spec("almanac.finetune") is not None:
        assert used == "finetune.export"
    extracted = cache / f"llama.cpp-{gguf_export.llama_cpp_version()}"
    assert (extracted / gguf_export.CONVERTER).is_file()
    # The converter ran in a child process, and the guard watched it there too.
    assert any(gguf_export.CONVERTER in " ".join(r["argv"]) for r in result.armed), result.armed


def test_local_sdist_setting_must_name_the_installed_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = tmp_path / "llama_cpp_python-0.0.1.tar.gz"
    wrong.write_bytes(b"")
    monkeypatch.delenv(gguf_export.SRC_ENV, raising=False)
    monkeypatch.setenv(gguf_export.SDIST_ENV, str(wrong))
    with pytest.raises(gguf_export.ExportError, match=r"needs llama_cpp_python-.*\.tar\.gz"):
        gguf_export.converter_dir(tmp_path / "cache")
    monkeypatch.setenv(gguf_export.SDIST_ENV, str(tmp_path))  # a folder without the file
    with pytest.raises(gguf_export.ExportError, match="needs llama_cpp_python-"):
        gguf_export.converter_dir(tmp_path / "cache")
