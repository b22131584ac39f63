"""The bundled embedding model exported to ONNX and quantized to int8, once, into a local cache.

Everything is made here from the local weights: torch traces the model (the TorchScript exporter,
which needs no onnxscript), onnxruntime quantizes it. Nothing is downloaded.

The cache folder's name is a hash of the source model files, the export recipe and the versions of
torch, onnx and onnxruntime, so any change to them gives a new export instead of a stale one. An
export is built in a temporary folder and renamed into place (readers never see half of one); a lock
file keeps a second process from doing the same work at the same time. A manifest records the
SHA-256 of every file, so a damaged cached model is noticed at load time and exported again.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np

from almanac.core.embedding.embedding import EmbeddingError
from almanac.core.embedding.pooling import mean_pool_normalized
from almanac.core.system.hashing import sha256_file
from almanac.core.system.offline import enforce_offline_env

log = logging.getLogger(__name__)

# Bump when the recipe below changes in a way that changes the exported file.
EXPORT_RECIPE = 2
VARIANTS = ("int8", "fp32")
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
OPSET = 17

# Every file of a sentence-transformers folder that can change what the model computes.
_SOURCE_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "1_Pooling/config.json",  # where sentence-transformers puts it; read_spec checks the rest
)
_EXPECTED_MODULES = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
)
# Sanity limits for the self-check at the end of an export (see _check_export).
_FP32_MAX_ABS_ERROR = 1e-3
_INT8_MIN_COSINE = 0.95


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the runtime needs to reproduce the sentence-transformers pipeline around the graph."""

    dim: int
    max_seq_length: int


@dataclass(frozen=True, slots=True)
class ExportedModel:
    directory: Path
    variant: str
    spec: ModelSpec
    manifest: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.directory / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.directory / TOKENIZER_FILE


def default_cache_root(data_dir: Path | None = None) -> Path:
    """<data dir>/model-cache, the data dir being ``data_dir`` or the user data folder. Derived
    files only: deleting the folder costs one export, nothing else. The application layer
    resolves $ALMANAC_MODEL_CACHE_DIR and $ALMANAC_DATA_DIR (almanac.app.environment)."""
    if data_dir is not None:
        return Path(data_dir) / "model-cache"
    from platformdirs import user_data_path

    return user_data_path("Almanac", appauthor=False) / "model-cache"


