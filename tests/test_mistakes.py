"""The mistakes a new user makes, each ending in one clear line (or the right result) and nothing of theirs lost:
counts, path options, run paths, a report on a mistyped run directory, models and devices that cannot work, caption
files written twice at once or holding someone's bad line, faults of the machine; tracebacks behind --debug."""
import errno
import json

import pytest

from artcap_lib import runner
from artcap_lib.cli import main
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.data import step as data_step
from test_runner import another_run_holding

TINY = {"data.demo_train": 3, "data.demo_val": 1, "data.demo_test": 2, "data.demo_pretrain": 0,
        "data.demo_image_size": 32}


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_refused(limit, tmp_path, capsys):
    """--limit 0 captioned every image (480) and --limit -1 all but one, both exiting 0."""
    with pytest.raises(SystemExit) as exit_:
        main(["caption", "--limit", limit, "--set", f"run_dir={tmp_path / 'run'}"])
    assert exit_.value.code == 2
    assert f"argument --limit: must be at least 1, got {limit}" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", ["--out", "--summary"])
def test_an_output_file_that_is_a_folder_is_refused_before_any_work(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["caption", option, str(tmp_path), "--set", f"run_dir={tmp_path / 'run'}"])
    assert exit_.value.code == 2
    assert f"argument {option}: {tmp_path} is a folder; give a file path" in one_line(capsys.readouterr().err)


def test_captioning_part_of_a_run_into_its_own_caption_file_takes_the_runs_lock(tmp_path, capsys):
    """`--split`/`--limit` into the run's captions/<name>.jsonl ran beside a whole-run captioning: 671 lines for
    480 ids."""
    run_dir = tmp_path / "run"
    with another_run_holding(run_dir) as pid:
        for extra in (["--split", "test"], ["--limit", "5"], ["--out", str(run_dir / "captions" / "mine.jsonl")]):
            assert main(["caption", *extra, "--set", f"run_dir={run_dir}"]) == 2, extra
            assert f"{run_dir} is in use by pid {pid}" in one_line(capsys.readouterr().err)
    assert not (run_dir / "captions").exists()


@pytest.fixture
def collection(tmp_path):
    cfg = load_profile("demo", {"run_dir": str(tmp_path / "run"), **TINY})
    paths = RunPaths.for_profile(cfg)
    data_step.run(cfg, paths)
    return paths.artworks


def test_a_caption_file_with_a_bad_line_is_one_line_before_any_model_loads(collection, tmp_path, capsys):
    out = tmp_path / "mine.jsonl"
    out.write_text('{"id": "1", "caption": "a"},\n')
    code = main(["caption", "--artworks", str(collection), "--out", str(out), "--set", f"run_dir={tmp_path / 'run'}"])
    assert code == 2
    assert one_line(capsys.readouterr().err).startswith(f"artcap caption: {out}: line 1: not valid JSON")
    assert out.read_text() == '{"id": "1", "caption": "a"},\n'
    assert not (tmp_path / "run" / "models").exists()           # the pocket captioner was not even trained


def test_a_caption_file_another_command_writes_is_refused_naming_it(collection, tmp_path, capsys):
    """Two `artcap caption --out same.jsonl` at once: 236 lines, 116 ids duplicated."""
    import subprocess
    import sys
    out = tmp_path / "same.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from artcap_lib.captioning.store import writer_lock; "
                               f"lock = writer_lock({str(out)!r}).acquire(); print('held', flush=True); "
                               "sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["caption", "--artworks", str(collection), "--out", str(out),
                     "--set", f"run_dir={tmp_path / 'run'}"])
    finally:
        holder.communicate("")
    assert code == 2
    assert f"{out} is being written by pid {holder.pid} (python -c" in one_line(capsys.readouterr().err)
    assert out.read_text() == ""


def test_report_refuses_a_run_directory_without_results_and_writes_nothing(tmp_path, capsys):
    """A mistyped run_dir exited 0, created the folder and overwrote the good report's README with 'No results'."""
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "README.md").write_text("the good report")
    typo, empty = tmp_path / "rnu", tmp_path / "run"
    (empty / "data").mkdir(parents=True)
    for run_dir, says in ((typo, "does not exist"), (empty, "holds no results")):
        assert main(["report", "--run-dir", str(run_dir), "--figures-dir", str(figures)]) == 2
        assert f"run_dir: {run_dir} {says}" in one_line(capsys.readouterr().err)
    assert not typo.exists() and sorted(p.name for p in empty.iterdir()) == ["data"]
    assert (figures / "README.md").read_text() == "the good report"


