"""Batched generation on the shipped model (float32): a batch, a reused prefix and a reused
prompt cache give what one sequence computed alone gives.

Logits agree within ``ATOL``; spa's logits are l + ω(l − m) of two passes that each agree within
``ATOL``, so they are held to (1 + 2ω)·``ATOL``.

Rows differ in length (left padding) and marked and unmarked rows are mixed. Greedy answers
must agree token for token, except at a near-tie: batched kernels sum in another order, so
where the unbatched top two logits lie within ``NEAR_TIE`` of each other either pick is right,
and the rows may part there.
"""

from __future__ import annotations

import pytest
import torch

from salience.markup import Conversation, parse_messages
from salience.model.batch import Batcher
from salience.model.local import LocalModel

ATOL = 1e-4
NEAR_TIE = 1e-3
METHODS = ("none", "uniform", "learned", "spa", "xml")


def conv(rule: str, background: str, task: str) -> Conversation:
    parts = [f"<rule>{rule}</rule>" if rule else "", background, task]
    content = "\n\n".join(p for p in parts if p)
    return parse_messages([{"role": "user", "content": content}], trusted_roles=("user",))


CONVS = [
    conv(
        "Answer in French.",
        "Background: rivers carry water to the sea. " * 6,
        "What is the capital of Italy?",
    ),
    conv("", "", "Name a colour."),  # unmarked, short
    conv("Use no commas.", "Stars are far away. " * 4, "Describe a cat."),
    conv("End with 'That is all.'", "", "Describe a dog in two sentences."),
]
TARGETS = [
    " La capitale de l'Italie est Rome.",
    " Blue, like the sky.",
    " A cat is a small furry animal that sleeps a lot",
    " Dogs are loyal. That is all.",
]


@pytest.fixture(scope="module")
def batcher(lm: LocalModel) -> Batcher:
    return Batcher(lm)


def atol(lm: LocalModel, name: str) -> float:
    contrast = lm.method(name).contrast
    return ATOL * (1 + 2 * contrast.omega) if contrast is not None else ATOL


def ids(lm: LocalModel, text: str) -> list[int]:
    encoded = lm.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
    return list(encoded["input_ids"])


@pytest.mark.parametrize("name", METHODS)
def test_batched_logits_equal_unbatched_at_every_teacher_forced_step(
    lm: LocalModel, batcher: Batcher, name: str
) -> None:
    method = lm.method(name)
    prompts = [lm.prompt(c, method) for c in CONVS]
    assert len({len(p) for p in prompts}) == len(prompts)  # every row padded differently
    marked = sum(bool(p.marked().any()) for p in prompts)
    assert marked == (0 if method.text else 3)  # a text rendering carries no marks
    filled = batcher.prefill_padded(prompts, method)  # one left-padded forward pass
    targets = [ids(lm, t) for t in TARGETS]
    batched = batcher.continuation_logits(filled, targets)  # one more, over all continuations
    for c, text, got in zip(CONVS, TARGETS, batched, strict=True):
        with torch.no_grad():
            alone, _ = lm.continuation_logits(c, text, method)
        assert got.shape == alone.shape
        assert torch.allclose(got, alone, atol=atol(lm, name), rtol=0), (got - alone).abs().max()


@pytest.mark.parametrize("name", METHODS)
def test_a_reused_prefix_and_a_reused_prompt_cache_equal_recomputing(
    lm: LocalModel, batcher: Batcher, name: str
) -> None:
    method = lm.method(name)
    plain = lm.method("none")
    for c, text in zip(CONVS, TARGETS, strict=True):
        prompt = lm.prompt(c, method)
        prefix = batcher.prefix(lm.prompt(c, plain))
        shared = batcher.prefill(prompt, method, prefix)
        fresh = batcher.prefill(prompt, method)
        assert fresh.shared == 0
        first_marked = int((prompt.levels >= 0).nonzero()[0]) if prompt.marked().any() else None
        if method.bias is not None and first_marked is not None:
            assert 0 < shared.shared <= first_marked  # nothing steered is reused
        elif method.contrast is not None and first_marked is not None:
            # a contrastive method's main pass is unsteered (all of it is shared), its masked
            # pass is not
            assert shared.shared == len(prompt) - 1
            assert shared.masked_kv is not None
            assert 0 < shared.masked_shared <= first_marked
            assert fresh.masked_logits is not None and shared.masked_logits is not None
            assert torch.allclose(shared.masked_logits, fresh.masked_logits, atol=ATOL, rtol=0)
        else:
            assert shared.shared >= 1
        assert torch.allclose(shared.logits, fresh.logits, atol=atol(lm, name), rtol=0)
        # the prompt cache reused for a continuation, twice (as for two references)
        target = ids(lm, text)
        once, twice = batcher.continuation_logits([shared, shared], [target, target])
        with torch.no_grad():
            alone, _ = lm.continuation_logits(c, text, method)
        assert torch.allclose(once, alone, atol=atol(lm, name), rtol=0)
        assert torch.allclose(twice, alone, atol=atol(lm, name), rtol=0)


