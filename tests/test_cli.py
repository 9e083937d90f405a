"""The `artcap` command line: one parser from plain imports, every command on --profile/--set, section flags derived
from the profile dataclasses (default = the profile's value; precedence profile < --set < flag), clear errors."""
import argparse
import dataclasses
import inspect
import subprocess
import sys

import pytest

import artcap_lib.cli
from artcap_lib import settings
from artcap_lib.cli import build_parser, main
from artcap_lib.cli.options import field_keys, profile_from_args
from artcap_lib.config import PROJECT_ROOT, CaptioningConfig, Profile, load_profile


def leaf_parsers(parser, path=()):
    """(command words, parser) of every runnable sub-command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaf_parsers(child, (*path, name))


COMMANDS = {words: p for words, p in leaf_parsers(build_parser())}


def resolve(*argv):
    return profile_from_args(build_parser().parse_args(list(argv)))[0]


def test_the_command_modules_are_plain_imports():
    source = inspect.getsource(artcap_lib.cli)
    assert "importlib" not in source
    assert all(inspect.ismodule(m) for m in artcap_lib.cli.COMMAND_MODULES)
    expected = {("reproduce",), ("profile",), ("caption",), ("report",), ("data", "validate"), ("data", "download"),
                ("data", "prepare"), ("metrics", "score"), ("retrieval", "evaluate"), ("retrieval", "compare"),
                ("retrieval", "fuse"), ("retrieval", "reference"), ("bench", "caption"), ("bench", "decode"),
                ("bench", "metrics"), ("bench", "retrieval")}
    assert expected <= set(COMMANDS)


def test_the_parser_imports_no_heavy_library():
    code = ("import sys; from artcap_lib.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_every_command_takes_a_profile_and_overrides(words):
    options = {s for a in COMMANDS[words]._actions for s in a.option_strings}
    assert {"--profile", "--set"} <= options
    assert "profile < --set < flag" in COMMANDS[words].format_help()


def test_every_captioning_field_is_a_caption_flag_with_its_declared_help():
    actions = {a.dest: a for a in COMMANDS[("caption",)]._actions}
    for field in dataclasses.fields(CaptioningConfig):
        if field.name == "captioners":       # a list of records: from the profile or --set only
            assert f"profile:captioning.{field.name}" not in actions
            continue
        action = actions[f"profile:captioning.{field.name}"]
        assert action.option_strings == ["--" + field.name.replace("_", "-")]
        assert action.default is argparse.SUPPRESS                 # not given = the profile's value
        assert f"[captioning.{field.name}]" in action.help
    assert actions["profile:captioning.batch_size"].type is int
    assert actions["profile:captioning.pocket_lr"].type is float
    assert actions["profile:captioning.engine"].choices == ("generate", "fast", "fast_compiled")
    # the help is the field's declared help text, whole
    assert actions["profile:captioning.engine"].help.endswith("same captions as generate in fp32) [captioning.engine]")
    assert "halved automatically on CUDA out-of-memory" in actions["profile:captioning.batch_size"].help


def test_a_flag_left_out_is_the_profiles_value():
    assert resolve("caption", "--profile", "demo").captioning.dtype == "float32"
    assert resolve("caption", "--profile", "paper").captioning.dtype == "float16"
    assert resolve("caption", "--profile", "bench").captioning.engine == "fast_compiled"
    for profile in ("demo", "paper", "reference"):
        assert resolve("caption", "--profile", profile) == load_profile(profile)
        assert resolve("data", "prepare", "--profile", profile) == load_profile(profile)
        assert resolve("report", "--profile", profile) == load_profile(profile)


def test_a_flag_beats_set_beats_the_profile():
    assert resolve("caption", "--profile", "demo").captioning.batch_size == 32
    assert resolve("caption", "--set", "captioning.batch_size=4").captioning.batch_size == 4
    for argv in (["--batch-size", "2", "--set", "captioning.batch_size=4"],
                 ["--set", "captioning.batch_size=4", "--batch-size", "2"]):
        assert resolve("caption", *argv).captioning.batch_size == 2
    cfg = resolve("caption", "--profile", "paper", "--engine", "fast", "--dtype",
                  "bfloat16", "--set", "captioning.engine=generate", "--device", "cpu")
    assert (cfg.captioning.engine, cfg.captioning.dtype, cfg.device) == ("fast", "bfloat16", "cpu")
    assert resolve("reproduce", "--jobs", "3", "--set", "jobs=1").jobs == 3


def test_list_fields_take_repeated_or_several_values():
    argv = ["metrics", "score", "--pairs", "p.tsv", "--out", "o.csv", "--profile", "demo"]
    assert resolve(*argv, "--backend", "coco").metrics.backends == ["coco"]
    assert resolve(*argv, "--backend", "paper", "--backend", "coco").metrics.backends == ["paper", "coco"]
    assert resolve(*argv, "--backend", "paper", "coco").metrics.backends == ["paper", "coco"]
    assert resolve(*argv).metrics.backends == load_profile("demo").metrics.backends


def test_dtype_auto_is_float32_on_a_cpu_and_fp16_on_cuda():
    from artcap_lib.captioning.captioner import resolve_dtype
    assert CaptioningConfig().dtype == "auto"
    cfg = resolve("caption", "--profile", "paper", "--dtype", "auto")
    assert resolve_dtype(cfg.captioning.dtype, "cpu") == "float32"
    assert resolve_dtype(cfg.captioning.dtype, "cuda:0") == "float16"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="dtype 'float8'"):
        resolve_dtype("float8", "cpu")


def test_the_choices_are_the_librarys():
    from artcap_lib.captioning.captioner import DTYPES
    from artcap_lib.captioning.fast_decode import ENGINES
    from artcap_lib.data.artpedia import SPLITS
    from artcap_lib.textmetrics.scorer import BACKENDS
    CHOICES = {key: settings.rule(f).choices for key, _, f in settings.leaves(Profile()) if settings.rule(f).choices}
    assert set(CHOICES["captioning.dtype"]) == {"auto", *DTYPES}
    assert CHOICES["captioning.engine"] == ENGINES
    assert CHOICES["metrics.backends"] == BACKENDS
    assert set(CHOICES["metrics.split"]) == set(SPLITS)
    for key in CHOICES:
        assert field_keys(key) == [key]


@pytest.mark.parametrize("argv, message", [
    (["caption", "--set", "captioning.batch_size=big"], "batch_size must be int"),
    (["caption", "--set", "captioning.batchsize=3"], "unknown key(s) batchsize"),
    (["caption", "--set", "captioning.batch_size"], "is not key=value"),
    (["caption", "--profile", "nosuch"], "no profile 'nosuch'"),
    (["report", "--set", "report.decimals=[1]"], "decimals must be int"),
    (["data", "download", "--out", "x"], "data.artpedia_json is empty"),
])
def test_a_bad_profile_value_is_one_line_naming_the_key(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("artcap ")


@pytest.mark.parametrize("argv, message", [
    (["caption", "--batch-size", "big"], "--batch-size: invalid int value: 'big'"),
    (["caption", "--dtype", "float8"], "--dtype: invalid choice: 'float8'"),
    (["caption", "--engine", "vllm"], "--engine: invalid choice: 'vllm'"),
])
def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_profile_prints_the_resolved_profile(capsys):
    import json
    assert main(["profile", "paper", "--json", "--seed", "7", "--set", "captioning.batch_size=3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["profile"], shown["seed"], shown["captioning"]["batch_size"]) == ("paper", 7, 3)
    assert main(["profile", "--profile", "bench", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "bench"
