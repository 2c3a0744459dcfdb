"""The ``benchinit`` command: the only module that speaks in command-line flags.

Exit status: 0 done; 1 a compare found a regression, or some cells failed; 2 bad input or
an output that cannot be written (a one-paragraph message, no traceback); 130 interrupted
by Ctrl-C or SIGTERM (finished cells are kept).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tomllib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from benchinit._version import __version__
from benchinit.errors import BenchinitError, did_you_mean

# How the command line spells the options that library errors name ({name} placeholders).
FLAGS = {
    "force": "--force",
    "max_cells": "--no-size-check",
    "check_memory": "--no-size-check",
    "device": "--device",
    "jobs": "--jobs",
    "threads": "--threads",
    "executor": "--executor local",
    "out": "--out",
}
SEEDS = "run seeds 0..N-1; auto: add seeds until intervals are narrow (README: seeds until decided)"
_AT_FORK = False  # the at-fork hook is registered once per process
INTERRUPTED = {
    "run": "interrupted; finished cells are saved, a rerun continues where it stopped.",
    "report": "interrupted; the report was not written.",
    "index": "interrupted; the index was not written.",
    "compare": "interrupted; nothing was written.",
}

_KINDS = ("initializer", "activation", "loss", "optimizer", "dataset", "study")
_PLURALS = ("initializers", "activations", "losses", "optimizers", "datasets", "studies")
KIND_ALIASES = {a: k for k, p in zip(_KINDS, _PLURALS, strict=True) for a in (k, p)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchinit",
        description="Benchmark weight initializers, activations, losses and optimizers; "
        "write a self-contained HTML report.",
    )
    parser.add_argument("--version", action="version", version=f"benchinit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list plugins and built-in studies")
    p.add_argument(
        "kind",
        nargs="?",
        help="one kind: initializers, activations, losses, optimizers, datasets or studies",
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="also load this plugin file (repeatable)",
    )

    p = sub.add_parser("run", help="run a study and write its report")
    p.add_argument(
        "study", help="a study file, or a built-in study's name (benchinit list studies)"
    )
    p.add_argument("--out", metavar="DIR", help="results folder (default reports/<study name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study key, e.g. --set model.depth=30 (repeatable)",
    )
    p.add_argument("--seeds", type=_count_or_auto("seeds"), metavar="N|auto", help=SEEDS)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--executor",
        choices=["auto", "local", "process", "dask"],
        default="auto",
        help="where batches run: auto (in process for one job, else forked workers), local, "
        "process (spawned workers) or dask (default auto)",
    )
    p.add_argument(
        "--jobs",
        type=_count_or_auto("processes"),
        default="auto",
        metavar="N",
        help="worker processes, or auto: the usable cores on a CPU, 1 on CUDA (default auto)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch threads per worker (default 1: see README, 'Threads')",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="dask.distributed scheduler address (default: a local cluster)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="load this plugin file (repeatable)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="torch deterministic algorithms (default: $BENCHINIT_DETERMINISTIC)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="time limit per cell; a cell past it fails (default: none)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that holds other files (never replacing one)",
    )
    p.add_argument(
        "--no-size-check",
        action="store_true",
        help="run grids over 100,000 cells and batches estimated not to fit in memory",
    )
    p.add_argument("--no-report", action="store_true", help="store results, skip the HTML")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("report", help="(re)write the HTML report of a results folder")
    p.add_argument("dir", help="a results folder written by benchinit run")
    p.add_argument("--out", metavar="FILE", help="where to write (default DIR/index.html)")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="worker processes drawing figures (default: the CPUs, at most 4)",
    )

    # --- index: one page listing every results folder under a directory ---
    p = sub.add_parser("index", help="write one page listing every results folder under DIR")
    p.add_argument("dir", help="a folder holding results folders (searched recursively)")
    p.add_argument("--out", metavar="FILE", help="where to write (default DIR/index.html)")
    p = sub.add_parser("compact", help="merge the record files of results folders (older runs)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders written by benchinit")

    p = sub.add_parser("compare", help="compare two result sets; exit 1 on a regression")
    p.add_argument("base", help="baseline results folder")
    p.add_argument("new", help="new results folder")
    p.add_argument("--out", metavar="FILE", help="HTML output (default NEW/compare.html)")
    _verdict_options(p)

    p = sub.add_parser(
        "history", help="trend page of a series of result sets; exit 1 if the last step regressed"
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders of one study, in order")
    p.add_argument("--out", metavar="FILE", help="HTML output (default LAST/history.html)")
    p.add_argument(
        "--sort",
        choices=["given", "time"],
        default="given",
        help="order of the series: as given (default) or by the time each run started",
    )
    _verdict_options(p)
    return parser


def _verdict_options(p: argparse.ArgumentParser) -> None:
    """The options compare and history share: what to test and how."""
    p.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    p.add_argument(
        "--markdown",
        metavar="FILE",
        help="also write the summary as GitHub-flavoured Markdown (the same Markdown is "
        "appended to $GITHUB_STEP_SUMMARY whenever that variable is set)",
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help="metric to compare (repeatable; default the study's main metric)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        metavar="T",
        help="smallest difference that counts (default: metric-specific)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    p.add_argument(
        "--correction",
        choices=["holm", "bh", "none"],
        default="holm",
        help="adjust p-values over all verdicts: holm (default; family-wise error), bh "
        "(Benjamini-Hochberg, false discovery rate) or none",
    )


def _count_or_auto(what: str) -> Callable[[str], int | str]:
    """An option's value: a positive number of ``what``, or ``auto`` (--jobs, --seeds)."""

    def parse(text: str) -> int | str:
        if text == "auto":
            return text
        if not text.strip().isdecimal():  # int() reads exactly these
            hint = did_you_mean(text, ["auto"])
            raise argparse.ArgumentTypeError(
                f"expected a number of {what} or auto, got {text!r}.{hint}"
            )
        if int(text) < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {int(text)}")
        return int(text)

    return parse


