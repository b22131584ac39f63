"""The fine-tuning recipe: teach a chat model the support desk's behaviour, export a GGUF.

Fine-tuning is for behaviour (tone, ``[n]`` citations, refusing when the sources don't answer);
retrieval stays responsible for facts. The pieces, in pipeline order:

- :mod:`.recipe`: the settings (a TOML or JSON file, defaults for 0.5B-3B models)
- :mod:`.base_model`: early checks of the Hugging Face base model folder
- :mod:`.examples`: (question, answer, passages) -> conversations in the app's prompt format
- :mod:`.data`: JSONL loading and validation, the held-out split
- :mod:`.encoding`: chat-template tokenization with loss only on assistant turns
- :mod:`.train`: LoRA training (PEFT), checkpoints, resume
- :mod:`.export`: merge, GGUF conversion and quantization, adapter GGUF, hashes
- :mod:`.evaluate`: base vs fine-tuned GGUF on the held-out set, through LlamaCppEngine
- :mod:`.pipeline`: the whole recipe, as ``almanac finetune`` runs it

torch, transformers and peft are imported lazily, inside the functions that need them.
"""
