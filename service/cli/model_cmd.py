"""``salience model …``: work on the local model's steering parameters.

salience model profile-pasta [--items 8] [--k 16] [--beta 1.5] [--seed 0] [--out FILE]
salience model fit [--items 40] [--variants 4] [--steps 200] [--seed 0] [--checkpoint FILE]
salience model score --data FILE --methods uniform@0.5,uniform@1 [--max-length 1024]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from .common import CliError, command, from_options, model_options

DEFAULT_PASTA = "model/data/pasta-smollm2-135m.json"
DEFAULT_LEARNED = "model/data/learned-smollm2-135m.json"


def register(commands: Any) -> None:
    p = command(
        commands, "model", "profile or inspect the local model's steering parameters", __doc__
    )
    sub = p.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    pasta = command(
        sub,
        "profile-pasta",
        help="PASTA head profiling: steer each head alone, keep the k that help most",
        run=run_pasta,
    )
    pasta.add_argument(
        "--data",
        default=None,
        help="profile on this fit dataset (train split; see `model fit --data`) instead of the "
        "built-in set: its examples with a rejected answer, up to --max-length distractor tokens",
    )
    pasta.add_argument("--max-length", type=int, default=512, help="with --data")
    pasta.add_argument("--items", type=int, default=8, help="profiling items (prompts)")
    pasta.add_argument("--distractor", type=int, default=8, help="background sentences per item")
    pasta.add_argument("--k", type=int, default=16, help="heads to keep")
    pasta.add_argument("--beta", type=float, default=1.5, help="β on the kept heads")
    pasta.add_argument("--layers", default=None, help="e.g. 0-29 or 3,5 (default: all)")
    model_options(pasta, seed="item draw seed")
    pasta.add_argument("--out", default=DEFAULT_PASTA, help="the bias file to write")

    score = command(
        sub,
        "score",
        help="margin gain and target NLL change of methods on a fit dataset (train split)",
        description="For each example with a rejected answer: how much a method raises "
        "log p(target) − log p(rejected) over the unsteered model, and how much it changes the "
        "target's NLL. Chooses strengths without touching the test split.",
        run=run_score,
    )
    score.add_argument("--data", required=True, help="a dataset written by `model fit --data`")
    score.add_argument(
        "--methods",
        required=True,
        help="e.g. uniform@0.5,uniform@1,pasta; LABEL=FILE scores a bias file (a candidate fit)",
    )
    score.add_argument("--max-length", type=int, default=None, help="skip longer distractors")
    score.add_argument("--limit", type=int, default=None, help="first N usable examples")
    score.add_argument(
        "--pick-within",
        type=float,
        default=None,
        help="also name the method with the largest margin gain whose NLL rises by at most this",
    )
    model_options(score, seed="example order seed")

    fit = command(
        sub,
        "fit",
        help="fit the learned bias (β per level, layer, head) on the eval's train split",
        description="Targets come from the model's own answers (see evals/training.py); the "
        "dataset is cached in --data, the optimiser state in --checkpoint, so a killed fit "
        "resumes where it stopped.",
        run=run_fit,
    )
    fit.add_argument("--items", type=int, default=40, help="train-split items")
    fit.add_argument("--variants", type=int, default=4, help="prompts per item")
    fit.add_argument("--kinds", default="prose,similar,conflicting,noise", help="distractor kinds")
    fit.add_argument("--lengths", default="0,256,512,1024", help="distractor tokens")
    fit.add_argument("--positions", default="system,before,after,both", help="rule positions")
    fit.add_argument("--validation", type=int, default=8, help="held-out train-split prompts")
    fit.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="fit (and validate) only on prompts with at most this many distractor tokens",
    )
    fit.add_argument("--target-tokens", type=int, default=64, help="answer length for targets")
    fit.add_argument("--steps", type=int, default=200, help="optimiser steps")
    fit.add_argument("--batch", type=int, default=4, help="examples per step")
    fit.add_argument("--lr", type=float, default=0.05, help="learning rate of β")
    fit.add_argument("--kl", type=float, default=0.5, help="weight of the anchor KL term")
    fit.add_argument(
        "--objective", choices=("nll", "margin"), default="nll", help="what β is fitted to"
    )
    fit.add_argument("--nll-weight", type=float, default=0.2, help="margin objective: NLL weight")
    fit.add_argument("--l2", type=float, default=1e-3, help="weight decay on β")
    fit.add_argument(
        "--init-beta",
        type=float,
        default=0.0,
        help="start from uniform (hard β, high β/2) instead of zero, e.g. uniform's chosen β",
    )
    fit.add_argument(
        "--embed",
        action="store_true",
        help="also fit an importance embedding: a vector per level added to marked tokens' inputs",
    )
    fit.add_argument("--embed-lr", type=float, default=0.005, help="learning rate of the embedding")
    fit.add_argument(
        "--distance",
        default=None,
        metavar="KNOTS",
        help="also fit g(distance): β · g_level(log(1 + tokens from the nearest marked span)), "
        "with values at these comma-separated knots, e.g. 0,16,64,256,1024,4096",
    )
    fit.add_argument("--distance-lr", type=float, default=0.02, help="learning rate of g")
    fit.add_argument("--validate-every", type=int, default=25, help="steps between validations")
    model_options(fit, seed="data and order seed")
    fit.add_argument("--data", default="fit-data.json", help="cached training set")
    fit.add_argument("--checkpoint", default="fit.ckpt", help="resumable state")
    fit.add_argument("--curve", default="docs/eval/fit/curve", help="loss curve (.json/.png)")
    fit.add_argument("--heatmap", default="docs/eval/fit/beta", help="β heat map (.png/.svg)")
    fit.add_argument("--out", default=DEFAULT_LEARNED, help="the bias file to write")


def _knots(spec: str | None) -> tuple[int, ...]:
    if not spec:
        return ()
    try:
        knots = tuple(int(k) for k in spec.split(",") if k.strip())
    except ValueError:
        raise CliError(f"--distance {spec!r}: knots are whole numbers of tokens", 2) from None
    if list(knots) != sorted(set(knots)) or not knots or knots[0] < 0:
        raise CliError(f"--distance {spec!r}: knots must be increasing and non-negative", 2)
    return knots


def _layers(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    out: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def run_pasta(args: argparse.Namespace) -> int:
    import torch

    from salience.model.fit.pasta import profile_heads, select_heads
    from salience.model.fit.profiling import profiling_items
    from salience.model.local import LocalModel

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    lm = LocalModel.load(args.model)
    if args.data:
        items: Any = _examples(lm, args.data, args.max_length, args.items)
        profiling_set = f"{args.data} (train split, ≤ {args.max_length} distractor tokens)"
    else:
        items = profiling_items(args.items, args.distractor, args.seed)
        profiling_set = "model.profiling.profiling_items (built-in)"
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 9 == 0 or done == total:
            elapsed = time.perf_counter() - start
            print(f"\r{done}/{total} heads, {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

    scores = profile_heads(lm, items, args.beta, _layers(args.layers), progress)
    print(file=sys.stderr)
    command = "salience model profile-pasta " + " ".join(shlex.quote(a) for a in sys.argv[3:] if a)
    bias = select_heads(
        scores,
        args.k,
        args.beta,
        {
            "command": command.strip(),
            "items": args.items,
            "distractor_sentences": args.distractor,
            "seed": args.seed,
            "profiling_set": profiling_set,
            "model": lm.loaded.source.rsplit("/", 1)[-1],
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    bias.save(args.out)
    for layer, head, gain in bias.meta["heads"]:
        print(f"layer {layer:2d} head {head}: {gain:+.4f} nats")
    print(f"wrote {args.out}")
    return 0


def _examples(lm: Any, path: str, max_length: int | None, limit: int | None) -> list[Any]:
    """A fit dataset's examples that have a rejected answer, optionally capped in length."""
    from salience.evals import training

    def count(text: str) -> int:
        return len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    examples = [
        e
        for e in training.Dataset.load(path, count).examples
        if e.rejected and (max_length is None or e.length <= max_length)
    ]
    return examples[:limit] if limit else examples


