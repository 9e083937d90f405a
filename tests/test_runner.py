"""The papermill runner, on notebook 01 of the demo profile (small sizes, a temporary run directory)."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from artcap_lib.data.artpedia import load_artworks
from artcap_lib.cli import main
from artcap_lib.config import NOTEBOOKS_DIR
from artcap_lib import runner
from artcap_lib.runner import list_notebooks, select_notebooks

SMALL = ["--set", "data.demo_train=16", "--set", "data.demo_val=4", "--set", "data.demo_test=6",
         "--set", "data.demo_pretrain=8", "--set", "data.demo_image_size=32"]


def test_select_notebooks_by_number():
    names = [NOTEBOOKS_DIR / f"0{i}_x.ipynb" for i in range(1, 7)]
    assert [p.name[:2] for p in select_notebooks(names, only=["3", "05"])] == ["03", "05"]
    assert [p.name[:2] for p in select_notebooks(names, start="02", stop="04")] == ["02", "03", "04"]
    with pytest.raises(ValueError, match="no notebook numbered 09"):
        select_notebooks(names, only=["09"])


def test_reproduce_runs_notebook_01_and_writes_a_manifest(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["reproduce", "--profile", "demo", "--only", "01", "--no-progress",
                 "--set", f"run_dir={run_dir}", *SMALL])
    assert code == 0, capsys.readouterr().err
    executed = nbformat.read(run_dir / "01_data_prep.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "data.demo_train" in injected[0].source
    artworks = load_artworks(run_dir / "data" / "artworks.json")
    assert len(artworks) == 26
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["profile"] == "demo" and manifest["parameters"]["data"]["demo_train"] == 16
    assert manifest["notebooks"]["01_data_prep"]["wall_s"] > 0
    assert manifest["seeds"] == {"seed": 0} and "torch" in manifest["packages"]
    assert "cpu_count" in manifest["device"] and "commit" in manifest["git"]
    assert set(manifest["input_hashes"]) == {"demo.yaml", "data/artworks.json", "data/splits.json"}


def test_a_failing_notebook_stops_the_run_naming_notebook_cell_and_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    missing = tmp_path / "missing" / "artpedia.json"       # a valid profile whose input is not there
    code = main(["reproduce", "--profile", "demo", "--no-progress", "--set", f"run_dir={run_dir}",
                 "--set", "data.source=artpedia", "--set", f"data.artpedia_json={missing}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "01_data_prep.ipynb failed in cell" in err and str(missing) in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["failed"]["notebook"] == "01_data_prep.ipynb"
    assert not any(name > "01" for name in manifest["notebooks"])      # nothing after the failure ran


def test_a_bad_profile_fails_before_any_notebook(tmp_path, capsys):
    assert main(["reproduce", "--set", "captioning.batch_size=big", "--set", f"run_dir={tmp_path}"]) == 2
    assert "batch_size must be int" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


def test_notebooks_are_committed_without_outputs_and_take_profile_parameters():
    notebooks = list_notebooks()
    assert notebooks and notebooks[0].name == "01_data_prep.ipynb"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        names = {line.split("=")[0].strip() for line in params[0].source.splitlines() if "=" in line}
        assert names == {"profile", "overrides"}, f"{path.name}: parameters are {names}"
        assert nb.metadata.kernelspec.name == "artcap"


def _fake_notebooks(tmp_path, needs, pretrain=()):
    """Empty numbered notebooks whose metadata declares `needs` ({"03": ["02"], ...}; None = no declaration); those
    in `pretrain` allow their models' pre-training once 01 is done, as the project's 04 and 05 do."""
    paths = []
    for number, need in needs.items():
        nb = nbformat.v4.new_notebook()
        if need is not None:
            nb.metadata["artcap"] = {"needs": need}
        if number in pretrain:
            nb.metadata["artcap"]["pretrain"] = {"needs": ["01"]}
        path = tmp_path / f"{number}_step.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def test_needs_come_from_notebook_metadata_and_default_to_every_earlier_notebook(tmp_path):
    nbs = _fake_notebooks(tmp_path, {"01": [], "02": ["01"], "03": ["02"], "04": ["02"], "05": None})
    assert runner.notebook_needs(nbs[3], nbs) == {"02_step"}
    assert runner.notebook_needs(nbs[4], nbs) == {"01_step", "02_step", "03_step", "04_step"}
    assert runner.notebook_needs(nbs[3], nbs[3:]) == set()          # --only 04: 02's outputs are taken as there
    for path in list_notebooks():                                   # the project's own declare theirs, backwards
        declared = nbformat.read(path, as_version=4).metadata["artcap"]["needs"]
        assert all(n < path.name[:2] for n in declared), path.name


def _run_fake(tmp_path, monkeypatch, jobs, fail=None, pretrain=()):
    """reproduce() over fake notebooks 01-06 (the project's needs) with a recording executor instead of papermill;
    the pre-training jobs of the notebooks in `pretrain` are recorded as ("start", "04~pretrain"), ..."""
    import threading
    nbs = _fake_notebooks(tmp_path, {"01": [], "02": ["01"], "03": ["02"], "04": ["02"], "05": ["02"],
                                     "06": ["03", "04", "05"]}, pretrain)
    events, lock = [], threading.Lock()
    started, finished = ({nb.name[:2]: threading.Event() for nb in nbs} for _ in range(2))
    beside_02 = threading.Event()

    def execute(notebook, output, kernel, profile, overrides, bars, on_kernel=None):
        number = notebook.name[:2]
        with lock:
            events.append(("start", number))
        started[number].set()
        try:
            if number == "03" and jobs > 1:          # 03 ends only once 04 runs beside it, and 04 only after 03
                assert started["04"].wait(timeout=60), "04 did not start while 03 was running"
            if number == "04" and jobs > 1:
                assert finished["03"].wait(timeout=60), "03 did not finish"
            if number == "02" and "04" in pretrain and jobs > 1:    # 02 ends only once 04's pre-training runs
                assert beside_02.wait(timeout=60), "04's pre-training did not start beside 02"
            if number == fail:
                raise runner.NotebookFailed(notebook.name, 2, "ValueError", "boom", output)
            with lock:
                events.append(("end", number))
        finally:
            finished[number].set()

    def pretraining(notebook, models, profile, overrides, status, on_start):
        number = notebook.name[:2] + runner.PRETRAIN
        with lock:
            events.append(("start", number))
        if number == "04~pretrain":
            beside_02.set()
        with lock:
            events.append(("end", number))

    monkeypatch.setattr(runner, "list_notebooks", lambda: nbs)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "artcap")
    monkeypatch.setattr(runner, "_execute", execute)
    monkeypatch.setattr(runner, "_pretrain", pretraining)
    return events, lambda: runner.reproduce("demo", {"run_dir": str(tmp_path / "run"), "jobs": jobs,
                                                     "data.demo_train": 4}, progress=False, log=lambda s: None)


def test_notebooks_whose_needs_are_met_run_side_by_side_and_dependants_wait(tmp_path, monkeypatch):
    events, run = _run_fake(tmp_path, monkeypatch, jobs=2)
    manifest = run()
    position = {event: i for i, event in enumerate(events)}
    assert position[("end", "02")] < min(position[("start", n)] for n in ("03", "04", "05"))
    assert position[("start", "04")] < position[("end", "03")]                       # ran side by side
    assert position[("start", "06")] > max(position[("end", n)] for n in ("03", "04", "05"))
    assert len(manifest["notebooks"]) == 6 and manifest["jobs"] == 2 and manifest["run_wall_s"] >= 0


def test_a_pocket_pre_training_runs_beside_02_and_its_notebook_waits_for_it(tmp_path, monkeypatch):
    """The demo's 04 and 05 pre-train pocket models that need only 01's pool: each is a job of its own, started
    once 01 is done (04's at once beside 02, 05's in the next free slot), and 04/05 start only after their own."""
    events, run = _run_fake(tmp_path, monkeypatch, jobs=2, pretrain=("04", "05"))
    manifest = run()
    position = {event: i for i, event in enumerate(events)}
    assert position[("end", "01")] < position[("start", "04~pretrain")] < position[("end", "02")]
    assert position[("start", "02")] < position[("start", "04~pretrain")]            # 02 is not held back
    for n in ("04", "05"):
        assert position[("end", f"{n}~pretrain")] < position[("start", n)]
    assert set(manifest["pretrained"]) == {"04_step~pretrain", "05_step~pretrain"}
    assert manifest["pretrained"]["04_step~pretrain"]["models"] == ["blip"]
    assert len(manifest["notebooks"]) == 6                          # jobs are not notebooks


def test_no_pre_training_job_where_nothing_overlaps_or_nothing_is_to_make(tmp_path):
    from artcap_lib.config import RunPaths, load_profile
    nbs = _fake_notebooks(tmp_path, {"01": [], "02": ["01"], "04": ["02"], "05": ["02"]}, pretrain=("04", "05"))
    cfg = load_profile("demo", {"run_dir": str(tmp_path / "run")})
    paths = RunPaths.for_profile(cfg)

    def jobs(chosen):
        needs = {nb.stem: runner.notebook_needs(nb, chosen) for nb in chosen}
        return {job.stem: (nb.stem, models) for job, (nb, models) in runner.pretrain_jobs(cfg, paths, chosen,
                                                                                         needs).items()}, needs
    found, needs = jobs(nbs)
    assert found == {"04_step~pretrain": ("04_step", ["blip"]), "05_step~pretrain": ("05_step", ["longclip"])}
    assert needs["04_step"] == {"02_step", "04_step~pretrain"} and needs["04_step~pretrain"] == {"01_step"}
    assert jobs(nbs[2:3])[0] == {}                  # --only 04: nothing to run beside it
    assert jobs(nbs[1:])[0]["04_step~pretrain"]     # --from 02: it starts at once, beside 02
    (paths.pocket_model("pocket-blip")).mkdir(parents=True)
    assert set(jobs(nbs)[0]) == {"05_step~pretrain"}                 # BLIP's pocket is there already
    cfg = load_profile("paper", {"run_dir": str(tmp_path / "paper")})
    assert runner.pretrain_jobs(cfg, RunPaths.for_profile(cfg), nbs, {nb.stem: runner.notebook_needs(nb, nbs)
                                                                      for nb in nbs}) == {}   # no pocket models


def test_one_job_runs_in_number_order(tmp_path, monkeypatch):
    events, run = _run_fake(tmp_path, monkeypatch, jobs=1)
    run()
    assert events == [(kind, f"0{i}") for i in range(1, 7) for kind in ("start", "end")]


def test_a_failure_lets_running_notebooks_finish_and_starts_no_other(tmp_path, monkeypatch):
    events, run = _run_fake(tmp_path, monkeypatch, jobs=2, fail="03")
    with pytest.raises(runner.NotebookFailed, match="03_step.ipynb failed in cell 2"):
        run()
    assert ("end", "04") in events                                  # the notebook beside it finished
    assert not any(n in ("05", "06") for _, n in events)            # nothing new started after the failure
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["failed"]["notebook"] == "03_step.ipynb" and "04_step" in manifest["notebooks"]


def test_jobs_must_be_positive(tmp_path, capsys):
    assert main(["reproduce", "--jobs", "0", "--set", f"run_dir={tmp_path}"]) == 2
    assert "jobs: must be at least 1, got 0" in capsys.readouterr().err


@contextlib.contextmanager
def another_run_holding(run_dir):
    """Another process holding run_dir's lock, as a running `artcap reproduce` does; yields its pid."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from artcap_lib.files import RunLock; "
                               f"lock = RunLock({str(run_dir)!r}, 'artcap reproduce --profile demo').acquire(); "
                               "print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.communicate("")                                  # the holder exits: flock ends with its process


def test_a_second_run_on_one_run_directory_is_refused_naming_the_holder(tmp_path, monkeypatch):
    """Two `artcap reproduce --only 02` on one directory once wrote every caption twice: one writer at a time."""
    from artcap_lib import notebook
    from artcap_lib.files import RunLock, RunLockedError
    run_dir = tmp_path / "run"
    with another_run_holding(run_dir) as pid:
        events, run = _run_fake(tmp_path, monkeypatch, jobs=1)
        with pytest.raises(RunLockedError, match=rf"in use by pid {pid} .*artcap reproduce --profile demo"):
            run()
        assert events == []                                    # nothing ran
        with pytest.raises(RunLockedError):
            notebook.setup("demo", {"run_dir": str(run_dir)})  # a notebook opened by hand is refused too
    # once free: the run's own notebooks (its children) pass the lock, and it is released at the end
    seen = []
    events, run = _run_fake(tmp_path, monkeypatch, jobs=1)
    real_execute = runner._execute

    def execute_and_set_up(notebook_path, *args):
        seen.append(notebook.setup("demo", {"run_dir": str(run_dir)})[1].root)
        return real_execute(notebook_path, *args)
    monkeypatch.setattr(runner, "_execute", execute_and_set_up)
    run()
    assert len(seen) == 6
    with RunLock(run_dir, "after"):
        pass


def test_commands_that_write_a_run_directory_are_refused_while_another_run_writes_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with another_run_holding(run_dir) as pid:
        for command in (["data", "prepare"], ["caption"], ["blip", "experiment"], ["longclip", "run"],
                        ["blip", "finetune", "--variant", "human"]):
            assert main([*command, "--set", f"run_dir={run_dir}"]) == 2, command
            err = capsys.readouterr().err
            assert f"in use by pid {pid}" in err and "Traceback" not in err, (command, err)
    assert not (run_dir / "data").exists()                 # nothing was written by the refused commands


def _project_with(tmp_path, cells: dict[str, str]) -> dict[str, str]:
    """A project folder (ARTCAP_ROOT) whose notebooks/ hold one code cell each after the parameters cell; returns
    the environment that runs `artcap` on it."""
    folder = tmp_path / "project" / "notebooks"
    folder.mkdir(parents=True)
    for name, code in cells.items():
        _notebook(folder / f"{name}.ipynb", code)
    return {**os.environ, "ARTCAP_ROOT": str(folder.parent)}


def _notebook(path, code: str):
    """A runnable notebook: the parameters cell, then `code`."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "demo"\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "artcap", "display_name": "artcap", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_one_ctrl_c_stops_the_run_within_seconds_and_records_what_finished(tmp_path):
    """One Ctrl-C used to be swallowed until the running notebook ended (hours on the paper profile), and then no
    manifest was written. The terminal's SIGINT reaches only `artcap reproduce`: the kernels have their own session."""
    marker, run_dir = tmp_path / "kernel.pid", tmp_path / "run"
    env = _project_with(tmp_path, {
        "01_quick": f"import os\nassert os.getcwd() == {str(tmp_path / 'project' / 'notebooks')!r}, os.getcwd()",
        "02_slow": f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"})
    proc = subprocess.Popen([sys.executable, "-m", "artcap_lib.cli", "reproduce", "--jobs", "1", "--no-progress",
                             "--set", f"run_dir={run_dir}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (marker.is_file() and marker.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.is_file(), proc.communicate(timeout=30)
        kernel_pid = int(marker.read_text())
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)                     # what one Ctrl-C in the terminal sends
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert took < 30
    assert "artcap reproduce: interrupted: 02_slow stopped; finished: 01_quick" in err and "Traceback" not in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["notebooks"]) == {"01_quick"} and manifest["interrupted"]["notebooks"] == ["02_slow"]
    assert "failed" not in manifest
    with pytest.raises(ProcessLookupError):
        os.kill(kernel_pid, 0)                               # the kernel is gone, not left running
    assert not (run_dir / "02_slow.ipynb").exists() or nbformat.read(run_dir / "02_slow.ipynb", as_version=4)


def test_a_disk_that_fills_leaves_the_previous_executed_copy_and_a_manifest_naming_the_failure(
        tmp_path, monkeypatch, capsys):
    """papermill writes the executed notebook after every cell; a full disk used to leave it truncated (invalid
    JSON) and the manifest silent."""
    import errno
    import papermill.iorw
    nb = _notebook(tmp_path / "01_step.ipynb", "print('a cell')")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    previous = nbformat.v4.new_notebook()
    nbformat.write(previous, run_dir / nb.name)
    before = (run_dir / nb.name).read_bytes()
    real_write, calls = papermill.iorw.LocalHandler.write, []

    def fill_up(self, buf, path):        # the disk fills during the run: half of a write lands, then ENOSPC
        calls.append(path)
        if len(calls) < 3:
            return real_write(self, buf, path)
        real_write(self, buf[:len(buf) // 2], path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(papermill.iorw.LocalHandler, "write", fill_up)
    monkeypatch.setattr(runner, "list_notebooks", lambda: [nb])
    assert main(["reproduce", "--no-progress", "--set", f"run_dir={run_dir}"]) == 1
    err = capsys.readouterr().err
    assert f"{nb.name} failed: OSError: [Errno 28] No space left on device" in err and "Traceback" not in err
    assert (run_dir / nb.name).read_bytes() == before                         # the previous copy, whole
    assert sorted(p.name for p in run_dir.iterdir() if p.suffix == ".ipynb") == [nb.name]   # no torn partial
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["failed"]["notebook"] == nb.name and "No space left" in manifest["failed"]["error"]
