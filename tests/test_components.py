"""The component registry (adaprune.components): every kind's bad parameter value is one line
naming the parameter, the value and the constraint; unknown names list the registered ones; the
CLI's choices are the registry's names; a component registered from one extra module resolves
through the normal entry point; listing components imports no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import click
import numpy as np
import pytest

from adaprune import components
from adaprune.components import component_names, get_component, register_component
from adaprune.data import load_data
from adaprune.embed.encoders import ENCODER_HELP, PixelsEncoder, get_encoder
from adaprune.engine import LocalEngine, get_engine
from adaprune.errors import ConfigError
from adaprune.tasks import make_task, task_class


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---- a bad parameter value: one line, naming parameter, value and constraint ------------------------


def test_engine_workers_and_address_are_checked_by_the_spec():
    with pytest.raises(ConfigError) as exc:
        get_engine("local", workers=0)
    assert one_line(exc) == "engine 'local': workers must be an int >= 1 or None, got 0"
    with pytest.raises(ConfigError) as exc:
        get_engine("ray", address=5)
    assert one_line(exc) == "engine 'ray': address must be a Ray cluster address or None, got 5"
    assert get_engine("local", workers=3).workers == 3


def test_encoder_argument_is_parsed_and_checked_by_the_spec():
    with pytest.raises(ConfigError) as exc:
        get_encoder("pixels:0")
    assert one_line(exc) == "encoder 'pixels': dim must be an int >= 1, got '0'"
    with pytest.raises(ConfigError) as exc:
        get_encoder("model:ten")
    assert one_line(exc) == "encoder 'model': epochs must be an int >= 1, got 'ten'"
    with pytest.raises(ConfigError) as exc:
        get_encoder("identity:3")
    assert one_line(exc) == "encoder 'identity' takes no argument, got '3'"
    with pytest.raises(ConfigError) as exc:
        get_encoder("clip")
    assert one_line(exc) == "encoder 'clip' needs an argument: clip:PATH_OR_NAME"
    encoder = get_encoder("pixels:7")
    assert isinstance(encoder, PixelsEncoder) and encoder.dim == 7


def test_source_arguments_and_size_are_checked_by_the_spec():
    with pytest.raises(ConfigError) as exc:
        load_data("mnist1d:5")
    assert one_line(exc) == "data source 'mnist1d': n_train must be an int >= 10, got '5'"
    with pytest.raises(ConfigError) as exc:
        load_data("synthdet", size=8)
    assert one_line(exc) == "data source 'synthdet': size must be an int >= 16 or None, got 8"
    with pytest.raises(ConfigError) as exc:
        load_data("digits:3")
    assert one_line(exc) == "data source 'digits' takes no argument, got '3'"


def test_task_model_is_checked_by_the_spec():
    data = load_data("digits")
    with pytest.raises(ConfigError) as exc:
        make_task(data, model=3)
    assert one_line(exc) == ("task kind 'classification': model must be a model name (adaprune methods --kind "
                             "model) or a callable returning a torch.nn.Module, got 3")


def test_a_bad_model_name_lists_the_registered_ones():
    from adaprune.models import build_model

    with pytest.raises(ConfigError) as exc:
        build_model("cnn_smal", (1, 8, 8), 10)
    assert one_line(exc) == ("unknown model 'cnn_smal'; did you mean 'cnn_small'? expected one of: "
                             f"{', '.join(component_names('model'))}")


# ---- unknown names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,name,noun", [
    ("engine", "spark", "engine"), ("task", "segmentation", "task kind"), ("source", "hdf5", "data source"),
    ("encoder", "dino", "encoder"), ("model", "vgg", "model"),
])
def test_unknown_names_list_the_valid_ones(kind, name, noun):
    with pytest.raises(ConfigError) as exc:
        get_component(kind, name)
    assert one_line(exc) == f"unknown {noun} {name!r}; expected one of: {', '.join(component_names(kind))}"


def test_each_public_entry_refuses_an_unknown_name_the_same_way():
    with pytest.raises(ConfigError, match=r"^unknown engine 'rai'; did you mean 'ray'\? expected one of: local, ray$"):
        get_engine("rai")
    with pytest.raises(ConfigError, match=r"^unknown task kind 'segmentation'; expected one of: classification, "):
        task_class("segmentation")
    with pytest.raises(ConfigError, match=r"^unknown data source 'hdf5'; expected one of: npz, digits, "):
        load_data("hdf5:x.h5")
    with pytest.raises(ConfigError, match=r"^unknown encoder 'pixel'; did you mean 'pixels'\?"):
        get_encoder("pixel")


def test_every_entry_point_resolves():
    for kind in components.KINDS:
        for component in components.list_components(kind):
            assert callable(component.load()), component


# ---- the CLI's choices come from the registry ------------------------------------------------------


def _choices(command: click.Command, option: str) -> tuple[str, ...]:
    param = next(p for p in command.params if option in p.opts)
    return tuple(param.type.choices)


def test_cli_choices_and_help_are_the_registry_names():
    from adaprune.cli import embed, methods, prune
    from adaprune.cli.options import ENCODER_SPECS
    from adaprune.data.sources import DETECTION_KINDS, SPEC_HELP

    assert _choices(embed.command, "--engine") == component_names("engine")
    assert _choices(embed.command, "--model") == component_names("model")
    assert _choices(methods.command, "--kind") == ("method", *components.KINDS)
    syntaxes = [c.syntax for c in components.list_components("encoder")]
    assert ", ".join(["auto", *syntaxes]) == ENCODER_SPECS
    assert all(s in ENCODER_HELP for s in syntaxes)
    assert all(c.syntax in SPEC_HELP for c in components.list_components("source"))
    assert tuple(c.name for c in components.list_components("source") if "detection" in c.tags) == DETECTION_KINDS
    encoder_help = next(p for p in prune.command.params if "--encoder" in p.opts).help
    assert ENCODER_SPECS in encoder_help


def test_methods_kind_lists_a_kind_with_its_parameters(capsys):
    from adaprune.cli.main import main

    assert main(["methods", "--kind", "engine", "-v"]) in (0, None)
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out if not line.startswith(" ")] == list(component_names("engine"))
    assert any(line.split() == ["address", "[a", "Ray", "cluster", "address", "or", "None]"] for line in out)


# ---- a component from one extra module ------------------------------------------------------------


PLUGIN = '''
from adaprune.components import register_component
from adaprune.engine import LocalEngine
from adaprune.params import Interval


class CountingEngine(LocalEngine):
    def __init__(self, *, workers=None, stride=1):
        super().__init__(workers or 1)
        self.stride = stride


register_component("engine", "counting", "plugin_engine_{tag}:CountingEngine",
                   spec={{"workers": [Interval(int, 1, None), None]}}, summary="a test engine")


def load_tiny(n=None, on_bad_file="stop"):
    from adaprune.data import Dataset
    import numpy as np

    n = 12 if n is None else n
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return Dataset(name="tiny", x=x, y=np.arange(n) % 2)


register_component("source", "tiny{tag}", "plugin_engine_{tag}:load_tiny", spec={{"n": Interval(int, 4, None)}},
                   arg="n", syntax="tiny{tag}[:N]", tags=("classification",))
'''


def test_a_component_registered_from_one_extra_module_resolves(tmp_path, monkeypatch):
    tag = "t1"
    (tmp_path / f"plugin_engine_{tag}.py").write_text(PLUGIN.format(tag=tag), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    registered = {kind: dict(table) for kind, table in components._COMPONENTS.items()}
    try:
        __import__(f"plugin_engine_{tag}")
        engine = get_engine("counting", workers=2)
        assert isinstance(engine, LocalEngine) and type(engine).__name__ == "CountingEngine" and engine.workers == 2
        assert engine.map(lambda i: i + 1, [1, 2]) == [2, 3]
        with pytest.raises(ConfigError, match=r"^engine 'counting': workers must be an int >= 1 or None, got -1$"):
            get_engine("counting", workers=-1)
        data = load_data(f"tiny{tag}:6")
        assert data.n == 6 and np.array_equal(data.y, [0, 1, 0, 1, 0, 1])
        with pytest.raises(ConfigError, match=rf"^data source 'tiny{tag}': n must be an int >= 4, got '2'$"):
            load_data(f"tiny{tag}:2")
    finally:
        components._COMPONENTS.clear()
        components._COMPONENTS.update(registered)
        sys.modules.pop(f"plugin_engine_{tag}", None)


def test_registering_a_name_twice_or_a_bad_entry_is_refused():
    with pytest.raises(ConfigError, match="^engine name 'local' is registered twice$"):
        register_component("engine", "local", "elsewhere:Engine")
    with pytest.raises(ConfigError, match="entry must be 'module:attr'"):
        register_component("engine", "x", "no_colon")
    with pytest.raises(ConfigError, match="^unknown component kind 'sampler'"):
        register_component("sampler", "x", "a:b")


# ---- start-up ---------------------------------------------------------------------------------------


def test_listing_components_and_cli_choices_import_no_torch():
    code = textwrap.dedent("""
        import sys
        from adaprune.cli.main import main
        from adaprune.components import KINDS, list_components
        for kind in KINDS:
            list_components(kind)
        for kind in KINDS:
            assert main(["methods", "--kind", kind, "-v"]) in (0, None)
            assert "torch" not in sys.modules, kind
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr
