"""Turning a Hugging Face checkpoint into a quantized GGUF with llama.cpp's own tools.

The converter is llama.cpp's official ``convert_hf_to_gguf.py`` taken from the llama-cpp-python
source distribution of the *installed* version, so the GGUF it writes matches the llama.cpp that
loads it. It is fetched once (``pip download``, a build-time step) into a cache folder and never
copied into this repository. Quantization goes through ``llama_cpp.llama_model_quantize``.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path, PurePosixPath

from gguf.gguf_reader import GGUFReader, ReaderTensor

CONVERTER = "convert_hf_to_gguf.py"
SRC_ENV = "ALMANAC_LLAMA_CPP_SRC"
# A local copy of the sdist (offline installs): the file itself or a folder holding it.
SDIST_ENV = "ALMANAC_LLAMA_CPP_SDIST"
# What the converter needs from the sdist's vendor/llama.cpp folder (a file and two packages).
_VENDOR_PARTS = (CONVERTER, "conversion", "gguf-py")

OUTTYPES = frozenset({"f32", "f16", "bf16", "q8_0", "auto"})
# qtype name -> name of the llama_cpp.LLAMA_FTYPE_* constant
QTYPES: dict[str, str] = {
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
}
# The weight type the bulk of the matrices must end up with, per qtype.
_MAIN_TYPE = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K", "Q8_0": "Q8_0", "F16": "F16"}
_FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})


class ExportError(RuntimeError):
    """Conversion or quantization failed. The message says why in one line."""


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ExportError("llama-cpp-python is not installed") from exc


def converter_dir(cache: Path) -> Path:
    """A folder holding llama.cpp's ``convert_hf_to_gguf.py``, ``conversion/`` and ``gguf-py/``.

    Order: ``cache/llama.cpp-<ver>`` if present, then ``$ALMANAC_LLAMA_CPP_SRC``, else the three
    parts are extracted from the llama-cpp-python sdist of the installed version: a local copy
    (:func:`local_sdist`) when there is one, else downloaded.
    """
    version = llama_cpp_version()
    target = cache / f"llama.cpp-{version}"
    if (target / CONVERTER).is_file():
        return target
    env_src = os.environ.get(SRC_ENV)
    if env_src and (Path(env_src) / CONVERTER).is_file():
        return Path(env_src)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-", dir=cache) as tmp:
        sdist = _download_sdist(version, Path(tmp))
        staging = Path(tmp) / "extract"
        _extract_converter(sdist, staging)
        if not (staging / CONVERTER).is_file():
            raise ExportError(f"{sdist.name} has no vendor/llama.cpp/{CONVERTER}")
        try:
            staging.rename(target)
        except OSError:
            # Another process got there first; use its copy if it is complete.
            if not (target / CONVERTER).is_file():
                raise
    return target


def local_sdist(version: str) -> Path | None:
    """The ``llama_cpp_python-<version>.tar.gz`` an offline install ships, or None.

    ``$ALMANAC_LLAMA_CPP_SDIST`` (the file, or a folder holding it) first, then
    ``<sys.prefix>/share/almanac/llama.cpp/``, where the air-gapped bundle's installer puts it.
    """
    name = f"llama_cpp_python-{version}.tar.gz"
    configured = os.environ.get(SDIST_ENV, "").strip()
    if configured:
        path = Path(configured).expanduser()
        path = path / name if path.is_dir() else path
        if path.name != name or not path.is_file():
            raise ExportError(
                f"${SDIST_ENV} is {configured}, but the installed llama-cpp-python {version} "
                f"needs {name} there"
            )
        return path
    shipped = Path(sys.prefix) / "share" / "almanac" / "llama.cpp" / name
    return shipped if shipped.is_file() else None


def _download_sdist(version: str, dest: Path) -> Path:
    local = local_sdist(version)
    if local is not None:
        return local  # callers only read it
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        f"llama-cpp-python=={version}",
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(
            f"could not download the llama-cpp-python {version} sdist: {exc}"
        ) from exc
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if proc.returncode != 0 or not found:
        raise ExportError(
            f"could not download the llama-cpp-python {version} sdist (needed for llama.cpp's "
            f"converter; set {SRC_ENV} to a llama.cpp checkout to skip this): "
            + _tail(proc.stderr or proc.stdout)
        )
    return found[0]


def _extract_converter(sdist: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            # <top>/vendor/llama.cpp/<rest...>
            if len(parts) < 4 or parts[1:3] != ("vendor", "llama.cpp"):
                continue
            rest = parts[3:]
            if rest[0] not in _VENDOR_PARTS or (rest[0] == CONVERTER and len(rest) > 1):
                continue
            if not (member.isfile() or member.isdir()):
                continue
            member.name = "/".join(rest)
            tar.extract(member, dest, filter="data")


def convert_hf_to_gguf(
    model_dir: Path,
    out: Path,
    outtype: str = "f16",
    *,
    cache: Path,
    vocab_only: bool = False,
    timeout: float = 3600.0,
) -> Path:
    """Convert a Hugging Face model folder to ``out`` (GGUF) with llama.cpp's converter."""
    if outtype not in OUTTYPES:
        raise ExportError(f"unknown outtype {outtype!r} (one of {', '.join(sorted(OUTTYPES))})")
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    src = converter_dir(cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    cmd = [
        sys.executable,
        str(src / CONVERTER),
        str(model_dir),
        "--outfile",
        str(partial),
        "--outtype",
        outtype,
    ]
    if vocab_only:
        cmd.append("--vocab-only")
    return run_converter(cmd, src, partial, out, f"converting {model_dir.name}", timeout)


def run_converter(
    cmd: list[str], src: Path, partial: Path, out: Path, what: str, timeout: float
) -> Path:
    """Run one of llama.cpp's Python converters (unpacked in ``src``) offline, writing
    ``partial`` and renaming it to ``out`` only when it succeeded (a failed or killed run never
    leaves a file that looks finished). ``what`` begins the error message."""
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py, not the installed one
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(src / "gguf-py"), str(src), env.get("PYTHONPATH", "")) if p
    )
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        partial.unlink(missing_ok=True)
        raise ExportError(f"{what} to GGUF failed: {exc}") from exc
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ExportError(f"{what} to GGUF failed: " + _tail(proc.stderr or proc.stdout))
    os.replace(partial, out)
    return out


