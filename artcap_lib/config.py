"""Configuration: the profiles (one YAML file each, loaded into one typed dataclass) and the layout of a run.

This module declares the sections every run shares; each retrieval model declares its own section beside its code
and names it in its registry entry, and `Profile` adds one section per such entry.

The same loader serves papermill (every notebook's parameters cell holds `profile` and `overrides`, and calls
`notebook.setup`) and the CLI (`--profile P --set key=value`), so a run configured one way is configured identically
the other way. Unknown keys, wrong types and out-of-range values are errors when the profile is loaded.

A run directory (papermill_runs/<profile>/) is the only channel between notebooks: each step writes its results
there as files and later steps read them back (never from notebook outputs); `RunPaths` names every one of them.

Where things live. The profiles ship inside the package (artcap_lib/profiles/*.yaml). Everything else is relative
to one project folder: `$ARTCAP_ROOT` if set, else the checkout this package is installed from (it holds
notebooks/), else the current directory. Its notebooks/ are what `artcap reproduce` runs; papermill_runs/ and
figures/ are the default homes of run directories and figures.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from artcap_lib import settings
from artcap_lib.retrieval import registry      # each model's section of a profile is declared beside the model
from artcap_lib.settings import MODEL, PATH, ProfileError, kind, leaves, setting

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def project_root() -> Path:
    """The project folder (see the module docstring): $ARTCAP_ROOT, else this package's checkout, else the cwd."""
    if os.environ.get("ARTCAP_ROOT"):
        return Path(os.environ["ARTCAP_ROOT"]).resolve()
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "notebooks").is_dir() else Path.cwd().resolve()


PROJECT_ROOT = project_root()
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "papermill_runs"
FIGURES_DIR = PROJECT_ROOT / "figures"


# ---- profiles: the sections every run shares (each retrieval model declares its own, see `Profile`) -------------


@dataclass
class DataConfig:
    source: str = setting("demo",
        "demo (generated) | artpedia (downloaded) | imagefolder (a folder in Hugging Face's ImageFolder layout, "
        "data.path) | semart (SemArt's folder) | artcap (ArtCap's ArtCap.json + images) | csv (one CSV/TSV table, "
        "a museum export) | parquet (a Hub dataset's Parquet shards) | rehearsal (real paintings, loopback) | "
        "reference (authors' artefacts)",
        choices=('demo', 'artpedia', 'imagefolder', 'semart', 'artcap', 'csv', 'parquet', 'rehearsal', 'reference'))
    path: str = setting("", "imagefolder, semart, artcap, parquet: the collection's folder; csv (parquet): the "
                        "CSV/TSV (.parquet) file", kind=PATH)
    caption_column: str = setting("", "imagefolder, csv, parquet: the caption column (\"\" = text, caption, captions or "
                                  "description, the first there is); csv: several, comma-separated, each cell one "
                                  "human caption")
    id_column: str = setting("", "imagefolder, csv, parquet: the id column (\"\" = the image's file name without extension; "
                             "csv: a column named id first)")
    image_column: str = setting("", "csv: the image column: a path relative to the file's folder, an absolute path "
                                "or an http(s) URL (downloaded); \"\" = image, file_name, filename, file, path, "
                                "image_path, image_url, img_url or url, the first there is; parquet: \"\" = the "
                                "column its datasets features call an Image")
    encoding: str = setting("", "csv, semart: the text encoding (\"\" = UTF-8, BOM or not; semart: else SemArt's "
                            "cp1252)")
    split_fractions: list[float] = setting(factory=lambda: [0.8, 0.1, 0.1],
        help="imagefolder, artcap, csv, parquet: train/val/test shares of the images the source gives no split (seeded by "
             "seed)")
    splits_file: str = setting("", "a collection's splits taken from a file: a former run's data/splits.json "
                               "(or {id: split}); \"\" = the source's own, else data.split_fractions", kind=PATH)
    artpedia_json: str = setting("", "artpedia: local artpedia.json / artpedia.zip, or \"\" to download the zip",
                                 kind=PATH)
    artpedia_url: str = setting("https://aimagelab.ing.unimore.it/imagelab/uploadedFiles/artpedia.zip")
    download_workers: int = setting(4, "concurrent image downloads (polite cap: at most 8)", at_least=1)
    max_side: int = setting(1000, "the authors' normalisation: fit inside max_side x max_side", at_least=1)
    max_pixels: int = setting(400_000_000,
        "decompression-bomb guard: larger images are excluded, not decoded",
        at_least=1)
    align_with_authors: bool = setting(True, "take split ids from the authors' caption files (2173/325/333)")
    demo_train: int = setting(240, "demo (and rehearsal): training artworks")
    demo_val: int = setting(40, "demo (and rehearsal): validation artworks")
    demo_test: int = setting(60, "demo (and rehearsal): test artworks")
    demo_pretrain: int = setting(800, "demo: the disjoint pre-training pool of the pocket models")
    demo_image_size: int = setting(96, "demo paintings are square, this many pixels a side", at_least=1)