@pytest.mark.parametrize("name", ("none", "uniform", "spa"))
def test_batched_greedy_answers_agree_with_one_at_a_time(
    lm: LocalModel, batcher: Batcher, name: str
) -> None:
    method = lm.method(name)
    plain = lm.method("none")
    filled = [batcher.prefill(lm.prompt(c, method), method, batcher.prefix(lm.prompt(c, plain)))
              for c in CONVS]  # fmt: skip
    batched = batcher.decode(filled, [0] * len(CONVS), 0.0, 16)
    for c, got in zip(CONVS, batched, strict=True):
        alone = lm.generate(c, method, max_new_tokens=16).token_ids
        assert_same_or_parted_at_a_near_tie(lm, c, name, got, alone)


def assert_same_or_parted_at_a_near_tie(
    lm: LocalModel, c: Conversation, name: str, got: list[int], alone: list[int]
) -> None:
    if got == alone:
        return
    # a near-tie: the first step where they part must be one
    step = next(i for i, (a, b) in enumerate(zip(got, alone, strict=False)) if a != b)
    text = lm.tokenizer.decode(alone[:step])
    with torch.no_grad():
        logits, _ = lm.continuation_logits(c, text + "x", lm.method(name))
    top = torch.topk(logits[min(step, len(logits) - 1)], 2).values
    assert float(top[0] - top[1]) < NEAR_TIE, (name, got, alone)


def test_a_sampled_row_does_not_depend_on_its_batch(lm: LocalModel, batcher: Batcher) -> None:
    method = lm.method("uniform")
    filled = [batcher.prefill(lm.prompt(c, method), method) for c in CONVS]
    alone = batcher.decode([filled[0]], [1234], 0.7, 12)[0]
    crowd = batcher.decode([filled[2], filled[0], filled[1], filled[0]], [5, 1234, 6, 99], 0.7, 12)
    assert crowd[1] == alone
    assert crowd[3] != alone or crowd[3] == batcher.decode([filled[0]], [99], 0.7, 12)[0]
    again = batcher.decode([filled[0]], [99], 0.7, 12)[0]
    assert crowd[3] == again


def test_rows_of_several_methods_in_one_batch_equal_each_row_alone(
    lm: LocalModel, batcher: Batcher
) -> None:
    """One pass over rows under none, uniform, learned, spa and xml (spa's masked pass rides
    along as a stream of its own): each row's continuation logits and greedy answer are what
    that row gives under its own method, alone."""
    plain = lm.method("none")
    rows, targets, expected, names = [], [], [], []
    for i, name in enumerate(METHODS):
        c, text = CONVS[i % len(CONVS)], TARGETS[i % len(TARGETS)]
        method = lm.method(name)
        rows.append(
            batcher.prefill(lm.prompt(c, method), method, batcher.prefix(lm.prompt(c, plain)))
        )
        targets.append(ids(lm, text))
        with torch.no_grad():
            expected.append(lm.continuation_logits(c, text, method)[0])
        names.append(name)
    assert any(r.masked_kv is not None for r in rows)  # the spa row has a masked stream
    got = batcher.continuation_logits(rows, targets)
    for name, g, e in zip(names, got, expected, strict=True):
        assert torch.allclose(g, e, atol=atol(lm, name), rtol=0), (name, (g - e).abs().max())
    mixed = batcher.decode(rows, [0] * len(rows), 0.0, 12)
    for i, (row, answer) in enumerate(zip(rows, mixed, strict=True)):
        alone = batcher.decode([row], [0], 0.0, 12)[0]
        assert_same_or_parted_at_a_near_tie(lm, CONVS[i % len(CONVS)], names[i], answer, alone)


def test_rows_per_pass_fit_the_memory_available(lm: LocalModel) -> None:
    """The default batch: 16 rows where their caches fit in half the memory available (less
    the headroom), fewer where they would not, never none."""
    from salience.model.batch import HEADROOM, MAX_ROWS, cache_bytes, rows_that_fit

    window = 8192
    gib = 1024**3
    assert cache_bytes(lm, window) == 2 * 30 * 3 * 64 * window * 4  # SmolLM2-135M, float32
    assert rows_that_fit(lm, window, available=24 * gib) == MAX_ROWS
    assert rows_that_fit(lm, window, available=2 * HEADROOM) == 1  # nothing left: one row
    small = rows_that_fit(lm, window, available=8 * gib)
    assert 1 < small < MAX_ROWS
    assert (HEADROOM + small * cache_bytes(lm, window) * 3 // 2) <= 4 * gib
    assert rows_that_fit(lm, 512, available=8 * gib) == MAX_ROWS  # short prompts: all 16
    assert rows_that_fit(lm, window) >= 1  # this machine, now
