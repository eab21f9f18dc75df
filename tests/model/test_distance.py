"""β · g(distance): the attention bias that depends on how far the query is from the rule
(issue 15's bias model), on the shipped model (float32)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, DynamicCache

from salience.markup import Level, parse_messages
from salience.model.bias import DistanceScale, ImportanceBias
from salience.model.local import LocalModel
from salience.model.prompt import build_prompt
from salience.model.steer import NAME, Steering, steering

CONV = parse_messages(
    [
        {"role": "system", "content": "You help. <rule>Always answer in French.</rule>"},
        {"role": "user", "content": "Background about rivers and seas. " * 6 + "What is 2+2?"},
    ]
)
ATOL = 1e-4


def logits(lm: LocalModel, ids: torch.Tensor, state: Steering | None) -> torch.Tensor:
    with torch.no_grad(), steering(state):
        out: torch.Tensor = lm.model(ids.unsqueeze(0)).logits[0]
    return out


def biased(lm: LocalModel, distance: bool, values: torch.Tensor | None = None) -> ImportanceBias:
    bias = ImportanceBias.uniform(lm.n_layers, lm.n_heads, {Level.HARD: 1.5, Level.HIGH: 0.75})
    if distance:
        with_g = ImportanceBias(lm.n_layers, lm.n_heads, distance=(0, 8, 32, 128))
        with torch.no_grad():
            with_g.beta.copy_(bias.beta)
            if values is not None:
                assert with_g.distance is not None
                with_g.distance.values.copy_(values)
        return with_g
    return bias


def test_g_interpolates_in_log_distance_and_is_flat_outside_its_knots() -> None:
    g = DistanceScale(2, (0, 15, 255))
    with torch.no_grad():
        g.values.copy_(torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 1.0]]))
    d = torch.tensor([0, 3, 15, 255, 10_000, -5])
    out = g(d)
    assert out.shape == (6, 2)
    x = torch.log1p(torch.tensor(3.0))
    expected = 1 + x / torch.log1p(torch.tensor(15.0))  # between knots 0 and 15
    assert torch.allclose(out[:, 0], torch.tensor([1.0, float(expected), 2, 4, 4, 1]), atol=1e-6)
    assert torch.allclose(out[:, 1], torch.tensor([0.0, 0, 0, 1, 1, 0]), atol=1e-6)


def test_with_g_identically_one_it_is_the_distance_free_model(lm: LocalModel) -> None:
    prompt = build_prompt(lm.tokenizer, CONV)
    gate = torch.zeros(len(prompt), dtype=torch.bool)
    gate[int(prompt.marked().nonzero()[-1]) + 1 :] = True
    old = logits(lm, prompt.input_ids, Steering(biased(lm, False), prompt.level_one_hot(), gate))
    new_bias = biased(lm, True)
    assert new_bias.distance is not None and new_bias.distance.is_identity()
    new = logits(lm, prompt.input_ids, Steering(new_bias, prompt.level_one_hot(), gate))
    assert torch.allclose(new, old, atol=ATOL), (new - old).abs().max()
    # and while decoding (the one-query path), step by step
    for bias in (biased(lm, False), new_bias):
        state = Steering(bias, prompt.level_one_hot(), gate)
        cache = DynamicCache()
        with torch.no_grad(), steering(state):
            out = lm.model(prompt.input_ids.unsqueeze(0), cache=cache, use_cache=True)
            steps = [out.logits[0, -1]]
            for token in (100, 200, 300):
                step = lm.model(torch.tensor([[token]]), cache=cache, use_cache=True)
                steps.append(step.logits[0, -1])
        if bias.distance is None:
            reference = steps
        else:
            for a, b in zip(steps, reference, strict=True):
                assert torch.allclose(a, b, atol=ATOL), (a - b).abs().max()


@contextmanager
def dense_reference(lm: LocalModel, state: Steering) -> Iterator[None]:
    """Attention with the bias as an explicit (q, k) additive mask: every query of the pass gets
    Σ_l β[h, l] · g_l(distance of the query) on each key of level l, causal — what the folded
    path must compute without building it."""

    def dense(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
              **kwargs: Any) -> tuple[torch.Tensor, None]:  # fmt: skip
        layer = module.layer_idx
        _, n_heads, q_len, d = query.shape
        k_len = key.shape[2]
        rep = n_heads // key.shape[1]
        key, value = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
        scores = query @ key.transpose(-1, -2) * (scaling or d**-0.5)  # (1, H, q, k)
        beta = state.bias.layer(layer)  # (H, L)
        levels = state.keys(k_len, torch.float32)[0, 0]  # (k, L); generated keys: none
        factors = state.query_scale(q_len, k_len)
        g = factors[0] if factors is not None else torch.ones(q_len, levels.shape[-1])
        add = torch.einsum("hl,ql,kl->hqk", beta, g, levels)
        gate = state.query_gate(q_len, k_len, torch.float32)  # generated queries included
        if gate is not None:
            add = add * gate[0]
        causal = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
        scores = (scores + add).masked_fill(~causal, float("-inf"))
        out = F.softmax(scores, dim=-1) @ value
        return out.transpose(1, 2).contiguous(), None

    AttentionInterface.register("dense-reference", dense)
    lm.model.set_attn_implementation("dense-reference")
    try:
        yield
    finally:
        lm.model.set_attn_implementation(NAME)


def test_the_folded_path_with_per_query_factors_equals_a_dense_additive_mask(
    lm: LocalModel,
) -> None:
    prompt = build_prompt(lm.tokenizer, CONV)
    values = torch.tensor(
        [[0.2, 1.0, 2.5, 4.0], [1.0, 0.5, 0.5, 3.0], [1.0, 1, 1, 1], [1.0, 1, 1, 1]]
    )  # hard grows with distance, high dips then grows
    bias = biased(lm, True, values)
    gate = torch.zeros(len(prompt), dtype=torch.bool)
    gate[int(prompt.marked().nonzero()[-1]) + 1 :] = True
    state = Steering(bias, prompt.level_one_hot(), gate)
    folded = logits(lm, prompt.input_ids, state)
    with dense_reference(lm, state):
        dense = logits(lm, prompt.input_ids, state)
    assert torch.allclose(folded, dense, atol=ATOL), (folded - dense).abs().max()
    flat = logits(lm, prompt.input_ids, Steering(biased(lm, False), prompt.level_one_hot(), gate))
    assert not torch.allclose(folded, flat, atol=1e-2)  # g changed what the model computes


def test_decoding_steps_with_per_query_factors_equal_the_dense_reference(
    lm: LocalModel,
) -> None:
    """Generated tokens, one step at a time with the KV cache (the per-step row, which only the
    marked columns' values change), against one dense pass over prompt + generated tokens —
    with g changing between steps (knots 0…128 around the rule's distance) and, in a second
    state, beyond the last knot (g constant: the step reuses its rows)."""
    prompt = build_prompt(lm.tokenizer, CONV)
    values = torch.tensor(
        [[0.2, 1.0, 2.5, 4.0], [1.0, 0.5, 0.5, 3.0], [1.0, 1, 1, 1], [1.0, 1, 1, 1]]
    )
    generated = [100, 200, 300, 400, 500, 600]
    full = torch.cat([prompt.input_ids, torch.tensor(generated)])
    for knots in ((0, 8, 32, 128), (0, 2, 4, 8)):
        bias = biased(lm, True, values)
        assert bias.distance is not None
        bias.distance = DistanceScale(4, knots)
        with torch.no_grad():
            bias.distance.values.copy_(values)
        state = Steering(bias, prompt.level_one_hot())
        cache = DynamicCache()
        with torch.no_grad(), steering(state):
            out = lm.model(prompt.input_ids.unsqueeze(0), cache=cache, use_cache=True)
            steps = [out.logits[0, -1]]
            for token in generated:
                step = lm.model(torch.tensor([[token]]), cache=cache, use_cache=True)
                steps.append(step.logits[0, -1])
        reference_state = Steering(bias, prompt.level_one_hot())
        with dense_reference(lm, reference_state):
            dense = logits(lm, full, reference_state)[len(prompt) - 1 :]
        for i, got in enumerate(steps):
            assert torch.allclose(got, dense[i], atol=ATOL), (i, (got - dense[i]).abs().max())
        flat = Steering(biased(lm, False), prompt.level_one_hot())
        with torch.no_grad():
            plain = logits(lm, full, flat)[len(prompt) - 1 :]
        assert not torch.allclose(torch.stack(steps), plain, atol=1e-2)  # g did something


def test_g_has_a_gradient_and_the_model_stays_frozen(lm: LocalModel) -> None:
    bias = biased(lm, True)
    assert bias.distance is not None
    method = lm.method("none")
    method.bias = bias
    logprobs = lm.token_logprobs(CONV, "Deux plus deux font quatre.", method)
    (-logprobs.sum()).backward()
    grad = bias.distance.values.grad
    assert isinstance(grad, torch.Tensor) and grad.shape == bias.distance.values.shape
    assert grad[0].abs().sum() > 0  # hard: the prompt has a hard span
    assert grad[2:].abs().sum() == 0  # normal, low: β is zero there
    assert bias.beta.grad is not None and bias.beta.grad[0].abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in lm.model.parameters())


def test_the_distance_scale_round_trips_through_json(tmp_path: Path) -> None:
    bias = ImportanceBias(30, 9, {"note": "g"}, distance=(0, 16, 256))
    assert bias.distance is not None
    with torch.no_grad():
        bias.beta.normal_()
        bias.distance.values.uniform_(0.5, 2.0)
    bias.save(tmp_path / "b.json")
    again = ImportanceBias.load(tmp_path / "b.json")
    assert again.distance is not None and again.distance.knots == (0, 16, 256)
    assert torch.allclose(again.distance.values, bias.distance.values, atol=1e-6)
    assert ImportanceBias.load(tmp_path / "b.json").to_dict() == bias.to_dict()


def test_the_distance_runs_from_the_nearest_marked_token_before_each_query() -> None:
    """Two rows, spans at different places; g set to log(1 + d) itself reads d back."""
    knots = (0, 1, 3, 7, 15, 31, 63)
    bias = ImportanceBias(1, 1, distance=knots)
    assert bias.distance is not None
    with torch.no_grad():
        bias.distance.values.copy_(
            torch.log1p(torch.tensor(knots, dtype=torch.float32)).expand(4, -1)
        )
    levels = torch.zeros(2, 12, 4)
    levels[0, 2:4, 0] = 1  # row 0: hard at 2-3
    levels[0, 7, 1] = 1  # and high at 7
    levels[1, 5, 0] = 1  # row 1: hard at 5
    state = Steering(bias, levels)
    factors = state.query_scale(14, 14)  # 12 prompt positions and 2 generated
    assert isinstance(factors, torch.Tensor) and factors.shape == (2, 14, 4)
    read = torch.expm1(factors[..., 0]).round().long()
    row0 = [1, 2, 0, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6]  # before any mark: position + 1
    row1 = [1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert read[0].tolist() == row0 and read[1].tolist() == row1
    step = state.query_scale(1, 13)  # a decoding step's query sits at position 12
    assert isinstance(step, torch.Tensor) and step.shape == (2, 1, 4)
    assert torch.expm1(step[:, 0, 0]).round().long().tolist() == [5, 7]


def test_rows_with_and_without_g_batch_together(lm: LocalModel) -> None:
    """A distance-scaled row beside a distance-free one (RowBias), left-padded, in one
    teacher-forced pass: each equals its method alone."""
    from salience.model.batch import Batcher
    from salience.model.methods import Method

    values = torch.tensor([[0.5, 1.0, 2.0, 3.0], [1.0, 1, 1, 1], [1.0, 1, 1, 1], [1.0, 1, 1, 1]])
    scaled = Method("g", bias=biased(lm, True, values))
    short = parse_messages([{"role": "user", "content": "<rule>Be brief.</rule> Name a fruit."}])
    rows, targets, expected = [], [], []
    batcher = Batcher(lm)
    for conv, method, text in (
        (CONV, scaled, " Quatre."),
        (short, lm.method("uniform"), " Apple."),
    ):
        rows.append(batcher.prefill(lm.prompt(conv, method), method))
        targets.append(list(lm.tokenizer(text, add_special_tokens=False)["input_ids"]))
        with torch.no_grad():
            expected.append(lm.continuation_logits(conv, text, method)[0])
    for got, want in zip(batcher.continuation_logits(rows, targets), expected, strict=True):
        assert torch.allclose(got, want, atol=ATOL), (got - want).abs().max()


def test_the_shipped_distance_file_loads_with_its_provenance(lm: LocalModel) -> None:
    from salience.model.methods import default_file

    method = lm.method("distance")
    assert method.bias is not None and method.bias.distance is not None
    assert list(method.bias.distance.knots) == [0, 16, 64, 256, 1024, 2048]
    meta = ImportanceBias.load(default_file("distance")).meta
    assert meta["command"].startswith("salience model fit") and "--distance" in meta["command"]
    assert len(meta["data_version"]) == 12 and meta["fit"]["seed"] == meta["data"]["seed"] == 0
    # it steers: the shipped g and β change the answer's logits against none
    conv = parse_messages(
        [
            {"role": "system", "content": "<rule>Answer in French.</rule>"},
            {"role": "user", "content": "Where is Rome?"},
        ]
    )
    steered, _ = lm.continuation_logits(conv, "Rome", method)
    plain, _ = lm.continuation_logits(conv, "Rome", "none")
    assert not torch.allclose(steered, plain, atol=1e-3)