def _out(*args: Any) -> None:
    """Print to stdout; a reader that left (``benchinit list | head``) ends the output
    quietly: the rest goes nowhere, and the command's own work is unaffected."""
    try:
        print(*args)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _default_signals_in_forked_children() -> None:
    """A process forked by plugin code (a multiprocessing pool in a dataset, say) must not
    inherit our SIGTERM handler: terminated, it would raise KeyboardInterrupt and print a
    traceback instead of ending."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM stops a command the way Ctrl-C does: cleanly, keeping what is finished."""
    raise KeyboardInterrupt


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"benchinit: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _show_warning
    args = _parser().parse_args(argv)
    args.argv = argv  # recorded with the results: the command that made them
    previous = signal.signal(signal.SIGTERM, _terminate)
    global _AT_FORK
    if not _AT_FORK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_default_signals_in_forked_children)
        _AT_FORK = True
    try:
        return COMMANDS[args.command](args)
    except BenchinitError as exc:
        print(f"benchinit: error: {exc.render(FLAGS)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        message = INTERRUPTED.get(args.command, "interrupted.")
        print(f"\nbenchinit: {message}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cmd_list(args: argparse.Namespace) -> int:
    from benchinit.descriptors import plain
    from benchinit.registry import Registry
    from benchinit.sources import builtin_studies

    kind = None
    if args.kind:
        kind = KIND_ALIASES.get(args.kind.lower())
        if kind is None:
            raise BenchinitError(
                f"unknown kind '{args.kind}'.{did_you_mean(args.kind, KIND_ALIASES)} "
                "Valid kinds: initializers, activations, losses, optimizers, datasets, studies."
            )
    registry = Registry(args.plugin)
    rows = []
    if kind != "study":
        for entry in registry.entries(None if kind is None else kind):
            name = entry.descriptor.name
            if kind is not None:
                params = entry.descriptor.parameters()
                shown = [
                    f"{p.name}" if p.required else f"{p.name}={p.default!r}"
                    for p in params.values()
                ]
                name += f"({', '.join(shown)})" if shown else ""
            rows.append((entry.kind, name, entry.plugin.source, plain(entry.descriptor.doc)))
    if kind in (None, "study"):
        for name, text in sorted(builtin_studies().items()):
            title = tomllib.loads(text).get("study", {}).get("title", "")
            rows.append(("study", name, "builtin", title))
    _print_table(("KIND", "NAME", "SOURCE", "DESCRIPTION"), rows)
    return 0


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        _out("  ".join([*cells, str(row[-1])]).rstrip())


def _cmd_run(args: argparse.Namespace) -> int:
    from benchinit.runner import run
    from benchinit.study import MAX_CELLS, load_study

    study = load_study(
        args.study,
        args.overrides,
        plugins=args.plugin,
        seeds=args.seeds,
        max_cells=None if args.no_size_check else MAX_CELLS,
    )
    outcome = run(
        study,
        out=args.out,
        device=args.device,
        executor=args.executor,
        jobs=args.jobs,
        threads=args.threads,
        scheduler=args.scheduler,
        report=not args.no_report,
        progress=not args.quiet,
        command=["benchinit", *args.argv],
        deterministic=args.deterministic,
        timeout=args.timeout,
        force=args.force,
        check_memory=not args.no_size_check,
    )
    _out(outcome.summary())
    return 1 if outcome.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from benchinit.report import render_report

    path = render_report(args.dir, out=args.out, parallel=max(1, args.jobs))
    _out(f"report: {path}")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from benchinit.runs_index import write_index

    _out(f"index: {write_index(args.dir, out=args.out)}")
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    from benchinit.folder_summary import settle

    for folder in args.dirs:
        settle(folder)
        _out(f"compacted: {folder}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from benchinit.comparison import compare

    outcome = compare(
        args.base,
        args.new,
        metrics=args.metric,
        tolerance=args.tolerance,
        alpha=args.alpha,
        correction=args.correction,
        out=args.out,
        json_out=args.json,
        markdown_out=args.markdown,
    )
    _out(outcome.summary())
    return 1 if outcome.regressed else 0


def _cmd_history(args: argparse.Namespace) -> int:
    from benchinit.series import history

    outcome = history(
        args.dirs,
        metrics=args.metric,
        tolerance=args.tolerance,
        alpha=args.alpha,
        correction=args.correction,
        sort=args.sort,
        out=args.out,
        json_out=args.json,
        markdown_out=args.markdown,
    )
    _out(outcome.summary())
    return 1 if outcome.regressed else 0


COMMANDS = {
    "list": _cmd_list,
    "run": _cmd_run,
    "report": _cmd_report,
    "index": _cmd_index,
    "compact": _cmd_compact,
    "compare": _cmd_compare,
    "history": _cmd_history,
}
