import pytest

from artcap_lib.config import PROJECT_ROOT, RunPaths
from artcap_lib.config import Profile, ProfileError, available_profiles, load_profile, parse_override


def test_all_four_profiles_load_and_name_themselves():
    assert {"demo", "reference", "paper", "bench"} <= set(available_profiles())
    for name in available_profiles():
        cfg = load_profile(name)
        assert isinstance(cfg, Profile) and cfg.profile == name


def test_paper_profile_holds_the_authors_recipe():
    cfg = load_profile("paper")
    assert cfg.captioning.model == "llava-hf/llava-1.5-7b-hf"
    assert cfg.captioning.prompt == "Caption this image"
    assert (cfg.captioning.max_new_tokens, cfg.captioning.dtype) == (200, "float16")
    assert cfg.metrics.bertscore_model == "distilbert-base-uncased"
    assert (cfg.blip.lr, cfg.blip.epochs, cfg.blip.batch_size, cfg.blip.image_size) == (5e-6, 6, 16, 384)
    assert (cfg.longclip.preset, cfg.longclip.lr, cfg.longclip.batch_size) == ("stored", 1e-7, 30)
    assert cfg.retrieval.run_depth == 100


def test_overrides_are_typed_and_dotted():
    cfg = load_profile("demo", {"captioning.batch_size": 3, "blip.lr": 1, "run_dir": "/tmp/x"})
    assert cfg.captioning.batch_size == 3
    assert cfg.blip.lr == 1.0 and isinstance(cfg.blip.lr, float)     # an int is a fine float
    assert RunPaths.for_profile(cfg).root.as_posix() == "/tmp/x"
    assert parse_override("metrics.backends=[paper]") == ("metrics.backends", ["paper"])


def test_a_float_in_exponent_notation_without_a_dot_is_a_float():
    # PyYAML (YAML 1.1) reads 3e-4 as the string "3e-4"; `--set blip.lr=3e-4` is how everyone writes it
    key, value = parse_override("blip.lr=3e-4")
    assert value == "3e-4"
    cfg = load_profile("demo", {key: value, "longclip.lr": "-1.5E+2"[1:]})
    assert cfg.blip.lr == 3e-4 and cfg.longclip.lr == 150.0
    with pytest.raises(ProfileError, match="lr must be float"):
        load_profile("demo", {"blip.lr": "3e-4x"})


@pytest.mark.parametrize("overrides, message", [
    ({"captioning.batchsize": 3}, "unknown key(s) batchsize"),
    ({"nonsense": 1}, "unknown key(s) nonsense"),
    ({"captioning.batch_size": "8"}, "batch_size must be int"),
    ({"captioning.batch_size": True}, "batch_size must be int"),
    ({"metrics.backends": "paper"}, "backends must be"),
    ({"metrics.backends": ["paper", 3]}, "backends[1] must be str"),
    ({"data": 5}, "data must be a mapping"),
])
def test_unknown_keys_and_wrong_types_are_errors(overrides, message):
    with pytest.raises(ProfileError) as err:
        load_profile("demo", overrides)
    assert message in str(err.value)


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  demo_train: [1, 2\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="no profile 'nope'"):
        load_profile("nope")


def test_default_run_and_figure_dirs_are_per_profile():
    paths = RunPaths.for_profile(load_profile("reference"))
    assert paths.root == PROJECT_ROOT / "papermill_runs" / "reference"
    assert paths.figures == PROJECT_ROOT / "figures" / "reference"


@pytest.mark.parametrize("key, value, message", [
    ("blip.epochs", -5, "blip.epochs: must be at least 1, got -5"),
    ("longclip.batch_size", 0, "longclip.batch_size: must be at least 1, got 0"),
    ("blip.lr", -1, "blip.lr: must be greater than 0, got -1.0"),
    ("device", "tpu", "device: 'tpu' is not a device"),
    ("captioning.dtype", "float8", "captioning.dtype: 'float8' is not one of auto, float32"),
    ("metrics.backends", ["paper", "spice"], "metrics.backends: 'spice' is not one of paper, coco"),
    ("longclip.warmup", 1.5, "longclip.warmup: must lie in [0.0, 0.99], got 1.5"),
    ("captioning.threads", -1, "captioning.threads: must not be negative, got -1"),
    ("jobs", 0, "jobs: must be at least 1, got 0"),
])
def test_out_of_range_values_fail_when_the_profile_is_loaded(key, value, message):
    with pytest.raises(ProfileError, match="with --set overrides: .*" + message.replace("[", r"\[").replace("]", r"\]")
                       .replace(".", r"\.").replace("(", r"\(")):
        load_profile("demo", {key: value})


def test_every_problem_of_a_profile_is_listed_at_once():
    with pytest.raises(ProfileError) as caught:
        load_profile("demo", {"blip.epochs": 0, "device": "gpu", "report.formats": ["png", "bmp"]})
    assert str(caught.value).count(";") == 2


def test_an_override_that_is_not_yaml_names_the_override():
    with pytest.raises(ProfileError, match=r"override 'blip.epochs=\[1': the value is not valid YAML"):
        parse_override("blip.epochs=[1")


def test_a_run_dir_that_is_a_file_is_refused_naming_the_key(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ProfileError, match="run_dir: .* is a file, not a folder"):
        RunPaths.for_profile(load_profile("demo", {"run_dir": str(tmp_path / "f")}))


def test_every_model_field_follows_the_path_rule_including_each_models_own(tmp_path, monkeypatch):
    """Path and model fields are marked where they are declared: a model that owns its settings (clip, siglip) gets
    the rule without any table to update (a relative clip.model once reached the notebooks unresolved)."""
    from artcap_lib.config import path_fields
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "my-clip").mkdir(parents=True)
    cfg = load_profile("zoo", {"clip.model": "./models/my-clip", "siglip.model": "google/siglip-base-patch16-224",
                               "data.artpedia_json": "artpedia.json"})
    assert cfg.clip.model == str(tmp_path / "models" / "my-clip")
    assert cfg.siglip.model == "google/siglip-base-patch16-224"          # a hub id stays a hub id
    assert cfg.data.artpedia_json == str(tmp_path / "artpedia.json")
    fields = path_fields(cfg)
    assert {k for k, v in fields.items() if v == "model"} >= {"captioning.model", "blip.model", "longclip.model",
                                                              "longclip.tokenizer", "clip.model", "siglip.model",
                                                              "metrics.bertscore_model"}
    assert {k for k, v in fields.items() if v == "path"} == {"run_dir", "figures_dir", "data.artpedia_json", "data.path",
                                                             "data.splits_file",
                                                             "metrics.spice_jars"}
