"""The ``benchinit`` commands that read a results folder and draw or print it: ``report``
(the page, or with ``--figures`` the figures as files) and ``show`` (the leaderboard,
failures and divergences in a terminal). Their options and what they do; benchinit.cli
wires them in. Imports stay inside the commands: ``show`` draws nothing, so it loads
neither matplotlib nor the run side.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

FIGURE_FORMATS = ("pdf", "svg", "png")
SHOW_FORMATS = ("text", "markdown", "csv", "json")


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="(re)write the HTML report of a results folder")
    p.add_argument("dir", help="a results folder written by benchinit run")
    p.add_argument("--out", metavar="FILE", help="where to write (default DIR/index.html)")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="processes drawing figures, this one included (default: the CPUs, at most 4)",
    )
    p.add_argument(
        "--figures",
        metavar="OUTDIR",
        help="instead of the page, write each figure as a file into OUTDIR (for papers)",
    )
    p.add_argument(
        "--format",
        choices=FIGURE_FORMATS,
        help="the figure files' format with --figures (default pdf)",
    )


def add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show", help="print a results folder: leaderboard, tuned values, failures, divergences"
    )
    p.add_argument("dir", help="a results folder written by benchinit run")
    p.add_argument(
        "--format", choices=SHOW_FORMATS, default="text", help="text (default), markdown, csv, json"
    )


def cmd_report(args: argparse.Namespace, out: Callable[..., None]) -> int:
    from benchinit.errors import BenchinitError

    if args.format and not args.figures:
        raise BenchinitError("--format is the format of --figures files; add --figures OUTDIR")
    if args.figures:
        if args.out:
            raise BenchinitError("--out names the page and --figures a folder; give one of them")
        from benchinit.report.figure_files import export_figures

        written = export_figures(args.dir, args.figures, args.format or "pdf", progress=True)
        out(f"figures: {len(written)} {args.format or 'pdf'} files in {args.figures}")
        return 0
    from benchinit.report.figure_workers import FigureWorkers, drawing_processes

    with FigureWorkers(drawing_processes(args.jobs)) as workers:
        workers.begin()  # they import while this process does (FigureWorkers.begin)
        from benchinit.report.page import render_report

        path = render_report(args.dir, out=args.out, parallel=workers, progress=True)
    out(f"report: {path}")
    return 0


def cmd_show(args: argparse.Namespace, out: Callable[..., None]) -> int:
    from benchinit.report.show import show

    text = show(args.dir, args.format)
    out(text.rstrip("\n"))
    sys.stdout.flush()
    return 0
