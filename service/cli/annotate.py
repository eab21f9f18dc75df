"""``salience annotate``: parse a prompt's importance markup and show it.

Reads FILE, or standard input when FILE is ``-`` or omitted and input is piped. On a terminal the
clean text is shown with levels in colour (and a legend); piped, it prints the clean text alone.
``--json`` prints the whole Document with tokens; ``--tokens`` one token per line; ``--method``
the text for a model that cannot take a bias. Markup errors print like a compiler's and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from salience.markup import (
    DEFAULT_TRUSTED_ROLES,
    TEXT_METHODS,
    Conversation,
    Document,
    EncodingError,
    Format,
    ImportanceEncoding,
    Level,
    MarkupError,
    MessageError,
    TokenizedDocument,
    load_encoding,
    parse,
    parse_messages,
    render,
    render_notes,
    tokenize,
)

from .common import CliError, command, prompt_options, read_text

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2

_STYLE = {  # ANSI; hard is also underlined so that the level does not rest on colour alone
    Level.HARD: "\x1b[1;4;31m",
    Level.HIGH: "\x1b[1;33m",
    Level.LOW: "\x1b[2m",
}
_RESET = "\x1b[0m"


def register(commands: Any) -> None:
    p = command(
        commands,
        "annotate",
        "parse importance markup and show spans, tokens or a rendering",
        __doc__,
        run=run,
    )
    prompt_options(p, what="input file")
    p.add_argument(
        "--format",
        default="auto",
        choices=[f.value for f in Format],
        help="markup dialect (auto: detected from the text)",
    )
    p.add_argument("--strict", action="store_true", help="markup faults are errors, not repairs")
    p.add_argument("--encoding", default="cl100k_base", help="tiktoken base encoding")
    p.add_argument(
        "--trusted-roles",
        default=",".join(sorted(DEFAULT_TRUSTED_ROLES)),
        help="comma-separated roles whose markup is honoured (default: %(default)s)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the full Document with tokens, as JSON")
    out.add_argument("--tokens", action="store_true", help="one token per line")
    out.add_argument(
        "--method",
        "--render",  # its former name
        dest="method",
        choices=["plain", *TEXT_METHODS],
        help="render with a text method, for a model without a bias (plain: the clean text)",
    )
    p.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the levels (auto: on a terminal, unless NO_COLOR is set)",
    )


def run(args: argparse.Namespace) -> int:
    text: str | None
    rich = _read_document(args.file)
    if rich is not None:  # .docx or RTF: read as the HTML rich text it amounts to
        name, text = rich
        args.format = "html"
    else:
        name, text = _read_input(args.file)
    if text is None:
        print(
            "salience annotate: no input. Pass a FILE, or pipe text in: "
            "echo '<rule>Be brief.</rule>' | salience annotate",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.messages:
            return _run_messages(args, name, text)
        document = parse(text, args.format, strict=args.strict, detect_rules=args.detect_rules)
        _print_warnings(name, text, document)
        if args.method:
            for note in render_notes(document, args.method):
                print(f"{name}: note: {note}", file=sys.stderr)
            print(render(document, args.method))
        elif args.json:
            _print_api_json(args, {"text": text})
        elif args.tokens:
            encoding = load_encoding(args.encoding)
            _print_tokens(tokenize(document, encoding), encoding)
        else:
            _print_highlighted(document, _use_color(args.color, sys.stdout))
    except MarkupError as error:
        _print_markup_error(args, name, text, error)
        return EXIT_INPUT
    except (EncodingError, MessageError) as error:
        _error(args, name, getattr(error, "code", "bad-input"), str(error))
        return EXIT_INPUT
    return EXIT_OK


def _read_document(path: str | None) -> tuple[str, str] | None:
    """(name, HTML) of a .docx or RTF file; None for any other input."""
    if path is None or path == "-" or not Path(path).is_file():
        return None
    from salience.markup.documents import MAGIC_BYTES, DocumentError, document_html, may_be_document

    try:
        with open(path, "rb") as handle:
            head = handle.read(MAGIC_BYTES)
            if not may_be_document(head):
                return None
            data = head + handle.read()
    except OSError:
        return None  # read_text reports it, with the reason
    try:
        source = document_html(data, path)
    except DocumentError as error:
        raise CliError(f"{path}: {error}") from None
    return None if source is None else (path, source)


def _read_input(path: str | None) -> tuple[str, str | None]:
    return read_text(path, "prompt")


def _run_messages(args: argparse.Namespace, name: str, text: str) -> int:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if args.json:
            _error(args, name, "bad-json", f"not JSON: {error.msg}", offset=error.pos,
                   line=error.lineno, column=error.colno)  # fmt: skip
        else:
            print(f"{name}:{error.lineno}:{error.colno}: error: not JSON: {error.msg}",
                  file=sys.stderr)  # fmt: skip
        return EXIT_INPUT
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list):
        _error(args, name, "bad-messages", 'expected a list of messages or {"messages": [...]}')
        return EXIT_INPUT
    roles = [r.strip() for r in args.trusted_roles.split(",") if r.strip()]
    try:
        conversation = parse_messages(
            messages, roles, args.format, args.strict, detect_rules=args.detect_rules
        )
    except MarkupError as error:
        index = error.message_index or 0
        content = messages[index].get("content") if isinstance(messages[index], dict) else ""
        text = content if isinstance(content, str) else ""
        _print_markup_error(args, f"{name}[{index}]", text, error)
        return EXIT_INPUT
    if args.method:
        for note in render_notes(conversation, args.method):
            print(f"{name}: note: {note}", file=sys.stderr)
        print(json.dumps(render(conversation, args.method), ensure_ascii=False, indent=2))
    elif args.json:
        _print_api_json(args, {"messages": messages})
    elif args.tokens:
        print(json.dumps(_conversation_json(conversation, args.encoding), ensure_ascii=False))
    else:
        color = _use_color(args.color, sys.stdout)
        for m in conversation.messages:
            trust = "trusted" if m.trusted else "untrusted: markup kept as text"
            print(f"── {m.index} {m.role} ({trust})")
            _print_highlighted(m.document, color, legend=False)
    return EXIT_OK


def _print_api_json(args: argparse.Namespace, body: dict[str, Any]) -> None:
    """What ``POST /annotate`` answers for the same input and options (one JSON shape, with its
    ``schema_version``), without the service's per-request token limit."""
    from pydantic import ValidationError

    from ..annotator import Annotator, to_json
    from ..api.schemas import AnnotateRequest
    from ..core.config import Settings
    from ..core.metrics import Metrics

    roles = [r.strip() for r in args.trusted_roles.split(",") if r.strip()]
    try:
        request = AnnotateRequest.model_validate(
            {
                **body,
                "format": args.format,
                "strict": args.strict,
                "detect_rules": args.detect_rules,
                "encoding": args.encoding,
                "trusted_roles": roles,
            }
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"bad input at {where}: {first['msg']}") from None
    settings = Settings(max_prompt_tokens=2**31 - 1, max_messages=2**31 - 1)
    annotator = Annotator(settings, Metrics())
    sys.stdout.write(to_json(annotator.annotate(request.options())).decode() + "\n")


