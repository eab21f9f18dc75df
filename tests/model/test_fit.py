"""Fitting the learned bias on the shipped model: the loss goes down, runs resume exactly,
unmarked prompts are untouched, and the shipped file loads and changes what the model says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from salience.evals import distractors, split, training
from salience.markup import Conversation, parse_messages
from salience.model.bias import ImportanceBias
from salience.model.fit.fitting import FitConfig, batch_indices, example_loss, fit
from salience.model.fit.plots import heatmap, save_curve
from salience.model.local import LocalModel
from salience.model.methods import Method, default_file


@dataclass(frozen=True)
class Ex:
    conversation: Conversation
    target: str
    anchor: bool = False
    rejected: str = ""


def _rule(rule: str, question: str) -> Conversation:
    background = " ".join(s for s, _ in distractors.prose_sentences()[:6])
    return parse_messages(
        [{"role": "user", "content": f"<rule>{rule}</rule>\n\n{background}\n\n{question}"}],
        trusted_roles=("user",),
        format="tags",
    )


EXAMPLES = [
    Ex(_rule("Answer in all capital letters.", "What is the capital of Italy?"), "ROME."),
    Ex(_rule("End with the word 'Done'.", "What is 2 + 2?"), "4. Done"),
    Ex(_rule("Answer in all capital letters.", "Name a primary colour."), "RED.", anchor=True),
]
CONFIG = FitConfig(steps=6, batch=2, lr=0.2, kl=0.1, l2=0.0, seed=3, checkpoint_every=2)


def _mean_nll(lm: LocalModel, bias: ImportanceBias) -> float:
    with torch.no_grad():
        return sum(example_loss(lm, bias, e, CONFIG)[1] for e in EXAMPLES) / len(EXAMPLES)


def test_a_few_steps_lower_the_loss_and_move_only_marked_levels(
    lm: LocalModel, tmp_path: Path
) -> None:
    before = _mean_nll(lm, ImportanceBias(lm.n_layers, lm.n_heads))
    bias, curve = fit(lm, EXAMPLES, CONFIG, validation=EXAMPLES[:1])
    after = _mean_nll(lm, bias)
    assert after < before - 0.05, (before, after)
    assert len(curve.loss) == CONFIG.steps and curve.val_step == [0, CONFIG.steps]
    assert curve.val_nll[-1] < curve.val_nll[0]  # held-out here means: measured before and after
    beta = bias.beta.detach()
    assert beta[0].abs().sum() > 0  # hard: the rules are <rule>
    assert beta[1:].abs().sum() == 0  # no high, normal or low tokens in these prompts
    assert all(not p.requires_grad for p in lm.model.parameters())
    assert bias.meta["fit"]["seed"] == CONFIG.seed and bias.meta["method"] == "learned"
    save_curve(curve, tmp_path / "curve")
    heatmap(bias, tmp_path / "beta")
    assert (tmp_path / "curve.png").stat().st_size > 0 and (tmp_path / "beta.svg").exists()


def test_a_resumed_fit_equals_an_uninterrupted_one(lm: LocalModel, tmp_path: Path) -> None:
    whole, _ = fit(lm, EXAMPLES, FitConfig(**{**CONFIG.__dict__, "steps": 4}))
    ckpt = tmp_path / "fit.ckpt"
    fit(lm, EXAMPLES, FitConfig(**{**CONFIG.__dict__, "steps": 2}), checkpoint=ckpt)
    resumed, curve = fit(
        lm, EXAMPLES, FitConfig(**{**CONFIG.__dict__, "steps": 4}), checkpoint=ckpt
    )
    assert curve.step == [1, 2, 3, 4]
    torch.testing.assert_close(resumed.beta, whole.beta, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="other settings"):
        fit(lm, EXAMPLES, FitConfig(**{**CONFIG.__dict__, "lr": 0.01}), checkpoint=ckpt)


def test_the_margin_objective_prefers_the_target_to_the_rejected_answer(lm: LocalModel) -> None:
    pairs = [
        Ex(EXAMPLES[0].conversation, "ROME.", rejected="Rome."),
        Ex(EXAMPLES[1].conversation, "4. Done", rejected="4."),
    ]
    config = FitConfig(steps=5, batch=2, lr=0.2, kl=0.0, l2=0.0, seed=1, objective="margin")
    bias, curve = fit(lm, pairs, config, validation=pairs)
    assert curve.val_step == [0, 5] and curve.val_margin[0] == pytest.approx(0.0, abs=1e-3)
    assert curve.val_margin[-1] > 0.2, curve.val_margin  # the target gained on the rejected
    assert bias.meta["val_margin_gain"] == curve.val_margin[-1]
    with pytest.raises(ValueError, match="objective"):
        fit(lm, pairs, FitConfig(steps=1, objective="likelihood"))


def test_the_importance_embedding_fits_saves_and_touches_only_marked_tokens(
    lm: LocalModel, tmp_path: Path
) -> None:
    pairs = [
        Ex(EXAMPLES[0].conversation, "ROME.", rejected="Rome."),
        Ex(EXAMPLES[1].conversation, "4. Done", rejected="4."),
    ]
    config = FitConfig(
        steps=4,
        batch=2,
        lr=0.0,
        kl=0.0,
        l2=0.0,
        seed=1,
        objective="margin",
        embed=True,
        embed_lr=0.02,
    )  # fmt: skip  (lr 0: β stays 0, so any gain is the embedding's)
    bias, curve = fit(lm, pairs, config, validation=pairs)
    assert bias.embed is not None and bias.embed.shape == (4, lm.model.config.hidden_size)
    assert float(bias.beta.detach().abs().sum()) == 0
    assert bias.embed[0].abs().sum() > 0 and bias.embed[1:].abs().sum() == 0  # hard only
    assert curve.val_margin[-1] > curve.val_margin[0] + 0.1, curve.val_margin

    path = tmp_path / "learned.json"
    bias.save(path)
    loaded = ImportanceBias.load(path)
    assert loaded.embed is not None
    torch.testing.assert_close(loaded.embed, bias.embed.detach(), atol=1e-6, rtol=0)
    method = Method("learned", bias=loaded)
    steered, _ = lm.continuation_logits(EXAMPLES[0].conversation, "ROME.", method)
    stock, _ = lm.continuation_logits(EXAMPLES[0].conversation, "ROME.", "none")
    assert (steered - stock).abs().max() > 0.01  # the embedding alone changes the marked prompt
    plain = parse_messages([{"role": "user", "content": "What is the capital of Italy?"}])
    torch.testing.assert_close(
        lm.continuation_logits(plain, "Rome.", method)[0],
        lm.continuation_logits(plain, "Rome.", "none")[0],
        atol=1e-5,
        rtol=0,
    )
    # generation (prefill, then decoding steps from the cache) runs with the embedding
    generated = lm.generate(EXAMPLES[0].conversation, method, max_new_tokens=6)
    assert generated.text


def test_a_fit_can_start_from_uniform(lm: LocalModel) -> None:
    config = FitConfig(steps=1, batch=1, lr=0.0, kl=0.0, seed=0, init_beta=1.0)
    bias, _ = fit(lm, EXAMPLES[:1], config)
    beta = bias.beta.detach()
    assert bool((beta[0] == 1.0).all()) and bool((beta[1] == 0.5).all())
    assert float(beta[2:].abs().sum()) == 0


def test_batches_depend_on_seed_and_step_only() -> None:
    assert batch_indices(10, 4, 0, 7) == batch_indices(10, 4, 0, 7)
    assert batch_indices(10, 4, 0, 7) != batch_indices(10, 4, 0, 8)
    assert sorted(batch_indices(3, 8, 0, 0)) == [0, 1, 2]


def test_a_bias_leaves_prompts_without_marks_unchanged(lm: LocalModel) -> None:
    bias = ImportanceBias(lm.n_layers, lm.n_heads)
    with torch.no_grad():
        bias.beta.normal_(0, 3)
    plain = parse_messages([{"role": "user", "content": "What is the capital of Italy?"}])
    method = Method("x", bias=bias, layers=set(range(lm.n_layers)))
    steered, _ = lm.continuation_logits(plain, "Rome.", method)
    stock, _ = lm.continuation_logits(plain, "Rome.", "none")
    torch.testing.assert_close(steered, stock, atol=1e-4, rtol=0)


def answer(conversation: Conversation) -> str:
    """A deterministic stand-in for the model's answer: the task's expected keyword."""
    text = conversation.messages[-1].document.text
    task = next(t for t in split.tasks("train") if t.prompt in text)
    return f"It is {task.expect[0] if task.expect else 'done'}." if task.expect else "Done."


def test_training_data_comes_from_the_train_split_alone() -> None:
    data = training.build(answer, lambda s: len(s.split()), items=24, variants=3, seed=1)
    assert data.examples, data.skipped
    train_families = {f.id for f in split.families("train")}
    train_tasks = {t.id for t in split.tasks("train")}
    test_prompts = [t.prompt.replace("\n\n", " ") for t in split.tasks("test")]
    for e in data.examples:
        assert e.family in train_families and e.task in train_tasks
        text = " ".join(m.document.text for m in e.conversation.messages)
        assert not any(p in text for p in test_prompts), e
    assert {e.kind for e in data.examples} >= {"similar"}
    assert any(e.anchor for e in data.examples)
    assert any(e.length > 0 for e in data.examples)
    # the dataset version changes with what the fit sees
    other = training.build(answer, lambda s: len(s.split()), items=24, variants=3, seed=2)
    assert other.version != data.version


def test_fit_data_is_built_once_and_validates_on_items_it_never_fits(tmp_path: Path) -> None:
    calls: list[int] = []

    def counted(conversation: Conversation) -> str:
        calls.append(1)
        return answer(conversation)

    def count(text: str) -> int:
        return len(text.split())

    path = tmp_path / "fit-data.json"
    options: dict[str, Any] = {"items": 16, "validation": 12, "seed": 3, "variants": 3}
    options.update(lengths=(0, 64, 256), max_length=64, log=lambda _: None)
    data = training.fit_data(path, counted, count, **options)
    assert path.is_file() and (tmp_path / "fit-data-validation.json").is_file()
    assert data.train and data.validation
    assert all(e.length <= 64 for e in data.train + data.validation)
    assert len(data.train) < len(data.dataset.examples)  # the 256-token examples are left out
    assert not {e.item for e in data.validation} & {e.item for e in data.train}
    assert data.dataset.settings["seed"] == 3  # the validation items come from another seed
    assert "data version" in data.summary(64) and "≤ 64 distractor tokens" in data.summary(64)
    built = len(calls)
    again = training.fit_data(path, counted, count, **options)
    assert len(calls) == built  # loaded, not regenerated
    assert again.dataset.version == data.dataset.version
    assert [e.item for e in again.validation] == [e.item for e in data.validation]


def test_the_shipped_learned_file_loads_and_changes_generation(lm: LocalModel) -> None:
    path = default_file("learned")
    bias = ImportanceBias.load(path)
    meta = bias.meta
    assert meta["method"] == "learned" and meta["command"].startswith("salience model fit")
    assert meta["data_version"] and meta["fit"]["seed"] is not None
    assert path.stat().st_size < 64_000  # kilobytes, not a model
    conv = EXAMPLES[0].conversation
    learned = lm.method("learned")
    with torch.no_grad():
        steered, _ = lm.continuation_logits(conv, "ROME.", learned)
        stock, _ = lm.continuation_logits(conv, "ROME.", "none")
    assert float((steered - stock).abs().max()) > 0.1
    prompts = [
        e.conversation for e in EXAMPLES
    ] + [
        parse_messages([{"role": "user", "content": f"<rule>{rule}</rule>\n\n{task}"}],
                       trusted_roles=("user",), format="tags")
        for rule, task in [("Do not use any commas in your answer.", "Describe a morning routine."),
                           ("Answer in at most 10 words.", "Explain how a bicycle works.")]
    ]  # fmt: skip
    outs = [
        (lm.generate(c, "none", max_new_tokens=16).text,
         lm.generate(c, "learned", max_new_tokens=16).text)
        for c in prompts
    ]  # fmt: skip
    assert any(a != b for a, b in outs), outs


def test_a_distance_scale_fits_with_beta_and_resumes(lm: LocalModel, tmp_path: Path) -> None:
    """--distance: g's values move (from g ≡ 1) along with β, the LLM stays frozen, a resumed
    fit equals an uninterrupted one, and the file loads through the learned method."""
    config = FitConfig(
        **{**CONFIG.__dict__, "steps": 4, "objective": "margin", "distance_knots": (0, 8, 64)}
    )
    pairs = [
        Ex(EXAMPLES[0].conversation, "ROME.", rejected="Rome."),
        Ex(EXAMPLES[1].conversation, "4. Done", rejected="4."),
    ]
    whole, _ = fit(lm, pairs, config)
    assert whole.distance is not None and whole.distance.knots == (0, 8, 64)
    assert not whole.distance.is_identity()
    assert whole.beta.detach().abs().sum() > 0
    assert not any(p.requires_grad for p in lm.model.parameters())
    ckpt = tmp_path / "g.ckpt"
    fit(lm, pairs, FitConfig(**{**config.__dict__, "steps": 2}), checkpoint=ckpt)
    resumed, _ = fit(lm, pairs, config, checkpoint=ckpt)
    assert resumed.distance is not None
    assert torch.allclose(resumed.distance.values, whole.distance.values, atol=1e-6)
    whole.save(tmp_path / "g.json")
    method = lm.method("learned", bias_path=str(tmp_path / "g.json"))
    assert method.bias is not None and method.bias.distance is not None
