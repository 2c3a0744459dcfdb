"""``benchinit.run``: a study computed and stored (:mod:`benchinit.execution.runner`), then
its report drawn (:mod:`benchinit.report.page`). The one module that joins the run side to
the pages; everything below it flows one way."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchinit.execution.processes import usable_cores
from benchinit.execution.runner import execute
from benchinit.report.figure_workers import WARM_AFTER, FigureWorkers, drawing_processes
from benchinit.report.page import render_report
from benchinit.results import failures
from benchinit.results.tables import Results, load_results
from benchinit.study import seed_record
from benchinit.study.load import Study


@dataclass
class RunOutcome:
    """What a run did, and where its results are."""

    out: Path
    results: Results
    computed: int  # cells computed by this run
    reused: int  # cells found finished in the folder
    seconds: float
    report: Path | None
    others: int = 0  # cells another run into the same folder computed meanwhile
    # stored cells computed again because their code changed: why -> how many
    recomputed: dict[str, int] = field(default_factory=dict)
    report_seconds: float = 0.0  # drawing the report; ``seconds`` is the computing alone

    @property
    def failed(self) -> int:
        """Cells that failed, a tuned study's tuning cells among them: the run exits 1, and
        a rerun retries them (README, "a rerun retries failed cells")."""
        tuning = self.results.tuning
        failed = int((tuning["status"] == "failed").sum()) if len(tuning) else 0
        return self.results.counts()["failed"] + failed

    def summary(self, rows: int = 8) -> str:
        """A few lines for the terminal: counts, the best configurations, where things are."""
        counts = self.results.counts()
        tuning = self.results.tuning
        lines = [
            f"{self.results.study['name']}: {len(self.results.runs)} cells "
            f"({counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed)"
            + (f" and {len(tuning)} tuning cells ({_statuses(tuning)})" if len(tuning) else "")
            + f"; {self.computed} computed in {self.seconds:.1f} s, "
            f"{self.reused} already stored"
            + (f", {self.others} computed meanwhile by another run" if self.others else "")
            + "".join(f"; {n} recomputed: {why}" for why, n in self.recomputed.items())
            + (f"; report drawn in {self.report_seconds:.1f} s" if self.report else ""),
        ]
        rounds = self.results.study["seeding"]
        if rounds.get("configurations"):
            lines.append(seed_record.describe(rounds))
        if counts["ok"]:
            table = self.results.summary()
            metric = self.results.metric
            columns = [*self.results.varying, "mean", "ci_low", "ci_high", "seeds", "diverged"]
            shown = table[columns].head(rows).rename(columns={"mean": metric})
            lines += ["", shown.to_string(index=False, float_format=lambda v: f"{v + 0.0:.4g}")]
            if len(table) > rows:
                lines.append(f"... {len(table) - rows} more configurations in the report")
            lines.append("")
        page = "the report's Problems section, or " if self.report else ""
        where = f"every error: {page}benchinit show {self.out}"
        lines += failures.report_lines(self.results, where)
        lines.append(f"results: {self.out}")
        if self.report is not None:
            lines.append(f"report:  {self.report}")
        return "\n".join(lines)


def _statuses(runs: pd.DataFrame) -> str:
    """'3 ok, 0 diverged, 1 failed': a runs table's cells by status."""
    return ", ".join(
        f"{int((runs['status'] == s).sum())} {s}" for s in ("ok", "diverged", "failed")
    )


def run(
    study: Study,
    out: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    executor: str = "auto",
    jobs: int | str = "auto",
    threads: int = 1,
    scheduler: str | None = None,
    report: bool = True,
    progress: bool = True,
    command: Sequence[str] | None = None,
    deterministic: bool | None = None,
    timeout: float | None = None,
    force: bool = False,
    check_memory: bool = True,
    figure_workers: FigureWorkers | None = None,
) -> RunOutcome:
    """Run every unfinished cell of ``study`` into ``out`` (default ``reports/<name>``),
    then write its report (``report=False``: the tables only). The options are
    :func:`benchinit.execution.runner.execute`'s, documented there; ``figure_workers``:
    the report's, when the caller started them (``benchinit run`` does, at its start)."""
    # Figure workers: as many drawing processes as --jobs (auto: the cores), this one
    # included, at most 4; those the cells leave idle cores for start during the run and
    # import meanwhile (benchinit.report.figure_workers)
    workers = figure_workers or FigureWorkers(drawing_processes(jobs), ahead=WARM_AFTER)

    def planned(cells: int, separate: bool) -> None:
        if report:
            workers.expect(usable_cores() - (cells if separate else 1))

    with workers:
        done = execute(
            study,
            out,
            device=device,
            executor=executor,
            jobs=jobs,
            threads=threads,
            scheduler=scheduler,
            progress=progress,
            command=command,
            deterministic=deterministic,
            timeout=timeout,
            force=force,
            check_memory=check_memory,
            on_workers=planned,
        )
        drawing = time.perf_counter()
        page = None
        if report:
            page = render_report(
                done.out, registry=study.registry, parallel=workers, progress=progress
            )
    return RunOutcome(
        done.out,
        load_results(done.out),
        done.tally.computed,
        done.tally.stored,
        done.seconds,
        page,
        done.tally.others,
        done.recomputed,
        time.perf_counter() - drawing,
    )
