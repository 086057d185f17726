"""The recipe: values converted and checked when read, sections, flags named as flags, never a traceback."""

import typing

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlplab.errors import ConfigError
from nlplab.train.config import SECTIONS, TrainConfig, load_config


def write(tmp_path, values, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


def test_yaml_scientific_notation_is_the_float_it_looks_like(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 1e-3\ndropout: .5\nepochs: '3'\ngrad_clip: null\nkernel_sizes: 2,3\ncrf: 'yes'\n", encoding="utf-8")
    assert yaml.safe_load(path.read_text())["lr"] == "1e-3"  # what PyYAML makes of it
    cfg = load_config(path, {})
    assert (cfg.lr, cfg.dropout, cfg.epochs, cfg.grad_clip, cfg.kernel_sizes, cfg.crf) == (1e-3, 0.5, 3, None, [2, 3], True)


@pytest.mark.parametrize("key, value, message", [
    ("window_size", "banana", "window_size must be an integer, got 'banana'"),
    ("lr", "fast", "lr must be a number, got 'fast'"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("epochs", 2.5, "epochs must be an integer, got 2.5"),
    ("epochs", True, "epochs must be an integer, got True"),
    ("crf", "maybe", "crf must be true or false, got 'maybe'"),
    ("kernel_sizes", [2, "x"], "kernel_sizes must be an integer, got 'x'"),
    ("optimizer", "lbfgs", "unknown optimizer 'lbfgs'; choose optimizer from: sgd"),
    ("device", "banana", "device must be auto, cpu, cuda or cuda:N, got 'banana'"),
    ("data", ["a", "b"], "data must be a non-empty text"),
])
def test_a_bad_value_names_the_file_and_key(tmp_path, key, value, message):
    path = write(tmp_path, {key: value})
    with pytest.raises(ConfigError) as e:
        load_config(path, {})
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


def test_flags_are_named_as_flags(tmp_path):
    with pytest.raises(ConfigError, match=r"^--window-size must be an integer, got 'banana'$"):
        load_config(None, {"window_size": "banana"})
    with pytest.raises(ConfigError, match=r"^unknown optimizer 'x'; choose --optimizer from"):
        load_config(write(tmp_path, {"epochs": 2}), {"optimizer": "x"})


def test_sections_round_trip_and_flat_recipes_still_read(tmp_path):
    cfg = load_config(None, {"data": "chnsenticorp", "lr": "0.01", "model": "lstm", "seed": "3"})
    saved = cfg.to_dict()
    assert set(saved) == {"task", *SECTIONS}
    assert saved["data"]["name"] == "chnsenticorp" and saved["model"]["name"] == "lstm" and saved["optim"]["lr"] == 0.01
    assert load_config(write(tmp_path, saved), {}) == cfg
    flat = {name: getattr(cfg, name) for name in TrainConfig.fields()}
    assert load_config(write(tmp_path, flat, "flat.yaml"), {}) == cfg


def test_keys_in_the_wrong_section_or_given_twice(tmp_path):
    with pytest.raises(ConfigError, match="lr belongs in section optim, not data"):
        load_config(write(tmp_path, {"data": {"name": "x", "lr": 0.1}}), {})
    with pytest.raises(ConfigError, match="lr is given twice"):
        load_config(write(tmp_path, {"lr": 0.1, "optim": {"lr": 0.2}}), {})
    with pytest.raises(ConfigError, match="unknown key 'epochz' in section optim"):
        load_config(write(tmp_path, {"optim": {"epochz": 3}}), {})


def test_the_model_defaults_to_the_tasks_first():
    assert [load_config(None, {"task": t}).model for t in ("classify", "lm", "tag", "match")] == ["bow", "gpt", "lstm", "bow"]
    with pytest.raises(ConfigError, match="unknown tagging model 'bow'"):
        load_config(None, {"task": "tag", "model": "bow"})


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3), st.lists(st.text(max_size=3), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(TrainConfig.fields())), value=JUNK, from_flag=st.booleans())
def test_any_value_of_any_option_is_a_recipe_or_a_config_error(tmp_path, field, value, from_flag):
    """Random values of every type for every option never end in anything but a TrainConfig or a ConfigError."""
    try:
        cfg = load_config(None, {field: str(value)}) if from_flag else load_config(write(tmp_path, {field: value}), {})
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    assert conforms(getattr(cfg, field), typing.get_type_hints(TrainConfig)[field])


def conforms(value, kind) -> bool:
    """The value has the option's annotated type exactly (bool is not taken for int)."""
    if typing.get_origin(kind) is list:
        return isinstance(value, list) and all(type(v) is int for v in value)
    return any(type(value) is k for k in typing.get_args(kind) or (kind,))