@dataclass
class CaptionerSpec:
    """One captioner of a run (an entry of `captioning.captioners`); unset fields take the section's value."""
    name: str = setting("", "captions/<name>.jsonl; letters, digits, '.', '_', '-'")
    model: str = setting("", "hub id, local directory, pocket name, random:/replica: spec", kind=MODEL)
    prompt: str | None = setting(None, "None = captioning.prompt")
    answer_marker: str | None = setting(None, "None = captioning.answer_marker")


@dataclass
class CaptioningConfig:
    source: str = setting("model",
        "model (run a captioner) | reference (import the authors' LLaVA captions)",
        choices=('model', 'reference'))
    name: str = setting("llava", "captions/<name>.jsonl")
    model: str = setting("llava-hf/llava-1.5-7b-hf",
        "hub id or local directory; \"pocket-llava\" = the run's pocket model", kind=MODEL)
    prompt: str = setting("Caption this image")
    max_new_tokens: int = setting(200, at_least=1)
    dtype: str = setting("auto",
        "auto (float32 on a CPU, float16 on CUDA) | float32 | float16 | bfloat16",
        choices=('auto', 'float32', 'float16', 'bfloat16'))
    batch_size: int = setting(16, "images per generate call (halved automatically on CUDA out-of-memory)", at_least=1)
    answer_marker: str = setting("ASSISTANT:", "the caption is the decoded text after this (\"\" = the new tokens)")
    cache_implementation: str = setting("",
        "KV cache for generate: \"\" = dynamic, \"static\" = compile-friendly (GPU)")
    threads: int = setting(0, "CPU threads for torch (0 = torch's default)")
    pocket_steps: int = setting(500,
        "demo: training steps of the pocket LLaVA on the pre-training pool (kind is learnt from ~400 on; colour long "
        "before)")
    pocket_batch_size: int = setting(32, at_least=1)
    pocket_lr: float = setting(1.0e-3, "3e-3 stalls the from-scratch vision tower on colour only", positive=True)
    pocket_image_size: int = setting(48,
        "the pocket vision tower's input side (patch 12 -> 16 image tokens)",
        at_least=1)
    engine: str = setting("generate",
        "generate (transformers) | fast | fast_compiled (fast_decode: greedy, static cache, CUDA graphs; same captions "
        "as generate in fp32)",
        choices=('generate', 'fast', 'fast_compiled'))
    captioners: list[CaptionerSpec] = setting(factory=list,
        help="several captioners in one run, each {name, model, prompt, answer_marker}; the first is the paper's "
        "\"synthetic\"; [] = the one captioner of name/model/prompt above")


@dataclass
class MetricsConfig:
    backends: list[str] = setting(factory=lambda: ["paper", "coco"], choices=('paper', 'coco'))
    bertscore_model: str = setting("distilbert-base-uncased", "hub id or local directory; \"minilm\" = offline MiniLM",
                                   kind=MODEL)
    bertscore_num_layers: int = setting(0, "0 = bert-score's default layer for the model")
    split: str = setting("train", "the authors scored the train split", choices=('train', 'val', 'test'))
    bootstrap: int = setting(1000, "bootstrap resamples for the 95% CIs", at_least=1)
    spice_jars: str = setting("", "directory with stanford-corenlp-3.6.0(-models).jar; \"\" = SPICE skipped",
                              kind=PATH)