def quantize(src: Path, dst: Path, qtype: str = "Q4_K_M") -> Path:
    """Quantize a GGUF (normally F16) to one of the export types with llama.cpp."""
    from almanac.core.llm.quantize import QuantizeError, quantize_gguf

    if qtype.upper() not in QTYPES:
        raise ExportError(f"unsupported quantization {qtype!r} (one of {', '.join(QTYPES)})")
    try:
        return quantize_gguf(src, dst, qtype)
    except QuantizeError as exc:
        raise ExportError(str(exc)) from exc


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each ggml type (``"Q4_K"``, ``"F32"``, ...) the GGUF holds."""
    return dict(Counter(t.tensor_type.name for t in _tensors(path)))


def verify_quantized(path: Path, qtype: str) -> None:
    """Raise unless the weight matrices really are ``qtype`` (or a quantized fallback of it).

    k-quants need rows that are multiples of 256; llama.cpp silently falls back to other types
    (or leaves F16) for rows that aren't, so "quantize returned 0" proves little.
    """
    want = _MAIN_TYPE.get(qtype.upper())
    if want is None:
        raise ExportError(f"unsupported quantization {qtype!r} (one of {', '.join(QTYPES)})")
    matrices = [
        (t.name, t.tensor_type.name)
        for t in _tensors(path)
        if t.name.endswith(".weight") and len(t.shape) >= 2
    ]
    if not matrices:
        raise ExportError(f"{path.name} holds no weight matrices")
    if want == "F16":
        bad = [name for name, kind in matrices if kind not in ("F16", "F32")]
    else:
        bad = [name for name, kind in matrices if kind in _FLOAT_TYPES]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ExportError(f"{path.name}: not quantized to {qtype}: {shown}")
    if not any(kind == want for _, kind in matrices):
        kinds = ", ".join(sorted({kind for _, kind in matrices}))
        raise ExportError(f"{path.name}: no {want} tensors after {qtype} quantization ({kinds})")


def _tensors(path: Path) -> list[ReaderTensor]:
    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read GGUF {path}: {exc}") from exc
    return list(reader.tensors)


def _tail(text: str, lines: int = 3, width: int = 300) -> str:
    """The last few non-empty lines of a tool's output, joined into one line."""
    rows = [r.strip() for r in (text or "").splitlines() if r.strip()]
    rows = [r if len(r) <= width else r[: width - 3] + "..." for r in rows[-lines:]]
    return " | ".join(rows) if rows else "(no output)"