def _conversation_json(conversation: Conversation, encoding_name: str) -> dict[str, Any]:
    encoding = load_encoding(encoding_name)
    body = conversation.to_dict()
    for row, m in zip(body["messages"], conversation.messages, strict=True):
        row["tokens"] = tokenize(m.document, encoding).to_dict()
    body["special_tokens"] = encoding.special_tokens()
    return body


def _use_color(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _print_highlighted(document: Document, color: bool, legend: bool = True) -> None:
    if not color:
        print(document.text)
        return
    text = document.text
    out: list[str] = []
    pos = 0
    for span in document.spans:
        out.append(text[pos : span.start])
        style = _STYLE.get(span.level)
        body = text[span.start : span.end]
        out.append(f"{style}{body}{_RESET}" if style else body)
        pos = span.end
    out.append(text[pos:])
    print("".join(out))
    if legend:
        keys = "  ".join(
            f"{_STYLE[lv]}{lv.value}{_RESET}" for lv in (Level.HARD, Level.HIGH, Level.LOW)
        )
        counts = {lv: len(document.spans_at(lv)) for lv in (Level.HARD, Level.HIGH, Level.LOW)}
        summary = ", ".join(f"{n} {lv.value}" for lv, n in counts.items())
        print(f"\n[{document.format.value}] {keys}   spans: {summary}", file=sys.stderr)


def _print_tokens(tokens: TokenizedDocument, encoding: ImportanceEncoding) -> None:
    token_bytes = encoding.encoding.decode_single_token_bytes
    rows = tokens.to_dict()
    for i, (tid, level, (a, b), marker) in enumerate(
        zip(rows["ids"], rows["levels"], rows["offsets"], rows["markers"], strict=True)
    ):
        shown = "marker" if marker else repr(token_bytes(tid).decode("utf-8", "replace"))
        print(f"{i}\t{tid}\t{level}\t{a}:{b}\t{shown}")


def _print_warnings(name: str, text: str, document: Document) -> None:
    for w in document.warnings:
        print(f"{name}:{w.line}:{w.column}: warning: {w.message}", file=sys.stderr)


def _error(args: argparse.Namespace, name: str, code: str, message: str, **fields: Any) -> None:
    """``name: error: message`` on stderr, or with --json ``{"error": {…}}``."""
    if args.json:
        error = {"code": code, "message": message, "input": name, **fields}
        print(json.dumps({"error": error}, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"{name}: error: {message}", file=sys.stderr)


def _print_markup_error(args: argparse.Namespace, name: str, text: str, error: MarkupError) -> None:
    if args.json:
        _error(args, name, error.code, error.message, **error.fields())
        return
    lines = text.split("\n")
    line = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    print(f"{name}:{error.line}:{error.column}: error: {error.message}", file=sys.stderr)
    print(f"  {line}", file=sys.stderr)
    # Keep tabs so that the caret lines up under the faulty character.
    pad = "".join("\t" if c == "\t" else " " for c in line[: error.column - 1])
    print(f"  {pad}^", file=sys.stderr)