def test_run_paths_expand_home_and_resolve_against_the_current_directory(tmp_path, monkeypatch, capsys):
    """`run_dir: ~/runs/x` made a folder named `~` in the checkout, and a relative --set run_dir resolved against
    the checkout while --out resolved against the current directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert RunPaths.for_profile(load_profile("demo", {"run_dir": "~/runs/x"})).root == tmp_path / "home/runs/x"
    assert main(["profile", "--json", "--set", "run_dir=rel/run", "--figures-dir", "~/fig"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["run_dir"] == str(tmp_path / "rel/run") and resolved["figures_dir"] == str(tmp_path / "home/fig")


def test_reproduce_hands_its_notebooks_the_paths_resolved_where_the_user_typed_them(tmp_path, monkeypatch):
    """The notebooks run in notebooks/: a relative run_dir must reach them absolute, resolved in the CLI's folder."""
    seen = []
    monkeypatch.setattr(runner, "list_notebooks", lambda: [runner.NOTEBOOKS_DIR / "01_data_prep.ipynb"])
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "artcap")
    monkeypatch.setattr(runner, "_execute", lambda nb, out, kernel, profile, overrides, *rest: seen.append(overrides))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    runner.reproduce("demo", {"run_dir": "rel/run", "captioning.model": "models/mine"}, progress=False,
                     log=lambda line: None)
    assert seen[0]["run_dir"] == str(tmp_path / "rel/run") and (tmp_path / "rel/run" / "manifest.json").is_file()
    assert seen[0]["captioning.model"] == str(tmp_path / "models/mine")
    assert "figures_dir" not in seen[0]         # "" stays "": figures/<profile>/ of the project


@pytest.mark.parametrize("model, says", [
    ("{tmp}/no/such/model", "{tmp}/no/such/model does not exist"),
    ("{tmp}", "{tmp} holds no model (no config.json)"),
    ("{tmp}/run.log", "{tmp}/run.log is a file; give the model's folder"),
    ("someone/not-downloaded-model", "someone/not-downloaded-model is not in the local Hugging Face cache and "
                                     "HF_HUB_OFFLINE is set"),
    ("my models/llava", "'my models/llava' is neither an existing folder nor a hub id"),
])
def test_a_model_that_cannot_load_is_one_line_naming_the_setting_before_any_notebook(model, says, tmp_path, capsys):
    """These used to surface minutes in as a traceback; a missing folder's blamed the hub's repo-id format."""
    run_dir = tmp_path / "run"
    (tmp_path / "run.log").write_text("not a model")
    code = main(["reproduce", "--only", "02", "--set", f"run_dir={run_dir}",
                 "--set", f"captioning.model={model.format(tmp=tmp_path)}"])
    assert code == 2
    assert f"captioning.model: {says.format(tmp=tmp_path)}" in one_line(capsys.readouterr().err)
    assert not run_dir.exists()


def test_a_cuda_device_without_cuda_is_one_line(tmp_path, monkeypatch, capsys):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["reproduce", "--only", "04", "--device", "cuda", "--set", f"run_dir={tmp_path / 'run'}"]) == 2
    assert "device: cuda, but" in one_line(capsys.readouterr().err) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("fault, says", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device of {run}: free some"),
    (PermissionError(errno.EACCES, "Permission denied", "{run}/captions/x.jsonl"),
     "cannot write {run}/captions/x.jsonl: Permission denied; make it writable"),
    (OSError(errno.EROFS, "Read-only file system", "{run}/manifest.json"),
     "cannot write {run}/manifest.json: Read-only file system"),
])
def test_a_fault_of_the_machine_is_one_line_and_debug_shows_the_traceback(fault, says, tmp_path, monkeypatch,
                                                                           capsys):
    from artcap_lib.cli import reproduce
    run = tmp_path / "run"
    if fault.filename:
        fault.filename = fault.filename.format(run=run)

    def fails(args):
        raise fault
    monkeypatch.setattr(reproduce, "_show_profile", fails)
    assert main(["profile", "--set", f"run_dir={run}"]) == 1
    assert says.format(run=run) in one_line(capsys.readouterr().err)
    with pytest.raises(OSError):
        main(["profile", "--set", f"run_dir={run}", "--debug"])
    monkeypatch.setenv("ARTCAP_DEBUG", "1")
    with pytest.raises(OSError):
        main(["profile", "--set", f"run_dir={run}"])


# ---- the next mistakes, found trying the commands as a new user ----------------------------------------------------


def test_a_range_that_selects_no_notebook_is_refused(tmp_path, capsys):
    """`--from 03 --to 02` printed 'done: 2 notebook(s)' (an earlier run's manifest) and exited 0."""
    assert main(["reproduce", "--from", "03", "--to", "02", "--set", f"run_dir={tmp_path / 'run'}"]) == 2
    assert "--only/--from/--to select no notebook" in one_line(capsys.readouterr().err)


def test_later_steps_in_a_run_directory_where_step_01_never_ran_are_refused(tmp_path, capsys):
    """`--only 04 --set run_dir=<typo>` failed inside notebook 04 on a missing artworks.json, after a kernel start."""
    run_dir = tmp_path / "rnu"
    assert main(["reproduce", "--only", "04", "--set", f"run_dir={run_dir}"]) == 2
    assert f"run_dir: {run_dir} has no data/artworks.json, so step 01 has not run" in one_line(
        capsys.readouterr().err)
    assert not run_dir.exists()


