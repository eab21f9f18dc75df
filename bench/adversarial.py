"""Hostile markup: does every parser stay linear up to the body limit?

For each family of hostile input, the same generator builds a text of about ``n`` characters and
one of about ``4n`` (``4n`` is the service's default body limit, 1 MiB), and both are parsed,
lenient and strict. Printed per family:

    growth    = parse time(4n) / parse time(n)   ~4 for linear work, ~16 for quadratic
    s/MiB     = parse time(4n) / size(4n)        seconds of one core per MiB of body
    +tokenize = the same for parse + tokenize, as ``POST /annotate`` does (for information: the
                service refuses a prompt past its token limit before it is tokenized in full)
    limited   = s/MiB of the parse the service runs: with its markup element limit
                (``SALIENCE_MAX_MARKUP_ELEMENTS``, 20,000 by default), a parse stops at the
                element past it, so no body costs more than that many elements' work

Timings are the best of ``--repeats`` runs, interleaved between the two sizes so that machine
noise hits both alike.

Then the service (``--no-service`` skips it): ``salience serve`` on loopback, in front of a
minimal local upstream, and each family's large text posted to each route that reads a prompt,
while another connection asks ``/healthz`` again and again. Printed per family and route, the
worst ``/healthz`` latency seen while the post was in flight: what one hostile body costs every
other client of the server (the goal: < 100 ms; the event loop never parses):

    annotate   POST /annotate {"text": …}
    batch      POST /annotate/batch, the text cut into four requests
    multipart  POST /annotate, the text (or the RTF/.docx document) as an uploaded file
    v1         POST /v1/chat/completions, the text as the system message (rendered with xml)
    bias       POST /model/bias, the text's first 60,000 characters (the route's limit)

The last line is the summary the goals are stated in:

    adversarial: worst growth <r>x per 4x input, worst <s> s per MiB; worst healthz <ms> ms

    .venv/bin/python bench/adversarial.py [--repeats N] [--size CHARS] [--only NAME] [--json]
                                          [--no-service]

(``--only`` keeps the families whose name contains NAME.)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from salience.markup import MarkupError, load_encoding, parse, tokenize
from salience.markup.documents import DocumentError, parse_document
from salience.markup.parsing import DEFAULT_MAX_ELEMENTS

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("annotate", "batch", "multipart", "v1", "bias")
BIAS_CHARS = 60_000  # under /model/bias's limit of 65,536 characters


@dataclass(frozen=True)
class Family:
    name: str
    unit: str  # repeated to fill the size; a callable builds the text itself
    format: str = "auto"
    build: Callable[[int], str] | None = None
    detect: bool = False  # parse with detect_rules=True (the rule detector's own families)
    document: bool = False  # an RTF document (markup.documents), read and then parsed

    def text(self, size: int) -> str:
        if self.build is not None:
            # a generator may overshoot (nested callouts grow with the square of their depth):
            # the text is cut to the size asked for, as the body limit would cut it (not a
            # document: a .docx cut short is no archive)
            text = self.build(size)
            return text if self.document else text[:size]
        return self.unit * max(1, size // len(self.unit))


def _nested(size: int) -> str:
    depth = size // len("<rule></rule>")
    return "<rule>" * depth + "x" + "</rule>" * depth


def _nested_mixed(size: int) -> str:
    names = ("rule", "important", "background", "must")
    per = sum(len(f"<{n}></{n}>") for n in names) // len(names)
    depth = size // per
    opens = "".join(f"<{names[i % 4]}>" for i in range(depth))
    closes = "".join(f"</{names[i % 4]}>" for i in reversed(range(depth)))
    return opens + "x" + closes


def _mismatched(size: int) -> str:
    half = size // len("<rule></important>")
    return "<rule>" * half + "</important>" * half


def _html_nested(size: int) -> str:
    depth = size // len("<div><b></b></div>") * 2
    opens = "".join("<div>" if i % 2 else "<b>" for i in range(depth))
    closes = "".join("</div>" if i % 2 else "</b>" for i in reversed(range(depth)))
    return "<p>" + opens + "text" + closes + "</p>"


def _callouts_nested(size: int) -> str:
    depth = min(size // 16, 100_000)
    lines = [">" * (i + 1) + " [!WARNING]" for i in range(0, depth, max(1, depth // 2000))]
    text = "\n".join(lines)
    return (text + "\n") * max(1, size // max(1, len(text) + 1))


def _backtick_widths(size: int) -> str:
    out: list[str] = []
    total = 0
    width = 1
    while total < size:
        piece = "`" * width + "a"
        out.append(piece)
        total += len(piece)
        width = width % 300 + 1
    return "".join(out)


_FRAGMENTS = (
    "<rule>",
    "</rule>",
    "<important>",
    "</important>",
    "</background>",
    "<importance level=",
    '<importance level="hard"',
    "<b>",
    "</b>",
    "<span data-importance=",
    "**",
    "__",
    "*",
    "_",
    "`",
    "```\n",
    "\n> [!WARNING]\n",
    "> ",
    "[",
    "](",
    "[!",
    "&amp;",
    "&#",
    "<!--",
    "<",
    ">",
    "\n",
    " word ",
    "é",
    "e\u0301",
)


def _mixture(size: int) -> str:
    rng = random.Random(1234)
    out: list[str] = []
    total = 0
    while total < size:
        piece = rng.choice(_FRAGMENTS)
        out.append(piece)
        total += len(piece)
    return "".join(out)


FAMILIES: tuple[Family, ...] = (
    Family("unclosed tags", "<rule>"),
    Family("unclosed tags (html)", "<b>", "html"),
    Family("deeply nested tags", "", build=_nested),
    Family("deeply nested, 4 names", "", build=_nested_mixed),
    Family("mismatched closers", "", build=_mismatched),
    Family("stray closers", "</rule>"),
    Family("alternating open/close", "<rule></important><important></rule>"),
    Family("alternating, interleaved", "<rule><important></rule></important>"),
    Family("tag without '>'", "<rule "),
    Family("attributes without '>'", '<importance level="hard" a b c '),
    Family("unterminated quote", '<importance level="'),
    Family("bad level attribute", '<importance level="urgent">x</importance>'),
    Family("span without '>'", "<span data-importance "),
    Family("html nesting", "", "html", build=_html_nested),
    Family("html inline elements, open", "<i><em><span>", "html"),
    Family("html inline elements, crossed", "<i><b>x</i></b>", "html"),
    Family("html unclosed comment", "<!--", "html"),
    Family("html '</'", "</", "html"),
    Family("html '<!'", "<!", "html"),
    Family("html '<a '", "<a ", "html"),
    Family("html entities", "&amp;&#169;&#x1F600;&bogus;&", "html"),
    Family("emphasis: '**'", "**"),
    Family("emphasis: '**a'", "**a"),
    Family("emphasis: '*_'", "*_"),
    Family("emphasis: '__a*'", "__a*"),
    Family("emphasis with tags", "**<rule>a"),
    Family("callout markers", "> [!WARNING]\n"),
    Family("callouts, nested quotes", "", build=_callouts_nested),
    Family("callout lines", "> [!CAUTION]\n> > > a\n"),
    Family("brackets '['", "["),
    Family("brackets '[a]('", "[a]("),
    Family("brackets '[!'", "[!"),
    Family("backticks", "`"),
    Family("backtick widths", "", build=_backtick_widths),
    Family("fences", "```\n"),
    Family("fences + tags", "```\n<rule>\n```\n"),
    Family("entities (markdown)", "**&amp;"),
    Family("mixture", "", build=_mixture),
    Family("mixture (html)", "", "html", build=_mixture),
    Family("mixture (markdown)", "", "markdown", build=_mixture),
    Family("rule detection: cue words, one line", "must never only exactly ", "plain", detect=True),
    Family("rule detection: short rules", "Never do x. Answer in JSON.\n", "plain", detect=True),
    Family("rule detection: cues and dots", "must. e.g. 3.5 ", "plain", detect=True),
    Family("rule detection: mixture + tags", "", build=_mixture, detect=True),
    Family(
        "rtf: control words",
        "",
        build=lambda n: _rtf(n, "\\b x\\b0 \\ul y\\ulnone "),
        document=True,
    ),
    Family("rtf: groups", "", build=lambda n: _rtf(n, "{\\cf1 a}{\\highlight3 b}"), document=True),
    Family("rtf: escapes", "", build=lambda n: _rtf(n, "\\'e9\\u8364?\\par "), document=True),
    Family("rtf: deep groups", "", build=lambda n: _rtf(n, "{"), document=True),
    Family("docx: runs and paragraphs", "", build=lambda n: _docx(n), document=True),
)


def _docx(size: int) -> str:
    """A .docx of about ``size`` bytes: paragraphs of short runs, alternately bold, underlined
    and coloured, with varied words so that it compresses like a real document (a repetitive
    one is refused as a zip bomb at once). As latin-1 text, which maps its bytes one to one."""
    import io
    import zipfile

    import docx

    rng = random.Random(size)
    words = ["rule", "never", "answer", "brief", "bank", "customer", "keys", "share", "always"]
    template = io.BytesIO()
    docx.Document().save(template)
    runs = []
    props = ["<w:b/>", '<w:u w:val="single"/>', '<w:color w:val="C00000"/>', ""]
    target = size * 5  # deflate packs word runs about five to one
    total = 0
    while total < target:
        text = " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(3))
        run = f"<w:r><w:rPr>{rng.choice(props)}</w:rPr><w:t>{text} </w:t></w:r>"
        if rng.random() < 0.2:
            run = f"</w:p><w:p>{run}"
        runs.append(run)
        total += len(run)
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p>" + "".join(runs) + "</w:p></w:body></w:document>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in source.infolist():
            data = body.encode() if item.filename == "word/document.xml" else source.read(item)
            z.writestr(item.filename, data)
    return out.getvalue().decode("latin-1")


def _rtf(size: int, unit: str) -> str:
    head = "{\\rtf1\\ansi{\\colortbl;\\red200\\green0\\blue0;}"
    return head + unit * max(1, (size - len(head) - 1) // len(unit)) + "}"


def parse_only(
    text: str,
    fmt: str,
    strict: bool,
    max_elements: int | None = None,
    detect: bool = False,
    document: bool = False,
) -> None:
    """The parser: format detection, markup, repairs (strict mode may stop at a fault)."""
    try:
        if document:
            parse_document(text.encode("latin-1"), strict=strict, max_elements=max_elements)
        else:
            parse(text, fmt, strict=strict, max_elements=max_elements, detect_rules=detect)
    except (MarkupError, DocumentError):
        return


def annotate(
    text: str, fmt: str, strict: bool, detect: bool = False, document: bool = False
) -> None:
    """What ``POST /annotate`` does: parse, then tokenize. (The service refuses a prompt past
    its token limit, 32k by default, so it never tokenizes a hostile MiB in full.)"""
    try:
        if document:
            parsed = parse_document(text.encode("latin-1"), strict=strict)
        else:
            parsed = parse(text, fmt, strict=strict, detect_rules=detect)
    except (MarkupError, DocumentError):
        return
    tokenize(parsed, ENCODING)


ENCODING = load_encoding("cl100k_base")
ELEMENT_LIMIT = DEFAULT_MAX_ELEMENTS  # the service's default


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(family: Family, size: int, repeats: int, strict: bool) -> dict[str, Any]:
    small, large = family.text(size // 4), family.text(size)
    t_small: list[float] = []
    t_large: list[float] = []
    t_annotate: list[float] = []
    t_limited: list[float] = []
    fmt, detect, doc = family.format, family.detect, family.document
    for _ in range(repeats):  # interleaved, so that noise hits both sizes alike
        t_small.append(timed(lambda: parse_only(small, fmt, strict, None, detect, doc)))
        t_large.append(timed(lambda: parse_only(large, fmt, strict, None, detect, doc)))
        t_annotate.append(timed(lambda: annotate(large, fmt, strict, detect, doc)))
        t_limited.append(timed(lambda: parse_only(large, fmt, strict, ELEMENT_LIMIT, detect, doc)))
    small_s, large_s = min(t_small), min(t_large)
    mib = len(large.encode("utf-8")) / MIB
    # A floor under the small time: below ~0.2 ms, timer noise dominates the ratio. The ratio is
    # corrected for a generator that could not hit exactly 4x the characters.
    growth = large_s / max(small_s, 2e-4) * (len(small) * 4 / len(large))
    return {
        "family": family.name + (" [strict]" if strict else ""),
        "small_chars": len(small),
        "large_chars": len(large),
        "small_s": small_s,
        "large_s": large_s,
        "growth": growth,
        "s_per_mib": large_s / mib,
        "annotate_s_per_mib": min(t_annotate) / mib,
        "limited_s_per_mib": min(t_limited) / mib,
    }


@contextmanager
def service() -> Iterator[str]:
    """``salience serve`` (model preloaded, a body limit that takes the large texts as JSON) in
    front of bench/proxy.py's minimal upstream; its URL once /readyz says so."""
    sys.path.insert(0, str(ROOT))
    from bench.proxy import UPSTREAM, free_port

    up_port, port = free_port(), free_port()
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"salience-adversarial-up-{up_port}.py"
    scratch.write_text(UPSTREAM, encoding="utf-8")
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(scratch.parent), scratch.stem + ":app",
         "--host", "127.0.0.1", "--port", str(up_port), "--log-level", "warning",
         "--no-access-log"],
    )  # fmt: skip
    env = {
        **os.environ,
        "SALIENCE_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
        "SALIENCE_EVAL_WORKER": "false",
        "SALIENCE_LOG_LEVEL": "error",
        "SALIENCE_MAX_BODY_BYTES": str(16 * MIB),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "salience", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # the model loads at start-up
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("salience serve did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        for process in (server, upstream):
            process.terminate()
            process.wait(10)
        scratch.unlink(missing_ok=True)


def _request(family: Family, text: str, route: str) -> dict[str, Any]:
    """The keyword arguments of ``httpx.post`` that send ``text`` to ``route``."""
    fmt = "html" if family.document else family.format
    if route == "annotate":
        return {"url": "/annotate", "json": {"text": text, "format": fmt, "tokens": False}}
    if route == "batch":
        quarter = -(-len(text) // 4)
        parts = [text[i : i + quarter] for i in range(0, len(text), quarter)]
        requests = [{"text": p, "format": fmt, "tokens": False} for p in parts]
        return {"url": "/annotate/batch", "json": {"requests": requests}}
    if route == "multipart":
        if family.document:
            data, name = text.encode("latin-1"), "doc.docx" if "docx" in family.name else "doc.rtf"
        else:
            data, name = text.encode("utf-8"), "prompt.txt"
        return {"url": "/annotate", "files": {"file": (name, data)}, "data": {"tokens": "false"}}
    if route == "v1":
        body = {"model": "bench", "messages": [{"role": "system", "content": text}]}
        return {"url": "/v1/chat/completions", "json": body}
    messages = [{"role": "system", "content": text[:BIAS_CHARS]}]
    return {"url": "/model/bias", "json": {"messages": messages, "method": "uniform"}}


def _probe(url: str, done: Any, ready: Any, worst: Any) -> None:
    """Ask /healthz again and again until ``done``; the slowest answer goes into ``worst``."""
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/healthz")  # a warm connection
        ready.set()
        while not done.is_set():
            start = time.perf_counter()
            client.get("/healthz")
            worst.value = max(worst.value, time.perf_counter() - start)
            time.sleep(0.002)


def healthz_during(url: str, request: dict[str, Any]) -> tuple[float, int]:
    """The worst /healthz latency (s) while ``request`` is in flight, and its status. The probe
    runs in a process of its own, so that building and sending the body here does not delay
    it."""
    context = multiprocessing.get_context("fork")
    done, ready, worst = context.Event(), context.Event(), context.Value("d", 0.0)
    probe = context.Process(target=_probe, args=(url, done, ready, worst))
    probe.start()
    ready.wait(30)
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            status = client.post(**request).status_code
    finally:
        done.set()
        probe.join(30)
    return float(worst.value), status


def measure_service(url: str, family: Family, size: int) -> dict[str, Any]:
    text = family.text(size)
    row: dict[str, Any] = {"family": family.name}
    for route in ROUTES:  # a document family's bytes go to the JSON routes as latin-1 text
        worst, status = healthz_during(url, _request(family, text, route))
        row[route] = {"healthz_ms": worst * 1e3, "status": status}
    row["worst_healthz_ms"] = max(row[r]["healthz_ms"] for r in ROUTES)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=MIB, help="the large size in characters")
    parser.add_argument("--only", help="families whose name contains this")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-service", action="store_true", help="skip the /healthz-delay column")
    args = parser.parse_args()
    rows = []
    if not args.json:
        print(
            f"{'family':38} {'n':>8} {'parse n':>10} {'4n':>8} {'parse 4n':>10}"
            f"  {'growth':>7}  {'s/MiB':>6}  {'+tokenize':>9}  {'limited':>7}"
        )
    for family in FAMILIES:
        if args.only and args.only not in family.name:
            continue
        for strict in (False, True):
            rows.append(measure(family, args.size, args.repeats, strict))
            if not args.json:
                r = rows[-1]
                print(
                    f"{r['family']:38} {r['small_chars']:>8} {r['small_s'] * 1e3:7.1f} ms"
                    f" {r['large_chars']:>8} {r['large_s'] * 1e3:7.1f} ms"
                    f"  {r['growth']:6.2f}x  {r['s_per_mib']:6.3f}  {r['annotate_s_per_mib']:9.3f}"
                    f"  {r['limited_s_per_mib']:7.3f}",
                    flush=True,
                )
    served: list[dict[str, Any]] = []
    if not args.no_service:
        if not args.json:
            print("\nworst /healthz latency while a family's large text is posted (ms; status)")
            print(f"{'family':38} " + " ".join(f"{r:>14}" for r in ROUTES))
        with service() as url:
            for family in FAMILIES:
                if args.only and args.only not in family.name:
                    continue
                served.append(measure_service(url, family, args.size))
                if not args.json:
                    r = served[-1]
                    cells = " ".join(
                        f"{r[k]['healthz_ms']:8.1f} ({r[k]['status']})" for k in ROUTES
                    )
                    print(f"{family.name:38} {cells}", flush=True)
    if args.json:
        json.dump({"parse": rows, "service": served}, sys.stdout, indent=2)
        print()
    worst_tok = max(rows, key=lambda r: r["annotate_s_per_mib"])
    print(
        f"parse + tokenize: worst {worst_tok['annotate_s_per_mib']:.3f} s per MiB "
        f"({worst_tok['family']})"
    )
    worst_limited = max(rows, key=lambda r: r["limited_s_per_mib"])
    print(
        f"with the service's element limit ({ELEMENT_LIMIT}): worst "
        f"{worst_limited['limited_s_per_mib']:.3f} s per MiB ({worst_limited['family']})"
    )
    worst_growth = max(rows, key=lambda r: r["growth"])
    worst_rate = max(rows, key=lambda r: r["s_per_mib"])
    healthz = ""
    if served:
        worst_served = max(served, key=lambda r: r["worst_healthz_ms"])
        route = max(ROUTES, key=lambda k: worst_served[k]["healthz_ms"])
        healthz = (
            f"; worst healthz {worst_served['worst_healthz_ms']:.0f} ms "
            f"({worst_served['family']}, {route})"
        )
    print(
        f"adversarial: worst growth {worst_growth['growth']:.2f}x per 4x input "
        f"({worst_growth['family']}), worst {worst_rate['s_per_mib']:.3f} s per MiB "
        f"({worst_rate['family']}){healthz}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
