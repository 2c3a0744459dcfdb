"""The ``benchinit`` command: the only module that speaks in command-line flags.

Exit status: 0 done; 1 a compare found a regression, or some cells failed; 2 bad input or
an output that cannot be written (a one-paragraph message, no traceback); 130 interrupted
by Ctrl-C or SIGTERM (finished cells are kept).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import tomllib
import warnings
from collections.abc import Sequence
from typing import Any

from benchinit import cli_read
from benchinit.cli_options import FLAGS, parser
from benchinit.errors import BenchinitError, did_you_mean

_AT_FORK = False  # the at-fork hook is registered once per process
INTERRUPTED = {
    "run": "interrupted; finished cells are saved, a rerun continues where it stopped.",
    "report": "interrupted; the report was not written.",
    "show": "interrupted.",
    "index": "interrupted; the index was not written.",
    "compare": "interrupted; nothing was written.",
}

KIND_ALIASES = {
    "initializer": "initializer",
    "initializers": "initializer",
    "activation": "activation",
    "activations": "activation",
    "loss": "loss",
    "losses": "loss",
    "optimizer": "optimizer",
    "optimizers": "optimizer",
    "dataset": "dataset",
    "datasets": "dataset",
    "model": "model",
    "models": "model",
    "study": "study",
    "studies": "study",
}


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


def command() -> int:
    """The ``benchinit`` command (and ``python -m benchinit``): :func:`main`, then an exit
    that skips the interpreter's last garbage collections. Those walk every object torch,
    pandas and matplotlib made at import: 0.6-0.7 s of every command (of a 5 s study),
    against 0.1 s once they are frozen (``gc.freeze``; measured). Everything is written and
    closed by then; only here, never in :func:`main`, which tests and scripts call and go on."""
    code = main()
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _show_warning
    args = parser().parse_args(argv)
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
    from benchinit.plugins.descriptors import plain
    from benchinit.plugins.registry import Registry
    from benchinit.study.sources import builtin_studies

    kind = None
    if args.kind:
        kind = KIND_ALIASES.get(args.kind.lower())
        if kind is None:
            raise BenchinitError(
                f"unknown kind '{args.kind}'.{did_you_mean(args.kind, KIND_ALIASES)} "
                "Valid kinds: initializers, activations, losses, optimizers, datasets, models, "
                "studies."
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
    from benchinit.report.figure_workers import FigureWorkers, drawing_processes

    workers = FigureWorkers(drawing_processes(args.jobs))
    if not args.no_report:
        workers.begin()  # they import while this process does (FigureWorkers.begin)
    with workers:
        return _run_study(args, workers)


def _run_study(args: argparse.Namespace, workers: Any) -> int:
    from benchinit.study.load import MAX_CELLS, load_study

    study = load_study(
        args.study,
        args.overrides,
        plugins=args.plugin,
        seeds=args.seeds,
        max_cells=None if args.no_size_check else MAX_CELLS,
    )
    from benchinit.pipeline import run  # torch: after the study's own errors are said

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
        figure_workers=workers,
    )
    _out(outcome.summary())
    return 1 if outcome.failed else 0


def _cmd_index(args: argparse.Namespace) -> int:
    from benchinit.gate.index import write_index

    _out(f"index: {write_index(args.dir, out=args.out)}")
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    from benchinit.results.folder_summary import settle

    for folder in args.dirs:
        settle(folder)
        _out(f"compacted: {folder}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from benchinit.gate.compare import compare
    from benchinit.gate.compare_render import text_summary

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
    _out(text_summary(outcome))
    return 1 if outcome.regressed else 0


def _cmd_history(args: argparse.Namespace) -> int:
    from benchinit.gate.history import history
    from benchinit.gate.history_render import text_summary

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
    _out(text_summary(outcome))
    return 1 if outcome.regressed else 0


COMMANDS = {
    "list": _cmd_list,
    "run": _cmd_run,
    "report": lambda args: cli_read.cmd_report(args, _out),
    "show": lambda args: cli_read.cmd_show(args, _out),
    "index": _cmd_index,
    "compact": _cmd_compact,
    "compare": _cmd_compare,
    "history": _cmd_history,
}
