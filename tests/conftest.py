"""Shared fixtures. Tests run with 1 torch thread and without installed plugins by default
(tests that need entry-point discovery turn it back on explicitly)."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")
torch.set_num_threads(1)

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def write_study(tmp_path: Path) -> Callable[..., Path]:
    """Write a study file from TOML text (dedented); returns its path."""

    def write(text: str, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_plugin(tmp_path: Path) -> Callable[..., Path]:
    """Write a plugin .py file (dedented); returns its path."""

    def write(text: str, name: str = "my_plugin.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _signals_are_left_as_found():
    """A test that leaves SIGINT blocked or ignored in pytest's process hands that on to every
    command a later test starts (a mask and an ignored handler are inherited), and Ctrl-C
    tests then fail far from the cause: each test must leave them as it found them."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, []), signal.getsignal(signal.SIGINT)
    yield
    after = signal.pthread_sigmask(signal.SIG_BLOCK, []), signal.getsignal(signal.SIGINT)
    assert after == before, f"signal mask or SIGINT handler changed: {before} -> {after}"
