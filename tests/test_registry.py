"""The plugin registry: built-ins, entry points, files, and the errors that name plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from benchinit.cli import main
from benchinit.errors import PluginError
from benchinit.plugins.registry import Registry

EXPECTED = {
    "initializer": {
        "zeros",
        "constant",
        "normal",
        "uniform",
        "xavier_normal",
        "xavier_uniform",
        "kaiming_normal",
        "kaiming_uniform",
        "lecun_normal",
        "orthogonal",
        "trunc_normal",
        "fixup",
        "skipinit",
        "rezero",
    },
    "activation": {
        "identity",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "softplus",
        "softsign",
    },
    "loss": {"mse", "cross_entropy", "gaussian_nll", "l1", "huber"},
    "optimizer": {"sgd", "adam", "adamw", "rmsprop", "adagrad"},
    "dataset": {"gaussian", "linear", "digits", "mnist_5k", "mnist", "blobs", "spirals"},
    "model": {"mlp", "cnn", "resnet"},
}

PLUGIN = """
    import torch
    from benchinit import Initializer, hookimpl

    def half_normal(weight, generator, activation, *, scale: float = 0.5):
        "N(0, scale^2)."
        with torch.no_grad():
            weight.normal_(0.0, scale, generator=generator)

    @hookimpl
    def benchinit_initializers():
        return [Initializer("{name}", half_normal)]
"""


def make_distribution(
    root: Path, dist: str, module: str, body: str, version: str = "1.2.3"
) -> None:
    """A real installed distribution: a module plus a .dist-info with an entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[benchinit]\n{module} = {module}\n")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install distributions into a temporary sys.path entry; forget their modules after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []

    def install(dist: str, module: str, body: str, version: str = "1.2.3") -> None:
        make_distribution(tmp_path, dist, module, body, version)
        modules.append(module)

    yield install
    for module in modules:
        sys.modules.pop(module, None)


def test_every_builtin_is_registered_with_its_source():
    registry = Registry(autoload=False)
    for kind, names in EXPECTED.items():
        assert names <= set(registry.names(kind)), kind
        for name in names:
            entry = registry.get(kind, name)
            assert entry.plugin.source == "builtin"
            assert entry.descriptor.doc, f"{kind} {name} has no one-line doc"


def test_entry_point_distribution_is_discovered(installed):
    installed("benchinit-halfnormal", "bi_halfnormal", PLUGIN.format(name="half_normal"))
    registry = Registry(autoload=True, blocked=())
    entry = registry.get("initializer", "half_normal")
    assert entry.plugin.source == "benchinit-halfnormal==1.2.3"
    assert entry.plugin.origin == "distribution"
    assert entry.plugin.version == "1.2.3"


def test_autoload_off_and_block_list(installed, monkeypatch):
    installed("benchinit-halfnormal", "bi_halfnormal", PLUGIN.format(name="half_normal"))
    monkeypatch.setenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "half_normal" not in Registry().names("initializer")
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD")
    assert "half_normal" in Registry(blocked=()).names("initializer")
    monkeypatch.setenv("BENCHINIT_BLOCK_PLUGINS", "benchinit.builtin.losses, bi_halfnormal")
    assert "half_normal" not in Registry().names("initializer")


def test_a_plugin_is_blocked_by_its_distribution_s_name_too(installed, monkeypatch, capsys):
    """The name `benchinit list` shows (the distribution), in any spelling pip accepts."""
    installed("benchinit-halfnormal", "bi_halfnormal", PLUGIN.format(name="half_normal"))
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert main(["list", "initializers"]) == 0
    assert "benchinit-halfnormal==1.2.3" in capsys.readouterr().out
    for name in ("benchinit-halfnormal", "Benchinit_HalfNormal"):
        monkeypatch.setenv("BENCHINIT_BLOCK_PLUGINS", name)
        assert "half_normal" not in Registry().names("initializer")


def test_a_blocked_name_that_matches_nothing_is_exit_2(installed, monkeypatch, capsys):
    installed("benchinit-halfnormal", "bi_halfnormal", PLUGIN.format(name="half_normal"))
    monkeypatch.setenv("BENCHINIT_BLOCK_PLUGINS", "benchinit-halfnormall")
    with pytest.raises(PluginError, match="Did you mean 'benchinit-halfnormal'"):
        Registry(autoload=False)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert "BENCHINIT_BLOCK_PLUGINS names 'benchinit-halfnormall', which matches no plugin" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_file_plugin(write_plugin):
    path = write_plugin(PLUGIN.format(name="half_normal"))
    registry = Registry([path], autoload=False)
    entry = registry.get("initializer", "half_normal")
    assert entry.plugin.origin == "file"
    assert entry.plugin.source == str(path.resolve())
    assert len(entry.plugin.version) == 12  # content hash: edits make new cells
    assert registry.bind("initializer", "half_normal(scale=2)").params == {"scale": 2.0}


def test_duplicate_name_names_both_sources(write_plugin):
    path = write_plugin(PLUGIN.format(name="xavier_normal"))
    with pytest.raises(PluginError) as info:
        Registry([path], autoload=False)
    message = str(info.value)
    assert "duplicate initializer 'xavier_normal'" in message
    assert "built-in plugin 'benchinit.builtin.initializers'" in message
    assert f"plugin file '{path.resolve()}'" in message


