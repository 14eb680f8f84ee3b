"""What a Linux command brings besides HPC Pack's syntax: a man page (`job manpage`) and bash completion
(`job completion bash`), both made from the same command and option tables as the parser, so they cannot
drift from it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Command


def _roff(text: str) -> str:
    """Plain text as roff: backslashes doubled, no line may start with a dot or a quote."""
    lines = text.replace("\\", "\\e").splitlines()
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in lines)


def man_page(commands: Mapping[str, Command], parser: Callable[[Command], argparse.ArgumentParser],
             overview: str, version: str, tool: str = "job") -> str:
    what = ("create, submit, cancel and list HPC Pack jobs" if tool == "job"
            else "cancel, finish, requeue and show HPC Pack tasks")
    out = [f'.TH {tool.upper()} 1 "" "hpcpack {version}" "HPC Pack commands"', ".SH NAME",
           f"{tool} \\- {what}",
           ".SH SYNOPSIS", f".B {tool}", "\\fIcommand\\fR [\\fIarguments\\fR] [/scheduler:\\fIname\\fR]",
           ".SH DESCRIPTION", ".nf", _roff(overview), ".fi", ".SH COMMANDS"]
    for command in commands.values():
        out += [f".SS {command.name}", ".nf", _roff(parser(command).format_help().rstrip()), ".fi"]
    out += [".SH EXIT STATUS", "0 done; 1 the head node refused or failed; 2 the words are not a valid command;",
            "130 interrupted (Ctrl+C); 141 the reader of the output went away.",
            ".SH ENVIRONMENT", ".TP", ".B CCP_SCHEDULER",
            "The head node when /scheduler: is not given (a local name or unix:/path/to/headnode.sock).",
            ".TP", ".B HPCPACK_HOME", "The state folder of the head node to use (and start).",
            ".SH SEE ALSO", "pwsh(1): Get-Help about_HPC, Get-Help Stop-HpcJob"]
    return "\n".join(out) + "\n"


def bash_completion(commands: Mapping[str, Command], tool: str = "job") -> str:
    """A bash completion function: commands, each command's options, and job ids from `job list /all`."""
    cases = []
    for command in commands.values():
        words = [f"/{o.name}" + (":" if o.kind != "bool" else "") for o in (*command.options,)]
        words += ["/scheduler:", "/?"]
        ids = "1" if command.job_id in ("required", "optional") else "0"
        cases.append(f"        {command.name}) opts='{' '.join(words)}'; ids={ids} ;;")
    return "\n".join([
        f"# bash completion for HPC Pack's {tool} command: eval \"$({tool} completion bash)\"",
        f"_hpcpack_{tool}() {{",
        "    local cur=${COMP_WORDS[COMP_CWORD]} opts ids",
        "    if [ \"$COMP_CWORD\" -eq 1 ]; then",
        f"        COMPREPLY=($(compgen -W '{' '.join(commands)} completion manpage' -- \"$cur\")); return",
        "    fi",
        "    case ${COMP_WORDS[1],,} in",
        *cases,
        "        *) return ;;",
        "    esac",
        "    if [[ $cur == /* || $cur == -* ]]; then",
        "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))",
        "        [[ ${COMPREPLY[0]} == *: ]] && compopt -o nospace",
        "    elif [ \"$ids\" = 1 ] && [ \"$COMP_CWORD\" -eq 2 ]; then",
        "        COMPREPLY=($(compgen -W \"$(job list /all 2>/dev/null | awk 'NR > 2 { print $1 }')\" -- \"$cur\"))",
        "    fi",
        "}",
        f"complete -o default -F _hpcpack_{tool} {tool}",
        "",
    ])