def test_step_01_with_other_data_over_a_runs_captions_is_refused(tmp_path, monkeypatch, capsys):
    """Re-running a run with other data settings regenerated the paintings under the old captions and models: the
    caption of the old painting 1000 passed for the new one's."""
    run_dir = tmp_path / "run"
    monkeypatch.setattr(runner, "list_notebooks", lambda: [runner.NOTEBOOKS_DIR / "01_data_prep.ipynb"])
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "artcap")
    monkeypatch.setattr(runner, "_execute", lambda *args: None)
    runner.reproduce("demo", {"run_dir": str(run_dir), **TINY}, progress=False, log=lambda line: None)
    (run_dir / "captions").mkdir()
    with pytest.raises(ValueError, match=r"holds captions and models made from other data \(data.demo_test 2 -> 5\)"):
        runner.reproduce("demo", {"run_dir": str(run_dir), **TINY, "data.demo_test": 5}, progress=False)
    runner.reproduce("demo", {"run_dir": str(run_dir), **TINY}, progress=False, log=lambda line: None)   # same: fine


def test_captioning_into_another_captioners_file_is_refused(collection, tmp_path, capsys):
    """Resuming into a file another model or prompt wrote skipped every id it had and passed its captions off as
    this model's."""
    from artcap_lib.captioning.store import CaptionStore
    out = tmp_path / "captions.jsonl"
    CaptionStore(out).append([{"id": "1000", "caption": "a", "model": "pocket-llava", "prompt": "Describe"}])
    code = main(["caption", "--artworks", str(collection), "--out", str(out), "--set", f"run_dir={tmp_path / 'run'}"])
    assert code == 2
    assert (f"{out}: 1 record(s) written by model 'pocket-llava' with prompt 'Describe', not by this captioner "
            "('pocket-llava', prompt 'Caption this image')") in one_line(capsys.readouterr().err)
    assert not (tmp_path / "run" / "models").exists()


def test_captioning_a_run_where_step_01_never_ran_is_one_line_and_creates_nothing(tmp_path, capsys):
    run_dir = tmp_path / "fresh"
    assert main(["caption", "--set", f"run_dir={run_dir}"]) == 2
    assert f"run_dir: {run_dir} has no data/artworks.json, so step 01 has not run there" in one_line(
        capsys.readouterr().err)
    assert not run_dir.exists()


@pytest.mark.parametrize("command", [["metrics", "score", "--pairs", "{tmp}/pairs.tsv"],
                                     ["retrieval", "fuse", "--run", "{tmp}/a.json", "--run", "{tmp}/a.json"]])
def test_an_out_folder_is_refused_before_the_work_for_every_command(command, tmp_path, capsys):
    """Found after scoring every pair, and blamed on a temporary file: '/.tmp.oo8pdrg7.tmp is a folder'."""
    with pytest.raises(SystemExit) as exit_:
        main([*(w.format(tmp=tmp_path) for w in command), "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert f"argument --out: {tmp_path} is a folder" in one_line(capsys.readouterr().err)


def test_an_atomic_write_onto_a_folder_names_the_folder(tmp_path):
    from artcap_lib.files import write_json
    with pytest.raises(IsADirectoryError, match=str(tmp_path)) as err:
        write_json(tmp_path, {})
    assert err.value.filename == str(tmp_path) and list(tmp_path.iterdir()) == []


def test_the_notebooks_folder_as_run_directory_is_refused(tmp_path, monkeypatch, capsys):
    """`--set run_dir=notebooks` (from the checkout) wrote each executed copy over the notebook it ran."""
    from test_runner import _notebook
    (tmp_path / "notebooks").mkdir()
    nb = _notebook(tmp_path / "notebooks" / "01_step.ipynb", "print('ran')")
    before = nb.read_bytes()
    monkeypatch.setattr(runner, "list_notebooks", lambda: [nb])
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--set", "run_dir=notebooks"]) == 2
    assert "holds the notebooks themselves" in one_line(capsys.readouterr().err)
    assert nb.read_bytes() == before and sorted(p.name for p in nb.parent.iterdir()) == ["01_step.ipynb"]


@pytest.mark.parametrize("text, says", [
    (b"profile: mine\ndata:\n\tsource: demo\n", "line 3, column 1: not valid YAML: found character '\\t' that cannot "
                                                "start any token (YAML indents with spaces, not tabs)"),
    (b"profile: mine\nseed: caf\xe9\n", "not UTF-8 (byte 24): save it as UTF-8"),
])
def test_a_profile_file_that_does_not_read_is_one_line_naming_its_line(text, says, tmp_path, capsys):
    """A tab in a hand-written profile printed the parser's five lines, naming '<unicode string>'; a Latin-1 file
    a traceback."""
    profile = tmp_path / "mine.yaml"
    profile.write_bytes(text)
    assert main(["profile", str(profile)]) == 2
    assert one_line(capsys.readouterr().err) == f"artcap profile: {profile}: {says}"
