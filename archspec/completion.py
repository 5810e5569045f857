"""`archspec completion bash|zsh`: shell completion scripts written from the command line's
own argparse parser, so that every subcommand, option and choice the parser knows is
completed, and nothing it does not. FILE completes to .arch files and folders, `--net` to
the networks and variants the FILE on the line defines and `--block` to its blocks (read
with sed, not by running archspec: a key press must not wait for a check)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

# The names the definitions of $kinds (`network|variant`, `block`) give, for sed -E.
DEFINED = r"s/^[[:space:]]*(${kinds})[[:space:]]+([A-Za-z_][A-Za-z0-9_]*).*/\2/p"

DEFINED_KINDS = {"net": "networks", "block": "blocks"}  # options naming a definition


@dataclass(frozen=True)
class Option:
    """One option of a subcommand: its spellings, what its value completes to ("" for a
    flag, "choices", "networks", "blocks", "folders", "files" or "text") and its choices."""

    flags: tuple[str, ...]
    value: str
    choices: tuple[str, ...]
    help: str
    repeatable: bool


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, its one-line help, its options and positional choices."""

    name: str
    help: str
    options: tuple[Option, ...]
    positional: tuple[str, ...]  # choices of the positional argument; () for .arch files


def _value_kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        return "choices"
    if action.dest in DEFINED_KINDS:
        return DEFINED_KINDS[action.dest]
    if action.dest == "allow_dir":
        return "folders"
    return "files" if action.dest == "output" else "text"


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """The subcommands of the parser, with what each option and argument completes to."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    found = []
    for name, command in sub.choices.items():
        options = tuple(
            Option(tuple(a.option_strings), _value_kind(a), tuple(map(str, a.choices or ())),
                   a.help or "", isinstance(a, argparse._AppendAction)
                   or getattr(a, "repeatable", False))
            for a in command._actions if a.option_strings)
        positional = next((tuple(a.choices) for a in command._actions
                           if not a.option_strings and a.choices), ())
        found.append(Command(name, helps.get(name, ""), options, positional))
    return found


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A bash script defining `_archspec` and registering it for `archspec`."""
    found = commands(parser)
    cases = "\n".join(_bash_case(command) for command in found)
    names = " ".join(c.name for c in found)
    return f"""# bash completion for archspec; load it with: eval "$(archspec completion bash)"
_archspec_defined() {{
    local kinds=$1 word
    for word in "${{COMP_WORDS[@]:2}}"; do
        if [[ $word == *.arch && -r $word ]]; then
            sed -n -E "{DEFINED}" -- "$word"
            return
        fi
    done
}}

_archspec_files() {{
    compgen -f -X '!*.arch' -- "$1"
    compgen -d -- "$1"
}}

_archspec() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local options="" positional=""
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "{names} --help --version" -- "$cur"))
        return
    fi
    case "${{COMP_WORDS[1]}}" in
{cases}
        *) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif [[ -n $positional ]]; then
        COMPREPLY=($(compgen -W "$positional" -- "$cur"))
    else
        COMPREPLY=($(_archspec_files "$cur"))
    fi
}}

complete -o filenames -F _archspec archspec
"""


_BASH_VALUES = {
    "networks": '$(compgen -W "$(_archspec_defined \'network|variant\')" -- "$cur")',
    "blocks": '$(compgen -W "$(_archspec_defined block)" -- "$cur")',
    "folders": '$(compgen -d -- "$cur")',
    "files": '$(compgen -f -- "$cur")',
}