def run_score(args: argparse.Namespace) -> int:
    import torch

    from salience.model.fit.select import pick, score_methods, table
    from salience.model.local import LocalModel

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = LocalModel.load(args.model)
    examples = _examples(lm, args.data, args.max_length, args.limit)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        print(f"\r{done}/{total} passes, {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

    methods: list[Any] = []
    for spec in _names(args.methods):
        if "=" in spec:  # LABEL=FILE: a bias file (a candidate fit) under its own label
            label, _, path = spec.partition("=")
            method = lm.method("learned", bias_path=path)
            method.name = label
            methods.append(method)
        else:
            methods.append(spec)
    scores = score_methods(lm, examples, methods, args.seed, progress)
    print(file=sys.stderr)
    print(table(scores))
    if args.pick_within is not None:
        best = pick(scores, args.pick_within)
        within = f"target NLL change ≤ {args.pick_within:+.3f}"
        print(f"\npicked: {best.method if best else 'none of them'} ({within})")
    return 0


def _ints(spec: str) -> list[int]:
    return [int(x) for x in spec.split(",") if x.strip()]


def _names(spec: str) -> list[str]:
    return [x.strip() for x in spec.split(",") if x.strip()]


def run_fit(args: argparse.Namespace) -> int:
    import torch

    from salience.evals import training
    from salience.model.fit.fitting import FitConfig, fit
    from salience.model.fit.plots import heatmap, save_curve
    from salience.model.local import LocalModel

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    lm = LocalModel.load(args.model)

    def count(text: str) -> int:
        return len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def answer(conversation: Any) -> str:
        return lm.generate(conversation, "none", max_new_tokens=args.target_tokens).text

    def built(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\rtargets {done}/{total}", end=end, file=sys.stderr, flush=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    data = training.fit_data(
        args.data,
        answer,
        count,
        items=args.items,
        validation=args.validation,
        seed=args.seed,
        max_length=args.max_length,
        log=log,
        variants=args.variants,
        kinds=_names(args.kinds),
        lengths=_ints(args.lengths),
        positions=_names(args.positions),
        progress=built,
    )
    log(data.summary(args.max_length))
    config = from_options(FitConfig, args, distance_knots=_knots(args.distance))
    start = time.perf_counter()

    def progress(step: int, curve: Any) -> None:
        val = ""
        if curve.val_nll:
            val = f", validation NLL {curve.val_nll[-1]:.4f} margin {curve.val_margin[-1]:+.3f}"
        elapsed = time.perf_counter() - start
        print(
            f"\rstep {step}/{config.steps}  loss {curve.loss[-1]:.4f}  nll {curve.nll[-1]:.4f}"
            f"{val}  {elapsed:.0f} s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    command = "salience model fit " + " ".join(shlex.quote(a) for a in sys.argv[3:] if a)
    bias, curve = fit(
        lm,
        data.train,
        config,
        validation=data.validation,
        checkpoint=args.checkpoint,
        meta={
            "command": command.strip(),
            "data_version": data.dataset.version,
            "data": data.dataset.settings,
            "examples": len(data.train),
            "max_length": args.max_length,
            "validation_examples": len(data.validation),
            "target_sources": data.sources,
            "model": lm.loaded.source.rsplit("/", 1)[-1],
        },
        progress=progress,
    )
    print(file=sys.stderr)
    bias.save(args.out)
    save_curve(curve, args.curve)
    heatmap(bias, args.heatmap)
    meta = bias.meta
    print(
        f"wrote {args.out}: validation NLL {meta['val_nll_start']} (start) → {meta['val_nll']}, "
        f"margin gain over β = 0 {meta['val_margin_gain']}"
    )
    return 0
