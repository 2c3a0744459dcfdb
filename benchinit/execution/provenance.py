"""Where a run came from: the git commit, torch's build, the host and the command.

``collect(paths)`` is what a run stores as ``meta["provenance"]``, so that ``compare`` and
``history`` can say which commit or which BLAS a change arrived with. It never fails: outside
a git repository, without git, or when git hangs (a short timeout), the git fields are empty
and the run goes on. Pure apart from reading: it runs ``git`` read-only
(``GIT_OPTIONAL_LOCKS=0``, so ``git status`` does not refresh the index under a user's feet).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GIT_TIMEOUT = 5.0  # seconds per git call: a network file system may stall, a run must not
_BUILD_SETTING = re.compile(r"([A-Z_]+)=([^,]*)")


def _git(folder: Path, *args: str) -> str | None:
    """``git -C folder args`` output, or None when it fails for any reason."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """``commit``, ``branch`` ("" when detached) and ``dirty`` of the first of ``paths``
    inside a git repository; empty strings and None outside any.

    ``dirty`` counts changed tracked files only: result folders and scratch files usually
    sit untracked inside the repository, and would mark every run dirty.
    """
    for path in paths:
        folder = Path(path)
        folder = folder if folder.is_dir() else folder.parent
        if not folder.is_dir():
            continue
        commit = _git(folder, "rev-parse", "--verify", "HEAD")
        if not commit:
            continue
        branch = _git(folder, "symbolic-ref", "--short", "-q", "HEAD") or ""
        status = _git(folder, "status", "--porcelain", "--untracked-files=no")
        return {
            "commit": commit,
            "branch": branch,
            "dirty": None if status is None else bool(status),
        }
    return {"commit": "", "branch": "", "dirty": None}


def torch_config() -> dict[str, Any]:
    """torch's version and build: CUDA, cuDNN, BLAS and LAPACK, CPU features, and the raw
    ``torch.__config__.show()`` text (``show``) for anything not parsed."""
    try:
        import torch
    except ImportError:
        return {}
    show = _safe(torch.__config__.show) or ""
    settings = dict(_BUILD_SETTING.findall(show))
    capability = re.search(r"CPU capability usage: (\S+)", show)
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "",
        "cudnn": _safe(torch.backends.cudnn.version) or "",
        "blas": settings.get("BLAS_INFO", ""),
        "lapack": settings.get("LAPACK_INFO", ""),
        "mkl": bool(_safe(torch.backends.mkl.is_available)),
        "mkldnn": bool(_safe(torch.backends.mkldnn.is_available)),
        "openmp": bool(_safe(torch.backends.openmp.is_available)),
        "cpu_capability": capability.group(1) if capability else "",
        "show": show,
    }


def _safe(call: Any) -> Any:
    """``call()``, or None when this torch build cannot answer (no CUDA, an old torch)."""
    try:
        return call()
    except Exception:  # a provenance field must never stop a run
        return None


def collect(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Provenance for ``meta["provenance"]``: git state of the first of ``paths`` in a
    repository (give the study file's folder, then the working directory), torch's build,
    the host name and the command line."""
    return {
        "git": git_info(paths),
        "torch_config": torch_config(),
        "host": socket.gethostname(),
        "command": list(sys.argv),
    }
