"""benchinit.execution.provenance: git state inside and outside a repository, torch's build,
never an exception (no git, a hanging git, a missing folder)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchinit.execution import provenance


def git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q")
    git(path, "symbolic-ref", "HEAD", "refs/heads/nightly")
    (path / "study.toml").write_text('[study]\nname = "x"\n')
    git(path, "add", "study.toml")
    git(path, "commit", "-q", "-m", "a study")
    return path


def test_inside_a_repository(repo):
    info = provenance.collect([repo / "study.toml", repo])["git"]
    assert info == {"commit": git(repo, "rev-parse", "HEAD"), "branch": "nightly", "dirty": False}
    (repo / "results").mkdir()  # untracked files (result folders) do not make it dirty
    (repo / "results" / "meta.json").write_text("{}")
    assert provenance.git_info([repo])["dirty"] is False
    (repo / "study.toml").write_text('[study]\nname = "changed"\n')
    assert provenance.git_info([repo])["dirty"] is True


def test_detached_head_has_no_branch(repo):
    git(repo, "checkout", "-q", "--detach")
    info = provenance.git_info([repo])
    assert info["branch"] == "" and len(info["commit"]) == 40


def test_the_first_path_in_a_repository_wins(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    assert provenance.git_info([tmp_path / "missing", outside, repo])["branch"] == "nightly"


def test_outside_any_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "plain"
    folder.mkdir()
    result = provenance.collect([folder, tmp_path / "missing" / "study.toml"])
    assert result["git"] == {"commit": "", "branch": "", "dirty": None}
    assert result["host"] and result["command"] == sys.argv


def test_without_git_or_with_a_hanging_git(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert provenance.git_info([tmp_path]) == {"commit": "", "branch": "", "dirty": None}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hanging = bin_dir / "git"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/bin{os.pathsep}/usr/bin")
    monkeypatch.setattr(provenance, "GIT_TIMEOUT", 0.3)
    assert provenance.git_info([tmp_path]) == {"commit": "", "branch": "", "dirty": None}


def test_torch_build_configuration():
    import torch

    config = provenance.torch_config()
    assert config["torch"] == torch.__version__
    assert config["show"] == torch.__config__.show()
    assert {"cuda", "cudnn", "blas", "lapack", "mkl", "mkldnn", "openmp"} <= set(config)
    if "BLAS_INFO=" in config["show"]:
        assert config["blas"] and config["blas"] in config["show"]
    assert config["cuda"] == (torch.version.cuda or "")
