"""``salience completion bash|zsh|fish``: a shell completion script, written from the command
line's own parser (every command, subcommand, option and choice; paths where an option takes
one). No dependency: the script is static, printed once and sourced.

    salience completion bash > ~/.local/share/bash-completion/completions/salience
    salience completion zsh > "${fpath[1]}/_salience"      (or eval it from ~/.zshrc)
    salience completion fish > ~/.config/fish/completions/salience.fish
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from typing import Any

from .common import command

SHELLS = ("bash", "zsh", "fish")


def register(commands: Any) -> None:
    p = command(commands, "completion", "print a shell completion script", __doc__, run=run)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    tree = list(walk(args.root_parser))
    print({"bash": bash, "zsh": zsh, "fish": fish}[args.shell](tree), end="")
    return 0


Node = tuple[tuple[str, ...], list[str], list[str], dict[str, list[str]]]


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Node]:
    """(command path, subcommands, options, option → choices) for every parser."""
    subs: list[str] = []
    options: list[str] = []
    choices: dict[str, list[str]] = {}
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                subs.append(name)
                children.append((name, child))
            continue
        if action.help == argparse.SUPPRESS:
            continue
        options += [o for o in action.option_strings if o.startswith("--") or len(o) == 2]
        if action.option_strings and action.choices:
            for o in action.option_strings:
                choices[o] = [str(c) for c in action.choices]
        if not action.option_strings and action.choices and not subs:
            choices[""] = [str(c) for c in action.choices]  # a positional's choices
    yield path, subs, sorted(set(options)), choices
    for name, child in children:
        yield from walk(child, (*path, name))


def bash(tree: list[Node]) -> str:
    known = " ".join(shlex.quote(" ".join(p)) for p, _, _, _ in tree if p)
    words = []
    picks = []
    for path, subs, options, choices in tree:
        key = " ".join(path)
        positional = " ".join(choices.get("", []))
        words.append(f"    {shlex.quote(key)}) opts={shlex.quote(' '.join(subs + options))} "
                     f"positional={shlex.quote(positional)} ;;")  # fmt: skip
        for option, values in choices.items():
            if option:
                picks.append(f"    {shlex.quote(key + '|' + option)}) "
                             f"COMPREPLY=($(compgen -W {shlex.quote(' '.join(values))} -- "
                             '"$cur")); return ;;')  # fmt: skip
    return f"""# salience completion for bash (salience completion bash)
_salience() {{
  local cur prev path="" candidate w i opts="" positional=""
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  local known=({known})
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    [[ "$w" == -* ]] && continue
    candidate="${{path:+$path }}$w"
    for k in "${{known[@]}}"; do
      if [[ "$k" == "$candidate" ]]; then path="$candidate"; break; fi
    done
  done
  case "$path|$prev" in
{chr(10).join(picks)}
  esac
  case "$path" in
{chr(10).join(words)}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "${{positional:-$opts}}" -- "$cur"))
    [[ "$cur" != -* && -z "$positional" && ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=()
  fi
}}
complete -o default -F _salience salience
"""


def zsh(tree: list[Node]) -> str:
    return (
        "#compdef salience\n# salience completion for zsh (salience completion zsh): the bash "
        "completion through bashcompinit\nautoload -U +X bashcompinit && bashcompinit\n"
        + bash(tree).split("\n", 1)[1]
    )


def fish(tree: list[Node]) -> str:
    lines = ["# salience completion for fish (salience completion fish)"]
    for path, subs, options, choices in tree:
        if path:
            seen = " ".join(f"__fish_seen_subcommand_from {p};" for p in path)
            cond = f"{seen} and not __fish_seen_subcommand_from {' '.join(subs)}" if subs else seen
            cond = cond.rstrip(";")
        else:
            cond = "__fish_use_subcommand"
        for sub in subs:
            lines.append(f"complete -c salience -n {shlex.quote(cond)} -f -a {shlex.quote(sub)}")
        for option in options:
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            values = choices.get(option)
            extra = f" -x -a {shlex.quote(' '.join(values))}" if values else ""
            lines.append(f"complete -c salience -n {shlex.quote(cond)} {flag}{extra}")
    return "\n".join(lines) + "\n"
