"""The attention bias on the shipped model: exact at β = 0, where it acts, KV cache, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import DynamicCache

from salience.markup import Level, parse_messages
from salience.model.bias import ImportanceBias
from salience.model.local import LocalModel
from salience.model.prompt import build_prompt
from salience.model.steer import Steering, steering

CONV = parse_messages(
    [
        {
            "role": "system",
            "content": "You help. <rule>Always answer in French, in one sentence.</rule>",
        },
        {
            "role": "user",
            "content": "Some background text that is long enough to matter. What is 2+2?",
        },
    ]
)


def logits(lm: LocalModel, ids: torch.Tensor, state: Steering | None) -> torch.Tensor:
    with torch.no_grad(), steering(state):
        out: torch.Tensor = lm.model(ids.unsqueeze(0)).logits[0]
    return out


def test_zero_beta_through_the_folded_path_equals_the_stock_model(lm: LocalModel) -> None:
    prompt = build_prompt(lm.tokenizer, CONV)
    stock = logits(lm, prompt.input_ids, None)
    zero = ImportanceBias(lm.n_layers, lm.n_heads)
    every_layer = set(range(lm.n_layers))
    folded = logits(
        lm, prompt.input_ids, Steering(zero, prompt.level_one_hot(), layers=every_layer)
    )
    assert torch.allclose(folded, stock, atol=1e-4), (folded - stock).abs().max()


def test_positive_beta_raises_attention_mass_on_the_span_only_in_steered_heads(
    lm: LocalModel,
) -> None:
    prompt = build_prompt(lm.tokenizer, CONV)
    bias = ImportanceBias(lm.n_layers, lm.n_heads)
    steered = [(3, 1), (10, 4), (20, 7)]
    with torch.no_grad():
        for layer, head in steered:
            bias.beta[0, layer, head] = 2.0  # hard
    plain = Steering(ImportanceBias(lm.n_layers, lm.n_heads), prompt.level_one_hot(), record=True)
    biased = Steering(bias, prompt.level_one_hot(), record=True)
    logits(lm, prompt.input_ids, plain)
    logits(lm, prompt.input_ids, biased)
    first = min(layer for layer, _ in steered)
    for layer in range(lm.n_layers):
        for head in range(lm.n_heads):
            before, after = float(plain.mass[layer][head]), float(biased.mass[layer][head])
            if layer == first and (layer, head) in steered:
                # same inputs as unsteered: each query's mass m becomes m·e^β / (m·e^β + 1 − m),
                # which lies in (m, e^β·m]; so does their average
                assert before * 1.5 < after <= before * math.e**2 + 1e-6, (
                    layer,
                    head,
                    before,
                    after,
                )
            elif (layer, head) in steered:
                assert after > 1.5 * before, (layer, head, before, after)
            elif layer <= first:
                # not steered, and upstream of every steered head: untouched
                assert after == pytest.approx(before, abs=1e-6), (layer, head)


def test_decoding_with_the_cache_matches_recomputing_under_the_same_bias(lm: LocalModel) -> None:
    prompt = build_prompt(lm.tokenizer, CONV)
    bias = ImportanceBias.uniform(lm.n_layers, lm.n_heads, {Level.HARD: 1.5})
    gate = torch.zeros(len(prompt), dtype=torch.bool)
    gate[len(prompt) // 2 :] = True
    state = Steering(bias, prompt.level_one_hot(), gate=gate)
    ids = prompt.input_ids.unsqueeze(0)
    cache = DynamicCache()
    generated = []
    with torch.no_grad(), steering(state):
        step_logits = lm.model(ids, past_key_values=cache, use_cache=True).logits[0, -1]
        for _ in range(5):
            token = int(step_logits.argmax())
            generated.append(token)
            step = torch.tensor([[token]])
            step_logits = lm.model(step, past_key_values=cache, use_cache=True).logits[0, -1]
    full = torch.cat([prompt.input_ids, torch.tensor(generated)])
    recomputed = logits(lm, full, state)[-1]
    assert torch.allclose(step_logits, recomputed, atol=1e-3), (
        (step_logits - recomputed).abs().max()
    )
    unbiased = logits(lm, full, None)[-1]
    assert not torch.allclose(unbiased, recomputed, atol=1e-2)


def test_gradients_reach_beta_with_the_model_frozen(lm: LocalModel) -> None:
    bias = ImportanceBias.uniform(lm.n_layers, lm.n_heads, {Level.HARD: 0.5})
    method = lm.method("none")
    method.bias = bias
    logprobs = lm.token_logprobs(CONV, "Deux plus deux font quatre.", method)
    loss = -logprobs.sum()
    loss.backward()
    assert bias.beta.grad is not None
    hard_grad = bias.beta.grad[0]
    assert hard_grad.abs().sum() > 0
    assert bias.beta.grad[1:].abs().sum() == 0  # no high/normal/low tokens in this prompt
    assert all(p.grad is None for p in lm.model.parameters())
    assert not any(p.requires_grad for p in lm.model.parameters())


def test_importance_bias_round_trips_through_json(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bias.json"
    bias = ImportanceBias(30, 9, {"note": "test"})
    with torch.no_grad():
        bias.beta.normal_()
    bias.save(path)
    again = ImportanceBias.load(path)
    assert torch.allclose(again.beta, bias.beta, atol=1e-6)
    assert again.meta == {"note": "test"}