def read_spec(model_dir: Path) -> ModelSpec:
    """The pipeline a folder declares; only Transformer -> mean pooling -> Normalize is supported,
    because that is what the runtime reproduces."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        types = tuple(m.get("type") for m in modules)
        if types != _EXPECTED_MODULES:
            raise EmbeddingError(
                "the ONNX embedder supports only Transformer + Pooling + Normalize models; "
                f"{model_dir} has {list(types)}"
            )
        bert = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        pooling_file = model_dir / modules[1]["path"] / "config.json"
        pooling = json.loads(pooling_file.read_text(encoding="utf-8"))
        spec = ModelSpec(
            dim=int(pooling["word_embedding_dimension"]),
            max_seq_length=int(bert["max_seq_length"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EmbeddingError(f"cannot read the model description in {model_dir}: {exc}") from exc
    other_modes = ("cls_token", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens")
    if pooling.get("pooling_mode_mean_tokens") is not True or any(
        pooling.get(f"pooling_mode_{mode}") for mode in other_modes
    ):
        raise EmbeddingError(f"the ONNX embedder supports only mean pooling; see {pooling_file}")
    if bert.get("do_lower_case"):  # sentence-transformers would lowercase before tokenizing
        raise EmbeddingError(f"the ONNX embedder does not support do_lower_case ({model_dir})")
    return spec


def cache_key(model_dir: Path, variant: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe={EXPORT_RECIPE};variant={variant};opset={OPSET}\n".encode())
    for package in ("torch", "onnx", "onnxruntime"):
        digest.update(f"{package}={_version(package)}\n".encode())
    for name in _SOURCE_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(f"{name}={sha256_file(path)}\n".encode())
    return digest.hexdigest()[:20]


def ensure_exported(
    model_dir: Path, variant: str = "int8", cache_root: Path | None = None
) -> ExportedModel:
    """The cached export of ``model_dir``, made first if missing or damaged."""
    if variant not in VARIANTS:
        raise EmbeddingError(f"unknown ONNX variant {variant!r}; expected one of {VARIANTS}")
    model_dir = Path(model_dir)
    spec = read_spec(model_dir)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    final = root / f"{model_dir.name}-{variant}-{cache_key(model_dir, variant)}"
    found = _load_valid(final, variant, spec)
    if found is not None:
        return found
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddingError(f"cannot create the model cache folder {root}: {exc}") from exc
    try:
        _export_once(model_dir, spec, variant, root, final)
    except OSError as exc:
        raise EmbeddingError(f"cannot write the model cache in {root}: {exc}") from exc
    found = _load_valid(final, variant, spec)
    if found is None:  # pragma: no cover - only if the disk changed the files under us
        raise EmbeddingError(f"the exported model in {final} does not verify")
    return found


def _export_once(model_dir: Path, spec: ModelSpec, variant: str, root: Path, final: Path) -> None:
    with _export_lock(root / f".{final.name}.lock"):
        # Another process may have finished the export while this one waited for the lock.
        if _load_valid(final, variant, spec) is not None:
            return
        _discard(final)
        for stale in root.glob(f".{final.name}.*.tmp"):  # left by an export that crashed
            shutil.rmtree(stale, ignore_errors=True)
        log.info("exporting %s to ONNX (%s), once, into %s", model_dir, variant, final)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
        try:
            manifest = _export(model_dir, spec, variant, work)
            (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            try:
                os.replace(work, final)
            except OSError:
                # Only without a working lock (some network file systems): another process
                # renamed its export into place first. Theirs is as good as this one.
                if _load_valid(final, variant, spec) is None:
                    raise EmbeddingError(f"cannot move the exported model into {final}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _load_valid(directory: Path, variant: str, spec: ModelSpec) -> ExportedModel | None:
    """The export in ``directory`` if every file matches its manifest hash, else None."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files: dict[str, str] = manifest["files"]
        if not {MODEL_FILE, TOKENIZER_FILE} <= set(files) or manifest.get("variant") != variant:
            return None
        for name, expected in files.items():
            if sha256_file(directory / name) != expected:
                log.warning("cached model file %s is damaged; exporting again", directory / name)
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("cached model in %s is unreadable; exporting again", directory)
        return None
    return ExportedModel(directory, variant, spec, manifest)


def _discard(directory: Path) -> None:
    # Renamed away first, so a reader never opens a folder that is being deleted.
    if not directory.exists():
        return
    trash = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.trash")
    try:
        os.replace(directory, trash)
    except OSError as exc:
        raise EmbeddingError(f"cannot replace the damaged cached model {directory}: {exc}") from exc
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def _export_lock(path: Path) -> Iterator[None]:
    """Blocks while another process exports the same model. Correctness does not depend on it
    (the rename is atomic); it only saves a second process from doing the same minute of work."""
    handle: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - held for the whole export
    try:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
                    break
                except OSError:  # LK_LOCK gives up after ten seconds; keep waiting
                    continue
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


