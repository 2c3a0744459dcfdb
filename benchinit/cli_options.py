"""The command line's options: one argparse declaration per flag, and the flag each option
of the Python API is spelled as (for error messages that speak in flags).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchinit import cli_read
from benchinit._version import __version__
from benchinit.errors import did_you_mean

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


def parser() -> argparse.ArgumentParser:
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
        help="one kind: initializers, activations, losses, optimizers, datasets, models or studies",
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

    cli_read.add_report(sub)
    p = sub.add_parser("compact", help="merge the record files of results folders (older runs)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders written by benchinit")
    cli_read.add_show(sub)

    # --- index: one page listing every results folder under a directory ---
    p = sub.add_parser("index", help="write one page listing every results folder under DIR")
    p.add_argument("dir", help="a folder holding results folders (searched recursively)")
    p.add_argument("--out", metavar="FILE", help="where to write (default DIR/index.html)")

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