def test_duplicate_between_two_distributions(installed):
    installed("dist-a", "bi_a", PLUGIN.format(name="same_name"))
    installed("dist-b", "bi_b", PLUGIN.format(name="same_name"), version="0.1")
    with pytest.raises(PluginError, match=r"'bi_a' from dist-a==1\.2\.3.*'bi_b' from dist-b==0\.1"):
        Registry(autoload=True, blocked=())


def test_broken_file_plugin_is_named(write_plugin):
    path = write_plugin("import not_a_module_anywhere\n", name="broken.py")
    with pytest.raises(PluginError) as info:
        Registry([path], autoload=False)
    assert f'Error importing plugin file "{path.resolve()}"' in str(info.value)
    assert "ModuleNotFoundError" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_broken_entry_point_is_named(installed):
    installed("benchinit-broken", "bi_broken", "raise RuntimeError('boom at import')\n")
    with pytest.raises(PluginError) as info:
        Registry(autoload=True, blocked=())
    message = str(info.value)
    assert 'Error importing plugin "bi_broken"' in message
    assert "benchinit-broken==1.2.3" in message and "boom at import" in message
    assert "BENCHINIT_BLOCK_PLUGINS=bi_broken" in message


def test_unknown_hook_is_named(write_plugin):
    path = write_plugin(
        """
        from benchinit import hookimpl

        @hookimpl
        def benchinit_initialisers():
            return []
    """,
        name="typo.py",
    )
    with pytest.raises(
        PluginError, match=r"typo\.py.*hook that does not exist.*benchinit_initializers"
    ):
        Registry([path], autoload=False)


def test_hook_that_raises_is_named(write_plugin):
    path = write_plugin(
        """
        from benchinit import hookimpl

        @hookimpl
        def benchinit_losses():
            raise ValueError("cannot build my losses")
    """,
        name="raising.py",
    )
    with pytest.raises(PluginError, match=r"raising\.py.*benchinit_losses\(\).*cannot build"):
        Registry([path], autoload=False)


@pytest.mark.parametrize(
    "body, match",
    [
        ('return [Initializer("Bad-Name", lambda w, g, a: None)]', "lowercase with underscores"),
        ('return ["not a descriptor"]', "must return Initializer descriptors"),
    ],
)
def test_bad_descriptors_are_named(write_plugin, body, match):
    path = write_plugin(
        f"""
        from benchinit import Initializer, hookimpl

        @hookimpl
        def benchinit_initializers():
            {body}
    """,
        name="bad.py",
    )
    with pytest.raises(PluginError, match=match) as info:
        Registry([path], autoload=False)
    assert "bad.py" in str(info.value)


def test_unknown_name_suggests_the_closest():
    registry = Registry(autoload=False)
    with pytest.raises(ValueError, match=r"Did you mean 'xavier_normal'\?.*Valid choices: .*zeros"):
        registry.bind("initializer", "xavier_norml")


@pytest.mark.parametrize(
    "hist_range, problem",
    [
        ("(-math.inf, math.inf)", "must be finite"),
        ("(math.nan, 1.0)", "must be finite"),
        ("(-1e308, 1e308)", "must lie within"),
        ("(3.0, -3.0)", "low below high"),
        ("(1.0, 1.0)", "low below high"),
        ("(0.0, 1e-300)", "wide"),
        ("('a', 'b')", "two numbers"),
        ("(0.0, 1.0, 2.0)", "two numbers"),
    ],
)
def test_an_unusable_histogram_range_is_refused_at_load(write_plugin, hist_range, problem):
    path = write_plugin(
        f"""
        import math
        from benchinit import Activation, hookimpl

        def act(x):
            "Identity."
            return x

        @hookimpl
        def benchinit_activations():
            return [Activation("ranged", act, hist_range={hist_range})]
    """,
        name="ranged.py",
    )
    with pytest.raises(PluginError, match=problem) as info:
        Registry([path], autoload=False)
    assert "ranged.py" in str(info.value) and "hist_range" in str(info.value)


def test_a_histogram_range_callable_is_checked_when_asked():
    from benchinit import Activation

    activation = Activation("ranged", lambda x: x, hist_range=lambda *, k: (k, 1.0))
    assert activation.range_of({"k": -1}) == (-1.0, 1.0)
    with pytest.raises(ValueError, match=r"'ranged': hist_range\(\{'k': 1\}\).*low below high"):
        activation.range_of({"k": 1})


def test_a_builtin_function_is_a_plugin_without_keyword_parameters(write_plugin, tmp_path):
    path = write_plugin(
        """
        import torch
        from benchinit import Activation, hookimpl

        @hookimpl
        def benchinit_activations():
            return [Activation("builtin_tanh", torch.tanh)]
        """
    )
    registry = Registry([path], autoload=False)
    assert registry.get("activation", "builtin_tanh").descriptor.parameters() == {}
    study = tmp_path / "s.toml"
    study.write_text(
        f"[study]\nkind = 'signal'\nseeds = 1\nplugins = [{str(path)!r}]\n"
        "[data]\nsamples = 16\nfeatures = 4\n[model]\ndepth = 1\nwidth = 4\n"
        "[grid]\ninitializer = 'xavier_normal'\nactivation = 'builtin_tanh'\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--no-report", "--quiet"]) == 0