def _export(model_dir: Path, spec: ModelSpec, variant: str, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    fp32 = work / "model-fp32.onnx"
    probe_ids, probe_mask, reference = _torch_export(model_dir, fp32)
    out = work / MODEL_FILE
    fused_norms = False
    if variant == "int8":
        fused = work / "model-fused.onnx"
        fused_norms = _fuse_norms(fp32, fused)
        _quantize(fused if fused_norms else fp32, out)
        fp32.unlink()
        fused.unlink(missing_ok=True)
    else:
        fp32.replace(out)
    _check_export(out, variant, probe_ids, probe_mask, reference)
    shutil.copyfile(model_dir / TOKENIZER_FILE, work / TOKENIZER_FILE)
    return {
        "recipe": EXPORT_RECIPE,
        "variant": variant,
        "fused_norms": fused_norms,
        "source": str(model_dir),
        "dim": spec.dim,
        "max_seq_length": spec.max_seq_length,
        "versions": {p: _version(p) for p in ("torch", "onnx", "onnxruntime")},
        "export_seconds": round(time.perf_counter() - started, 2),
        "files": {name: sha256_file(work / name) for name in (MODEL_FILE, TOKENIZER_FILE)},
    }


def _torch_export(model_dir: Path, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace the transformer (token states, before pooling) to ONNX; returns a probe batch and
    torch's own output for it, taken before the export touches the module."""
    enforce_offline_env()
    import torch
    from transformers import AutoModel

    try:
        # Eager attention traces to plain MatMul/Softmax ops that onnxruntime fuses and quantizes;
        # the SDPA path traces shape checks into the graph.
        model: Any = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager"
        )
    except Exception as exc:
        raise EmbeddingError(f"cannot load {model_dir} for the ONNX export: {exc}") from exc
    model.eval()

    class TokenStates(torch.nn.Module):
        def __init__(self, inner: Any, token_types: bool) -> None:
            super().__init__()
            self.inner = inner
            self.token_types = token_types

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            extra = {}
            if self.token_types:  # the tokenizer gives all-zero token types for single texts
                extra["token_type_ids"] = torch.zeros_like(input_ids)
            states: torch.Tensor = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state
            return states

    takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
    wrapper = TokenStates(model, takes_token_types).eval()
    # A padded row in the example: an all-ones mask lets transformers skip the mask altogether,
    # and the trace would then ignore padding forever.
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (3, 24), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer and deprecation warnings about code paths this fixed-rank trace doesn't take.
        warnings.simplefilter("ignore")
        reference = wrapper(ids, mask).numpy()
        try:
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(out),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["token_states"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "token_states": {0: "batch", 1: "tokens"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
            )
        except Exception as exc:
            raise EmbeddingError(f"ONNX export of {model_dir} failed: {exc}") from exc
    return ids.numpy(), mask.numpy(), reference


def _fuse_norms(source: Path, out: Path) -> bool:
    """LayerNormalization and Gelu+bias fused into single ops before quantizing: the quantized
    graph then runs ~8% faster (2 cores: 153 vs 142 passages/s) with the same accuracy (cosine to
    fp32 0.994 either way). Attention and skip-layer-norm fusion are left out: they quantize to a
    slower graph (128/s). False, and the graph unfused, when the optimizer doesn't apply."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_attention = False
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_embed_layer_norm = False
    options.enable_gelu_approximation = False  # exact erf Gelu, as the model was trained
    try:
        with _quiet_root_logger():
            model = optimize_model(
                str(source), model_type="bert", optimization_options=options, opt_level=0
            )
            model.save_model_to_file(str(out))
    except Exception as exc:  # an architecture the fusions don't know: quantize it unfused
        log.info("layer-norm fusion skipped for %s: %s", source, exc)
        return False
    return True


def _quantize(source: Path, out: Path) -> None:
    """Dynamic int8: weights per output channel (signed), activations quantized per batch at run
    time (unsigned, the VNNI u8 x s8 path). Per-tensor weights lose too much (cosine ~0.945 to
    fp32); per-channel keeps ~0.994. The embedding table (Gather) is quantized too: its share of
    the error is small and it is most of the file size."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet_root_logger():
            quantize_dynamic(
                source,
                out,
                per_channel=True,
                reduce_range=False,
                weight_type=QuantType.QInt8,
                # Fused ops (onnxruntime's com.microsoft domain) have no shape inference in
                # onnx: their outputs are float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except Exception as exc:
        raise EmbeddingError(f"int8 quantization of the exported model failed: {exc}") from exc


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's optimizer and quantizer log their advice on the root logger, which would
    land in the CLI's output: only errors get through while they run."""
    root = logging.getLogger()
    quiet = _DropRecords()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _check_export(
    model: Path, variant: str, ids: np.ndarray, mask: np.ndarray, reference: np.ndarray
) -> None:
    """A broken export must fail here, once, rather than index a knowledge base with noise."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (states,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    real = mask.astype(bool)
    if variant == "fp32":
        error = float(np.abs(states - reference)[real].max())
        if error > _FP32_MAX_ABS_ERROR:
            raise EmbeddingError(f"the ONNX export differs from the model (max error {error:.2e})")
        return
    pooled = mean_pool_normalized(states, mask)
    ref_pooled = mean_pool_normalized(reference, mask)
    cosine = float((pooled * ref_pooled).sum(axis=1).min())
    if cosine < _INT8_MIN_COSINE:
        raise EmbeddingError(f"the int8 model is too far from the original (cosine {cosine:.3f})")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"
