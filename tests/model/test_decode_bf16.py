"""A bfloat16 decoding step on the CPU attends by two matmuls and a float32 softmax instead of
the fused kernel (it is 2–3× faster there): the next-token log-probabilities it gives stay as
close to float32's as the fused kernel's do, within the suite's "close" tolerance for bfloat16
(mean |Δ log p| ≤ 0.1, max ≤ 1.0 nats per token); and in float32 the arithmetic is the
kernel's, with and without an additive mask."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from salience.model import steer
from salience.model.batch import Batcher
from salience.model.local import LocalModel

from .test_batch import CONVS

CLOSE_MEAN, CLOSE_MAX = 0.1, 1.0  # as bench/eval.py uses them to accept bfloat16
STEPS = 12


@pytest.fixture(scope="module")
def bf16() -> LocalModel:
    return LocalModel.load(dtype="bfloat16")


@pytest.fixture
def fused_kernel() -> Iterator[None]:
    steer.MATMUL_DECODE = False
    try:
        yield
    finally:
        steer.MATMUL_DECODE = True


def stepwise_logprobs(lm: LocalModel, tokens: list[int]) -> torch.Tensor:
    """Log-probabilities of ``tokens`` after the first test prompt, fed one decoding step at a
    time against the cache (the path under test)."""
    ids = lm.prompt(CONVS[0], lm.method("none")).input_ids.unsqueeze(0).to(lm.device)
    out: list[float] = []
    with torch.no_grad():
        step = lm.model(ids, use_cache=True)
        for token in tokens:
            out.append(float(torch.log_softmax(step.logits[0, -1].float(), -1)[token]))
            step = lm.model(
                torch.tensor([[token]]), past_key_values=step.past_key_values, use_cache=True
            )
    return torch.tensor(out)


def test_attending_by_matmul_is_the_fused_kernel_in_float32() -> None:
    """The arithmetic itself: the same attention as the kernel, with and without an additive
    mask (padding, a bias row), the heads sharing a KV head as its query rows."""
    torch.manual_seed(0)
    query = torch.randn(2, 3, 3, 64)
    key, value = torch.randn(2, 3, 40, 64), torch.randn(2, 3, 40, 64)
    mask = torch.randn(2, 3, 3, 40)
    mask[0, :, :, :7] = torch.finfo(torch.float32).min  # left padding
    for m in (None, mask):
        expected = F.scaled_dot_product_attention(query, key, value, attn_mask=m, scale=0.125)
        got = steer._attend_by_matmul(query, key, value, m, 0.125)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_matmul_decoding_is_as_close_to_float32_as_the_fused_kernel(
    lm: LocalModel, bf16: LocalModel, request: pytest.FixtureRequest
) -> None:
    batcher = Batcher(lm)
    m = lm.method("none")
    try:
        filled = batcher.prefill(lm.prompt(CONVS[0], m), m)
        tokens = list(batcher.decode([filled], [0], [0.0], STEPS)[0])
    finally:
        batcher.release()
    reference = stepwise_logprobs(lm, tokens)  # float32 (the fused kernel)
    matmul = stepwise_logprobs(bf16, tokens)
    request.getfixturevalue("fused_kernel")
    fused = stepwise_logprobs(bf16, tokens)
    for name, got in (("matmul", matmul), ("fused", fused)):
        delta = (got - reference).abs()
        assert float(delta.mean()) <= CLOSE_MEAN, name
        assert float(delta.max()) <= CLOSE_MAX, name
    assert float((matmul - fused).abs().mean()) <= CLOSE_MEAN
