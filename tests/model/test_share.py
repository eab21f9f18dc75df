"""``share``: β that holds the marked keys to a target share of attention whatever the prompt's
length — g of the ratio of unmarked to marked keys each query sees (issue 15), on the shipped
model (float32)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from salience.markup import LEVELS, Conversation, Level, parse_messages
from salience.model.batch import Batcher
from salience.model.bias import ImportanceBias
from salience.model.local import LocalModel
from salience.model.methods import DEFAULT_SHARE, MethodError, resolve
from salience.model.prompt import build_prompt
from salience.model.steer import Steering, steering

from .test_distance import ATOL, dense_reference, logits


def chat(background_repeats: int) -> Conversation:
    return parse_messages(
        [
            {"role": "system", "content": "You help. <rule>Always answer in French.</rule>"},
            {
                "role": "user",
                "content": "Background about rivers and seas. " * background_repeats
                + "What is 2+2?",
            },
        ]
    )


def expected(share: float, ratio: float) -> float:
    return max(0.0, math.log(share / (1 - share)) + math.log(ratio)) if ratio > 0 else 0.0


def test_the_factor_is_logit_share_plus_log_ratio_not_counting_padding() -> None:
    """One marked key at column 0 of row 0, and at column 3 of row 1 behind 3 padding columns:
    a query at column p sees p + 1 (row 0) or p - 2 (row 1) keys, one of them marked — on the
    knots (ratios 1, 2, 4, 8, 16) g is the formula exactly; a generated query keeps counting."""
    share = 0.2
    bias = ImportanceBias.share(1, 1, share)
    levels = torch.zeros(2, 20, len(LEVELS))
    levels[0, 0, 0] = 1
    levels[1, 3, 0] = 1
    state = Steering(bias, levels, offsets=torch.tensor([0, 3]))
    factors = state.query_scale(20, 20)
    assert isinstance(factors, torch.Tensor) and factors.shape == (2, 20, len(LEVELS))
    for ratio in (1, 2, 4, 8, 16):
        assert factors[0, ratio, 0].item() == pytest.approx(expected(share, ratio), abs=1e-5)
        assert factors[1, ratio + 3, 0].item() == pytest.approx(expected(share, ratio), abs=1e-5)
    assert factors[0, 1, 0] == 0  # logit(0.2) + log 1 < 0: no bias where the rule has its share
    step = state.query_scale(1, 33)  # a generated query at column 32: 32 unmarked keys per mark
    assert isinstance(step, torch.Tensor)
    assert step[0, 0, 0].item() == pytest.approx(expected(share, 32), abs=1e-5)
    assert step[1, 0, 0].item() == pytest.approx(expected(share, 29), abs=0.02)  # between knots
    assert ImportanceBias.share(1, 1, share).beta[LEVELS.index(Level.HIGH), 0, 0] == 0.5


def test_a_short_prompt_gets_no_bias_and_a_long_one_does(lm: LocalModel) -> None:
    method = resolve("share", lm.n_layers, lm.n_heads)
    none = resolve("none", lm.n_layers, lm.n_heads)
    short = chat(1)  # ~40 keys, 6 of them the rule: far above the default share
    with torch.no_grad():
        same = lm.continuation_logits(short, " Quatre.", method)[0]
        plain = lm.continuation_logits(short, " Quatre.", none)[0]
    assert torch.equal(same, plain)
    long = chat(120)  # ~1,000 keys
    prompt = build_prompt(lm.tokenizer, long)
    bias = ImportanceBias.share(lm.n_layers, lm.n_heads, DEFAULT_SHARE)
    assert method.bias is not None and method.bias.signature() == bias.signature()  # the default
    factors = Steering(bias, prompt.level_one_hot()).query_scale(len(prompt), len(prompt))
    assert isinstance(factors, torch.Tensor) and float(factors[0, -1, 0].detach()) > 0.5
    with torch.no_grad():
        steered = lm.continuation_logits(long, " Quatre.", method)[0]
        plain = lm.continuation_logits(long, " Quatre.", none)[0]
    assert not torch.allclose(steered, plain, atol=1e-2)


def test_the_folded_path_and_decoding_equal_the_dense_reference(lm: LocalModel) -> None:
    """share@0.2 on a short chat: the factors grow from 0 over the prompt, so every query
    carries its own; prefill and six cached decoding steps against one dense pass."""
    bias = ImportanceBias.share(lm.n_layers, lm.n_heads, 0.2)
    prompt = build_prompt(lm.tokenizer, chat(6))
    state = Steering(bias, prompt.level_one_hot())
    factors = state.query_scale(len(prompt), len(prompt))
    assert isinstance(factors, torch.Tensor)
    factors = factors.detach()
    assert float(factors[0, :, 0].min()) == 0 and float(factors[0, -1, 0]) > 0.5
    generated = [100, 200, 300, 400, 500, 600]
    full = torch.cat([prompt.input_ids, torch.tensor(generated)])
    cache = DynamicCache()
    with torch.no_grad(), steering(state):
        out = lm.model(prompt.input_ids.unsqueeze(0), cache=cache, use_cache=True)
        steps = [out.logits[0, -1]]
        for token in generated:
            steps.append(
                lm.model(torch.tensor([[token]]), cache=cache, use_cache=True).logits[0, -1]
            )
    folded = logits(lm, prompt.input_ids, Steering(bias, prompt.level_one_hot()))
    reference = Steering(bias, prompt.level_one_hot())
    with dense_reference(lm, reference):
        dense = logits(lm, full, reference)
    assert torch.allclose(folded, dense[: len(prompt)], atol=ATOL)
    for i, got in enumerate(steps):
        want = dense[len(prompt) - 1 + i]
        assert torch.allclose(got, want, atol=ATOL), (i, (got - want).abs().max())


def test_a_left_padded_row_counts_only_its_own_keys(lm: LocalModel) -> None:
    """A share row padded to a longer row's width, in one teacher-forced pass: it equals the
    row alone (the padding is not counted as keys seen)."""
    share = resolve("share@0.2", lm.n_layers, lm.n_heads)
    uniform = resolve("uniform", lm.n_layers, lm.n_heads)
    batcher = Batcher(lm)
    rows, targets, want = [], [], []
    for conv, method, text in ((chat(6), share, " Quatre."), (chat(30), uniform, " Four.")):
        rows.append(batcher.prefill(lm.prompt(conv, method), method))
        targets.append(list(lm.tokenizer(text, add_special_tokens=False)["input_ids"]))
        with torch.no_grad():
            want.append(lm.continuation_logits(conv, text, method)[0])
    assert len(rows[0].prompt) < len(rows[1].prompt)  # the share row is the padded one
    for got, alone in zip(batcher.continuation_logits(rows, targets), want, strict=True):
        assert torch.allclose(got, alone, atol=ATOL), (got - alone).abs().max()


def test_the_share_rides_in_the_name_and_round_trips(tmp_path: Path) -> None:
    method = resolve("share@0.05", 30, 9)
    assert method.bias is not None and method.bias.meta["share"] == 0.05
    for bad in ("share@0", "share@1.5", "share@x"):
        with pytest.raises(MethodError):
            resolve(bad, 30, 9)
    method.bias.save(tmp_path / "s.json")
    again = ImportanceBias.load(tmp_path / "s.json")
    assert again.distance is not None and again.distance.input == "ratio"
    assert method.bias.distance is not None
    assert again.distance.knots == method.bias.distance.knots
    assert torch.allclose(again.distance.values, method.bias.distance.values, atol=1e-5)
    assert torch.equal(again.beta, method.bias.beta)
    assert again.signature() != resolve("share@0.1", 30, 9).bias.signature()  # type: ignore[union-attr]
