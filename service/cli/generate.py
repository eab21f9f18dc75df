"""``salience generate``: answer a prompt on the local model under one or more methods.

A plain prompt (FILE, or standard input) is sent as one user message, and its markup is trusted:
you wrote it. ``--messages`` reads OpenAI-style chat JSON instead, where markup counts only in
trusted roles. ``--method`` takes a comma-separated list to compare methods side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from salience.markup import MarkupError, SalienceError, parse_messages
from salience.model.methods import DEFAULT_SPA_OMEGA, DEFAULT_UNIFORM_BETA, help_text

from .annotate import _read_input
from .common import (
    CliError,
    at_least,
    check_model_path,
    command,
    device_name,
    methods,
    model_options,
    prompt_options,
)


def register(commands: Any) -> None:
    p = command(
        commands,
        "generate",
        "answer a prompt on the local model, steered by a method",
        __doc__,
        run=run,
    )
    prompt_options(p, what="prompt file")
    p.add_argument(
        "--method", type=methods, default="none", help=f"{help_text()} (comma-separated to compare)"
    )
    p.add_argument("--system", default=None, help="a system message to put first")
    p.add_argument("--max-new-tokens", type=at_least(1), default=64, help="answer budget")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument(
        "--beta", type=float, default=None,
        help=f"uniform: β for hard, high gets β/2 (default: {DEFAULT_UNIFORM_BETA:g}, or the β of "
        "uniform@β)",
    )  # fmt: skip
    p.add_argument(
        "--gate", choices=["after", "all"], default="after", help="which queries a bias steers"
    )
    p.add_argument(
        "--omega", type=float, default=None,
        help=f"spa: ω (default: {DEFAULT_SPA_OMEGA:g}, or the ω of spa@ω)",
    )  # fmt: skip
    p.add_argument("--bias-path", default=None, help="pasta/learned: an ImportanceBias JSON file")
    model_options(p, seed="sampling seed")
    p.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16"],
        help="model weights (default: float32 on the CPU, bfloat16 on CUDA)",
    )  # fmt: skip
    p.add_argument(
        "--device",
        default=None,
        type=device_name,
        help="where the model runs (default: $SALIENCE_DEVICE, else auto: a GPU if there is one)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per method")


def run(args: argparse.Namespace) -> int:
    check_model_path(args.model)
    if args.bias_path and not Path(args.bias_path).is_file():
        raise CliError(f"--bias-path {args.bias_path}: no such file (an ImportanceBias JSON)", 2)
    name, text = _read_input(args.file)
    if text is None:
        print("salience generate: no input. Pass a FILE or pipe a prompt in.", file=sys.stderr)
        return 2
    try:
        if args.messages:
            data = json.loads(text)
            messages = data.get("messages") if isinstance(data, dict) else data
            if not isinstance(messages, list):
                print(f"{name}: error: expected a list of messages", file=sys.stderr)
                return 1
            conversation = parse_messages(messages, detect_rules=args.detect_rules)
        else:
            # a prompt file's final newline is the file's, not the prompt's
            messages = [{"role": "user", "content": text.rstrip("\n")}]
            if args.system:
                messages.insert(0, {"role": "system", "content": args.system})
            conversation = parse_messages(
                messages,
                trusted_roles={"system", "developer", "user"},
                detect_rules=args.detect_rules,
            )
    except (MarkupError, SalienceError, json.JSONDecodeError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 1

    import torch

    from salience.model.local import LocalModel

    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        lm = LocalModel.load(args.model, args.dtype, args.device)
    except (OSError, ValueError, SalienceError) as error:
        where = args.model or "the embedded model"
        raise CliError(f"cannot load {where}: {error}") from None
    options = {"gate": args.gate}
    if args.beta is not None:
        options["beta"] = args.beta
    if args.omega is not None:
        options["omega"] = args.omega
    if args.bias_path is not None:
        options["bias_path"] = args.bias_path
    for method in args.method:
        try:
            out = lm.generate(
                conversation,
                method,
                max_new_tokens=args.max_new_tokens,
                seed=args.seed,
                temperature=args.temperature,
                **options,
            )
        except SalienceError as error:
            print(f"{method}: error: {error}", file=sys.stderr)
            return 1
        if args.json:
            print(
                json.dumps(
                    {
                        "schema_version": "1",
                        "method": out.method,
                        "text": out.text,
                        "prompt_tokens": out.prompt_tokens,
                        "new_tokens": len(out.token_ids),
                        "stopped": out.stopped,
                        "prefill_s": round(out.prefill_seconds, 4),
                        "decode_s": round(out.decode_seconds, 4),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(
                f"── {out.method} ({out.prompt_tokens} prompt tokens, "
                f"{len(out.token_ids)} new, {out.stopped})"
            )
            print(out.text)
    return 0