@dataclass
class RetrievalConfig:
    source: str = setting("model",
        "model (score with our models) | reference (the authors' stored runs)",
        choices=('model', 'reference'))
    models: list[str] = setting(factory=lambda: ["blip", "longclip"],
        help="retrieval models of the run (registry names): 04 runs blip, 05 every other one")
    query_sets: list[str] = setting(factory=lambda: ["artpedia", "llama"], choices=('artpedia', 'human', 'llama'))
    run_depth: int = setting(100, "the authors' ranx runs keep the top 100 images per query", at_least=1)
    bootstrap: int = setting(1000, "bootstrap resamples of the metrics' 95% CIs (runs.summarise_model)", at_least=1)
    randomisation: int = setting(10_000, "resamples of the paired randomisation tests", at_least=1)


@dataclass
class ReportConfig:
    formats: list[str] = setting(factory=lambda: ["png", "pdf"],
        help="figure files written per figure",
        choices=('png', 'pdf', 'svg'))
    decimals: int = setting(3, "digits of the numbers in the tables (results.json keeps full precision)")
    significance_test: str = setting("ttest",
        "ttest (paired Student t, ranx's default, the authors') | randomisation",
        choices=('ttest', 'randomisation'))
    alpha: float = setting(0.05, "significance marks in Table 2 where p < alpha", within=(0.0, 1.0))
    compare_with_authors: bool = setting(True,
        "show the authors' stored values beside ours (needs the reference artefacts)")
    gallery_size: int = setting(6, "test artworks in the gallery of human and synthetic captions", at_least=1)


