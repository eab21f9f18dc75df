from __future__ import annotations

import pytest
import torch

from salience.model.local import LocalModel


@pytest.fixture(scope="session")
def lm() -> LocalModel:
    torch.set_num_threads(2)
    return LocalModel.load()  # the embedded SmolLM2-135M-Instruct (converted once, then cached)