def _bash_case(command: Command) -> str:
    """The lines of `case` for one subcommand: values of the option before the cursor, else
    the subcommand's options and positional choices."""
    pad = " " * 12
    lines = [f"        {command.name})", f"{pad}case \"$prev\" in"]
    free = [flag for option in command.options if option.value == "text"
            for flag in option.flags]
    for option in command.options:
        if option.value in ("", "text"):
            continue
        values = f'$(compgen -W "{" ".join(option.choices)}" -- "$cur")' \
            if option.value == "choices" else _BASH_VALUES[option.value]
        lines.append(f"{pad}    {'|'.join(option.flags)}) COMPREPLY=({values}); return ;;")
    if free:  # a value of the user's own: nothing to offer
        lines.append(f"{pad}    {'|'.join(free)}) COMPREPLY=(); return ;;")
    lines.append(f"{pad}esac")
    flags = " ".join(flag for option in command.options for flag in option.flags)
    lines.append(f'{pad}options="{flags}"')
    if command.positional:
        lines.append(f'{pad}positional="{" ".join(command.positional)}"')
    lines.append(f"{pad};;")
    return "\n".join(lines)


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """A zsh script defining `_archspec` (for compinit: `#compdef`, or eval'd: compdef)."""
    found = commands(parser)
    described = "\n".join(f"        {_quote(f'{c.name}:{_short(c.help)}')}" for c in found)
    cases = "\n".join(f"        {c.name}) _arguments -s \\\n{_zsh_arguments(c)} ;;"
                      for c in found)
    return f"""#compdef archspec
# zsh completion for archspec; load it with: eval "$(archspec completion zsh)" (after
# compinit), or save it as _archspec in a folder of $fpath
_archspec_defined() {{
    # _arguments puts compadd's options (group, explanation) before the kinds
    local kinds=${{@[-1]}} word
    for word in ${{words[2,-1]}}; do
        if [[ $word == *.arch && -r $word ]]; then
            compadd "${{@[1,-2]}}" -- ${{(f)"$(sed -n -E "{DEFINED}" -- $word)"}}
            return
        fi
    done
}}

_archspec() {{
    local -a commands
    commands=(
{described}
    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'archspec command' commands
        return
    fi
    local command=$words[2]
    shift words
    (( CURRENT-- ))
    case $command in
{cases}
    esac
}}

if [[ $funcstack[1] == _archspec ]]; then
    _archspec "$@"
else
    compdef _archspec archspec
fi
"""


_ZSH_VALUES = {"networks": "_archspec_defined 'network|variant'",
               "blocks": "_archspec_defined block", "folders": "_files -/", "files": "_files",
               "text": " "}


def _zsh_arguments(command: Command) -> str:
    """_arguments specs: each option with its help and values, then the positional."""
    specs = [_zsh_option(option) for option in command.options]
    if command.positional:
        specs.append(_quote(f"1:{command.name}:({' '.join(command.positional)})"))
    else:
        specs.append(_quote("*:file:_files -g '*.arch(-.)'"))
    return " \\\n".join(f"            {spec}" for spec in specs)


def _zsh_option(option: Option) -> str:
    help_text = _short(option.help).replace("[", "(").replace("]", ")")
    value = ""
    if option.value == "choices":
        value = f":{option.flags[-1].lstrip('-')}:({' '.join(option.choices)})"
    elif option.value:
        value = f":{option.flags[-1].lstrip('-')}:{_ZSH_VALUES[option.value]}"
    repeat = "*" if option.repeatable else ""
    if len(option.flags) == 1:
        return _quote(f"{repeat}{option.flags[0]}[{help_text}]{value}")
    exclusive = "" if repeat else f"({' '.join(option.flags)})"
    return f"{_quote(f'{exclusive}{repeat}')}{{{','.join(option.flags)}}}" \
           f"{_quote(f'[{help_text}]{value}')}"


def _short(text: str, width: int = 72) -> str:
    """A help text up to its first `;` or parenthesis, on one line, at most `width`
    characters, without the characters zsh's specs give a meaning (`:`, `\\`)."""
    first = re.sub(r"\s+", " ", re.split(r";| \(", text, maxsplit=1)[0]).strip()
    if len(first) > width:
        first = first[:width].rsplit(" ", 1)[0] + " ..."
    return first.replace(": ", " - ").replace(":", " ").replace("\\", "")


def _quote(text: str) -> str:
    """Single-quoted for the shell."""
    return "'" + text.replace("'", "'\\''") + "'"
