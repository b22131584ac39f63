"""Regenerate train.jsonl from qa.json and the sample knowledge base (deterministic).

    .venv/bin/python models/finetune/example/make_dataset.py

The passages are the sample knowledge base's chunks, cut by the app's own chunker with the bundled
embedder's tokenizer, so each training prompt is what the app would show the model for that
question; see ``almanac.finetune.examples``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from almanac.finetune.examples import main

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

if __name__ == "__main__":
    sys.exit(
        main(
            [
                "--kb",
                str(REPO / "resources" / "sample-kb"),
                "--qa",
                str(HERE / "qa.json"),
                "--out",
                str(HERE / "train.jsonl"),
                "--seed",
                "7",
                "--variants",
                "2",
            ]
        )
    )
