"""Where the model runs: ``LocalModel.load(device=...)`` and ``$SALIENCE_DEVICE``. This machine
has no GPU, so "cuda" and "mps" are checked as what a user without one meets: a clear error,
never a silent fall-back to the CPU. (CUDA itself is untested here.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from salience.markup import parse_messages
from salience.model.loader import DEFAULT_DTYPE, DEVICES, DeviceUnavailableError, resolve_device
from salience.model.local import LocalModel
from salience.service.cli.common import DEVICES as CLI_DEVICES

ROOT = Path(__file__).resolve().parents[2]
CONVERSATION = parse_messages(
    [{"role": "user", "content": "<rule>Answer in one word.</rule> What colour is the sky?"}]
)


def test_the_cli_knows_the_loaders_devices() -> None:
    assert CLI_DEVICES == DEVICES


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_cpu_and_auto_load_and_steer_where_the_weights_are(device: str) -> None:
    lm = LocalModel.load(device=device)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lm.device.type == (expected if device == "auto" else "cpu")
    assert all(p.device == lm.device for p in lm.model.parameters())
    assert lm.model.dtype == {"cpu": torch.float32, "cuda": torch.bfloat16}[lm.device.type]
    assert DEFAULT_DTYPE[lm.device.type] == str(lm.model.dtype).removeprefix("torch.")
    method = lm.method("learned")
    assert method.bias is not None and method.bias.beta.device == lm.device
    plain = lm.generate(CONVERSATION, "none", max_new_tokens=6)
    steered = lm.generate(CONVERSATION, "learned", max_new_tokens=6)
    assert plain.token_ids and steered.token_ids


def test_the_environment_chooses_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALIENCE_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setenv("SALIENCE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, mps"):
        resolve_device()
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit device wins


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_an_unavailable_gpu_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailableError, match="device 'cuda' is not available: ") as info:
        LocalModel.load(device="cuda")
    if torch.version.cuda is None:
        assert "built without CUDA" in str(info.value)
    with pytest.raises(DeviceUnavailableError, match="device 'cuda:3' is not available"):
        resolve_device("cuda:3")
    with pytest.raises(ValueError, match="cuda:N"):
        resolve_device("mps:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Metal")
def test_mps_without_metal_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailableError, match="Metal"):
        resolve_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_cli_says_why_a_device_cannot_be_used() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "salience", "generate", "--device", "cuda", "--method", "none",
         "--max-new-tokens", "2", "-"],
        input="<rule>Be brief.</rule> Hi", cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "device 'cuda' is not available" in run.stderr
    assert "Traceback" not in run.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "salience", "generate", "--device", "gpu", "-"],
        input="Hi", cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--device" in bad.stderr and "cuda:N" in bad.stderr


def test_a_hub_id_without_a_hub_says_how_to_get_the_model() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "from model.local import LocalModel; "
         "LocalModel.load('nobody-here/no-such-model')"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},  # no minute of retries against no network
    )  # fmt: skip
    assert run.returncode == 1
    assert "ModelNotFoundError" in run.stderr
    assert "could not be loaded from the Hugging Face hub" in run.stderr
    assert "pass its folder" in run.stderr
