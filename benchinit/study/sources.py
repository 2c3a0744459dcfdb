"""Where a study's TOML comes from: a file or a built-in study, read as UTF-8 text, and the
``--set KEY=VALUE`` overrides applied to it before it is validated (benchinit.study.load)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from benchinit.errors import StudyError, choices_text, did_you_mean, os_reason
from benchinit.study import settings


def builtin_studies() -> dict[str, str]:
    """Built-in study names -> their TOML text."""
    folder = resources.files("benchinit") / "studies"
    return {
        entry.name[: -len(".toml")]: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def read_study(study: str | Path) -> tuple[str, str, Path]:
    """(source, TOML text, folder plugin paths are relative to) of a file or built-in."""
    path = Path(study)
    builtins = builtin_studies()
    if path.suffix == ".toml" or path.exists():
        if path.is_dir():
            raise StudyError(str(path), "", "is a folder; name a study's .toml file")
        if not path.is_file():
            hint = (
                f" (the built-in study is named '{path.stem}', without .toml)"
                if path.stem in builtins and not path.parent.name
                else ""
            )
            raise StudyError(str(path), "", f"no such file{hint}")
        try:  # utf-8-sig: a byte-order mark some editors write is not TOML
            return str(path), path.read_bytes().decode("utf-8-sig"), path.parent
        except UnicodeDecodeError:
            raise StudyError(
                str(path), "", "is not UTF-8 text; a study is a TOML text file"
            ) from None
        except OSError as exc:
            raise StudyError(str(path), "", f"cannot be read: {os_reason(exc)}") from None
    if str(study) in builtins:
        return f"builtin:{study}", builtins[str(study)], Path.cwd()
    raise StudyError(
        str(study),
        "",
        f"no study file or built-in study of that name.{did_you_mean(str(study), builtins)} "
        f"Built-in studies: {choices_text(builtins)}.",
    )


def apply_overrides(document: dict, overrides: Sequence[str], source: str) -> set[str]:
    keys = set()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StudyError(source, item, "an override must look like key=value (--set)")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: a string, e.g. --set data.name=digits
        section, _, rest = key.partition(".")
        if not rest:
            owners = [s for s in settings.SECTIONS if key in settings.keys(s)]
            example = f"{owners[0]}.{key}" if owners else f"model.{key}"
            raise StudyError(
                source, key, f"an override needs section.key, e.g. {example}=... (--set)"
            )
        target = document.setdefault(section, {})
        if not isinstance(target, dict):
            raise StudyError(source, section, "is not a table")
        # grid keys may be dotted themselves: grid.model.depth=[5,30] or grid."model.depth"=...
        target[rest.strip('"')] = value
        keys.add(key)
    return keys