@dataclass
class SharedSections:
    """What every run has, whichever models it runs: `Profile` adds one section per registered model."""
    profile: str = setting("demo", "the profile's name (= the YAML file's stem)")
    seed: int = setting(0)
    device: str = setting("auto",
        "auto | cpu | cuda | cuda:N",
        pattern=r"auto|cpu|mps|cuda(:[0-9]+)?", pattern_means="a device (auto | cpu | cuda | cuda:N | mps)")
    run_dir: str = setting("", "\"\" = papermill_runs/<profile>", kind=PATH)
    figures_dir: str = setting("", "\"\" = figures/<profile>", kind=PATH)
    jobs: int = setting(1, "notebooks run side by side once their needs are met (03/04/05 need 02)", at_least=1)
    data: DataConfig = setting(factory=DataConfig)
    captioning: CaptioningConfig = setting(factory=CaptioningConfig)
    metrics: MetricsConfig = setting(factory=MetricsConfig)
    retrieval: RetrievalConfig = setting(factory=RetrievalConfig)
    report: ReportConfig = setting(factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _with_model_sections(shared: type) -> type:
    """The profile dataclass: the shared sections, then a section per registered model that declares settings,
    named as the model (`blip:` holds `registry.entry("blip").settings`)."""
    sections = [(name, entry.settings, setting(factory=entry.settings, help=f"{entry.title}'s settings"))
                for name, entry in registry.MODELS.items() if entry.settings is not None]
    return dataclasses.make_dataclass("Profile", sections, bases=(shared,),
                                      namespace={"__module__": __name__, "__doc__": "One run's every setting."})


Profile = _with_model_sections(SharedSections)


def profile_problems(profile: "Profile") -> list[str]:
    """Every value of a built profile that breaks its field's rule, or that no one field can judge ("key: why").
    Checked when a profile is loaded, so that a bad value fails at `artcap profile` or at the start of a run, naming
    the key, and never half-way through a notebook."""
    problems = settings.problems(profile)
    problems += _captioner_problems(profile.captioning)
    unknown = [m for m in profile.retrieval.models if m not in registry.MODELS]
    if unknown:
        problems.append(f"retrieval.models: {', '.join(map(repr, unknown))} not registered "
                        f"(known: {', '.join(registry.MODELS)})")
    if len(set(profile.retrieval.models)) != len(profile.retrieval.models):
        problems.append("retrieval.models: a model is listed twice")
    return problems


CAPTIONER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _captioner_problems(c: "CaptioningConfig") -> list[str]:
    problems = []
    for i, spec in enumerate(c.captioners):
        where = f"captioning.captioners[{i}]"
        if not CAPTIONER_NAME.fullmatch(spec.name):
            problems.append(f"{where}.name: {spec.name!r} is not a file-name-safe name (letters, digits, . _ -)")
        if not spec.model:
            problems.append(f"{where}.model: empty (a hub id, local directory, pocket name or spec)")
    names = [s.name for s in c.captioners]
    if len(set(names)) != len(names):
        problems.append(f"captioning.captioners: names must differ, got {', '.join(names)}")
    if c.captioners and c.source == "reference":
        problems.append("captioning.captioners: the reference source imports the authors' one captioner; "
                        "list captioners with source model")
    return problems


def captioners(cfg: "Profile") -> list[CaptionerSpec]:
    """The run's captioners, every field filled in: `captioning.captioners`, or the section's one captioner."""
    c = cfg.captioning
    listed = c.captioners or [CaptionerSpec(c.name, c.model)]
    return [dataclasses.replace(s, prompt=c.prompt if s.prompt is None else s.prompt,
                                answer_marker=c.answer_marker if s.answer_marker is None else s.answer_marker)
            for s in listed]


def primary_captioner(cfg: "Profile") -> str:
    """The name of the run's first captioner: the paper's "synthetic" captions (Table 1, the synthetic variant)."""
    return captioners(cfg)[0].name


SYNTHETIC = "synthetic"


def captioner_variant(cfg: "Profile", name: str) -> str:
    """The Experiment-2 variant fine-tuned on a captioner's captions: "synthetic" for the first (the paper's),
    "synthetic-<name>" for every further one."""
    first = primary_captioner(cfg)
    if name == first:
        return SYNTHETIC
    if name not in {s.name for s in captioners(cfg)}:
        raise KeyError(f"no captioner {name!r} in this profile")
    return f"{SYNTHETIC}-{name}"


def variant_captioners(cfg: "Profile") -> dict[str, str]:
    """{fine-tuned synthetic variant: captioner name}, first captioner first."""
    return {captioner_variant(cfg, s.name): s.name for s in captioners(cfg)}


def values(node) -> dict[str, Any]:
    """{dotted key: value} of every field of a built profile (or section)."""
    return {key: value for key, value, _ in leaves(node)}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_path(name_or_path: str | Path) -> Path:
    """A profile's YAML file: a path ending in .yaml/.yml as given, else the packaged profile of that name."""
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") else PROFILES_DIR / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path = "demo", overrides: Mapping[str, Any] | None = None) -> Profile:
    """Read a profile by name (artcap_lib/profiles/<name>.yaml) or path and apply dotted overrides.

    >>> load_profile("demo", {"captioning.batch_size": 4}).captioning.batch_size
    4
    """
    path = profile_path(name_or_path)
    if not path.is_file():
        raise ProfileError(f"no profile {name_or_path!r}: {path} not found (known: {', '.join(available_profiles())})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 (byte {exc.start + 1}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        # one line naming the file's line (the parser's own message spans five and names "<unicode string>")
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{path}: line {mark.line + 1}, column {mark.column + 1}" if mark else f"{path}"
        hint = " (YAML indents with spaces, not tabs)" if "'\\t'" in problem else ""
        raise ProfileError(f"{where}: not valid YAML: {problem}{hint}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: the top level must be a mapping")
    raw.setdefault("profile", path.stem)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    profile = _build(Profile, raw, where=str(path))
    absolute_paths(profile)
    problems = profile_problems(profile)
    if problems:
        raise ProfileError(f"{path}" + (" with --set overrides" if overrides else "") + ": "
                           + "; ".join(problems))
    return profile


def parse_override(text: str) -> tuple[str, Any]:
    """'captioning.batch_size=8' -> ('captioning.batch_size', 8); the value is read as YAML."""
    if "=" not in text:
        raise ProfileError(f"override {text!r} is not key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ProfileError(f"override {text!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None


def parse_overrides(items) -> dict[str, Any]:
    """Several KEY=VALUE texts (the CLI's repeated --set) -> {dotted key: value}."""
    return dict(parse_override(item) for item in items)


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ProfileError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _build(cls, raw: Mapping[str, Any], where: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ProfileError(f"{where}: {name} must be a mapping, got {type(value).__name__}")
            kwargs[name] = _build(hint, value, f"{where}: {name}")
        else:
            kwargs[name] = _check_type(value, hint, f"{where}: {name}")
    return cls(**kwargs)


_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except ProfileError:
                continue
        raise ProfileError(f"{where} must be {hint}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(hint)
            return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, Mapping):
            return _build(hint, value, where)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # PyYAML follows YAML 1.1, where 3e-4 (no dot) is a string, not a float: a learning rate written the way
        # everyone writes it must not be refused
        if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise ProfileError(f"{where} must be {getattr(hint, '__name__', hint)}, got {type(value).__name__} {value!r}")


# ---- the run directory -----------------------------------------------------------------------------------------

# Fields holding a path a user types (declared `kind=PATH`). One rule for them and for every path option of the CLI:
# `~` is expanded and a relative path is relative to the current directory of the process that loads the profile,
# resolved once there (`artcap reproduce` hands its notebooks, which run in notebooks/, the absolute paths). Model
# fields (`kind=MODEL`, each model's own included) are hub ids too: the rule applies where the value `looks_local`.
def path_fields(profile) -> dict[str, str]:
    """{dotted key: PATH or MODEL} of every field of a built profile that holds a path or a model."""
    return {key: kind(f) for key, _, f in leaves(profile) if kind(f)}


def user_path(text: str | Path) -> Path:
    """A path as the user meant it: `~` expanded, relative to the current directory, made absolute (symlinks kept)."""
    return Path(os.path.abspath(Path(text).expanduser()))


def looks_local(value: str) -> bool:
    """A model field naming a local file or folder rather than a hub id, a URL or a stand-in name: it starts like a
    path, or has a slash and exists (a bare name that exists, such as `minilm`, stays a name)."""
    return value.startswith(("/", "~", "./", "../")) or ("/" in value and Path(value).exists())


def absolute_paths(profile) -> None:
    """Make the non-empty path fields, and the model fields that look local, of a loaded profile absolute
    (`user_path`), in place."""
    for key, field_kind in path_fields(profile).items():
        *sections, name = key.split(".")
        node = profile
        for section in sections:
            node = getattr(node, section)
        value = getattr(node, name)
        if value and (field_kind == PATH or looks_local(value)):
            setattr(node, name, str(user_path(value)))


@dataclass(frozen=True)
class RunPaths:
    root: Path        # papermill_runs/<profile>/
    figures: Path     # figures/<profile>/

    @classmethod
    def for_profile(cls, profile) -> "RunPaths":
        """Resolve a Profile's run_dir/figures_dir (`user_path`; "" = papermill_runs/ and figures/<profile>/ of the
        project folder)."""
        root = user_path(profile.run_dir) if profile.run_dir else RUNS_DIR / profile.profile
        figures = user_path(profile.figures_dir) if profile.figures_dir else FIGURES_DIR / profile.profile
        for key, folder in (("run_dir", root), ("figures_dir", figures)):
            if folder.exists() and not folder.is_dir():
                raise ProfileError(f"{key}: {folder} is a file, not a folder (--set {key}=... another path)")
        return cls(root, figures)

    # 01 data prep
    @property
    def data(self) -> Path: return self.root / "data"
    @property
    def artworks(self) -> Path: return self.data / "artworks.json"
    @property
    def excluded(self) -> Path: return self.data / "excluded.json"
    @property
    def splits(self) -> Path: return self.data / "splits.json"
    @property
    def images(self) -> Path: return self.data / "images"
    @property
    def data_summary(self) -> Path: return self.data / "summary.json"
    # demo only: the pocket models' pre-training pool and the generator's ground truth
    @property
    def pretrain_pool(self) -> Path: return self.data / "pretrain_pool.json"
    @property
    def scenes(self) -> Path: return self.data / "scenes.json"
    # 02 captioning
    @property
    def captions(self) -> Path: return self.root / "captions"
    # 03 metrics
    @property
    def metrics(self) -> Path: return self.root / "metrics"
    def captioner_metrics(self, captioner: str, primary: bool) -> Path:
        """Where Experiment 1 of a captioner is written: metrics/ for the run's first captioner (where a
        one-captioner run has it), metrics/<captioner>/ for every further one."""
        return self.metrics if primary else self.metrics / captioner
    # in each such folder (default: the first captioner's, metrics/)
    def metrics_per_image(self, folder: Path | None = None) -> Path: return (folder or self.metrics) / "per_image.parquet"
    def metrics_control(self, folder: Path | None = None) -> Path:
        return (folder or self.metrics) / "control_per_image.parquet"       # the shuffled pairs
    def metrics_summary(self, folder: Path | None = None) -> Path: return (folder or self.metrics) / "summary.json"
    # 04/05 retrieval (Experiment 2), one folder per registered model:
    #   retrieval/<model>/{summary,truncation,results}.json, qrels_<query set>.json
    #   retrieval/<model>/<variant>/{run,scores}_<query set>.*     the main score kind's runs
    #   retrieval/<model>/<variant>/model/                          a fine-tuned model (Hugging Face format)
    #   retrieval/<model>/<variant>/training/                       the shared loop's checkpoint, history.json
    #   retrieval/<model>/<variant>/fine_tune.json                  what the fine-tune did (written when it is done)
    #   retrieval/<model>/<kind>/...                                every further score kind, laid out the same way
    @property
    def retrieval(self) -> Path: return self.root / "retrieval"
    def retrieval_model(self, model: str) -> Path: return self.retrieval / model
    def score_dir(self, model: str, kind: str | None = None) -> Path:
        """Where a score kind's runs and results.json live: the model's folder for the main kind (None)."""
        return self.retrieval_model(model) if kind is None else self.retrieval_model(model) / kind
    def retrieval_results(self, model: str, kind: str | None = None) -> Path:
        return self.score_dir(model, kind) / "results.json"
    def retrieval_summary(self, model: str) -> Path: return self.retrieval_model(model) / "summary.json"
    def truncation(self, model: str) -> Path: return self.retrieval_model(model) / "truncation.json"
    def variant(self, model: str, variant: str) -> Path: return self.retrieval_model(model) / variant
    def variant_model(self, model: str, variant: str) -> Path: return self.variant(model, variant) / "model"
    def training_dir(self, model: str, variant: str) -> Path: return self.variant(model, variant) / "training"
    def history(self, model: str, variant: str) -> Path:
        return self.training_dir(model, variant) / "history.json"       # = checkpoint.HISTORY
    def fine_tune_record(self, model: str, variant: str) -> Path: return self.variant(model, variant) / "fine_tune.json"
    @property
    def reference_results(self) -> Path:
        """The authors' stored runs evaluated like ours (runs.reference_experiment2)."""
        return self.retrieval / "reference_results.json"
    def reference_fused_run(self, model: str, variant: str, query_set: str) -> Path:
        return self.retrieval / "reference" / model / variant / f"run_{query_set}.json"
    # pocket models and fine-tuned checkpoints
    @property
    def models(self) -> Path: return self.root / "models"
    # 06 report: the explorer's thumbnail cache, next to what it shows
    @property
    def thumbnails(self) -> Path: return self.root / "explore" / "thumbs"
    def pocket_model(self, name: str) -> Path:
        """models/<name>: a pocket model built and trained in this run (demo, tests)."""
        return self.models / name
    # a pocket retrieval model's pre-training (notebooks 04/05), laid out like a fine-tuned variant; its result is
    # copied to pocket_model(name) once finished
    def pocket_pretraining(self, name: str) -> Path: return self.models / f"{name}-pretrain"
    def pocket_pretraining_model(self, name: str) -> Path: return self.pocket_pretraining(name) / "model"
    def pocket_training_dir(self, name: str) -> Path: return self.pocket_pretraining(name) / "training"
    def pocket_history(self, name: str) -> Path: return self.pocket_training_dir(name) / "history.json"
    @property
    def manifest(self) -> Path: return self.root / "manifest.json"
    @property
    def tables(self) -> Path: return self.figures / "tables"

    def caption_file(self, captioner: str) -> Path:
        return self.captions / f"{captioner}.jsonl"
