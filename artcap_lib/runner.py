"""`artcap reproduce`: execute the numbered notebooks with papermill, in order of their needs, one run directory per
profile.

Each notebook gets two parameters (profile, overrides: the --set values, run_dir among them) and loads everything
else from the profile, so a notebook run by hand in JupyterLab and one run here are configured the same way.
Executed copies land in the run directory beside the files they produced; manifest.json records what ran, where
and how long, and which step failed or was interrupted. A run holds the run directory's lock (`files.RunLock`) from
start to end: a second run on the same directory is refused with a message naming the holder.

Nothing half-written is left under a final name: a notebook executes into `.NN_name.running.ipynb`, which replaces
`NN_name.ipynb` only once papermill has written it whole (a disk that fills mid-run leaves the previous copy), and
the manifest is written atomically. One Ctrl-C interrupts the running notebooks' kernels (they start in their own
session, so the terminal's SIGINT never reaches them), waits a few seconds for them to stop, records what finished
and what was interrupted, and raises `RunInterrupted`.

A notebook may also name work that needs less than the notebook itself (`artcap.pretrain`: its models' pocket
baselines need only 01's pre-training pool, the notebook 02's captions): the runner starts it as a job of its own
(`artcap retrieval pretrain`, in its own session like a kernel) as soon as its needs are met and a slot is free,
and the notebook waits for it. In the demo that pre-trains BLIP on the core that step 02's one-thread captioner
leaves idle. It runs only where there is something to pre-train and something to overlap with.

While notebooks run, the terminal shows what each is doing (`progress`: the captioner's images with rate and ETA, a
fine-tune's epoch and step, the metrics still being computed), read from a status file each kernel writes. Kernels
talk to the runner over local IPC sockets, not TCP: nothing is exposed on the network, and ipykernel's warning about
unencrypted TCP has nothing to warn about.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from artcap_lib import progress as progress_files
from artcap_lib.files import LOCK_ENV, RunLock, read_json, sha256_file, write_json
from artcap_lib.config import NOTEBOOKS_DIR, RunPaths, path_fields, profile_path
from artcap_lib.config import load_profile
from artcap_lib.provenance import environment

KERNEL_NAME = "artcap"
INTERRUPT_GRACE_S = 20     # after a Ctrl-C, how long an interrupted kernel may take to stop before it is killed
POLL_S = 0.5               # how often the running notebooks' status files are read
LOG_EVERY_S = 30           # in a log (not a terminal) a notebook's unchanged task is reprinted at most this often


class NotebookFailed(RuntimeError):
    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, output: Path | None):
        self.notebook, self.cell, self.ename, self.evalue, self.output = notebook, cell, ename, evalue, output
        where = f" in cell {cell}" if cell is not None else ""
        copy = f"\n(executed copy: {output})" if output is not None else ""
        super().__init__(f"{notebook} failed{where}: {ename}: {evalue}{copy}")


class RunInterrupted(RuntimeError):
    """Ctrl-C: the running notebooks were stopped; the manifest records what finished."""


def list_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(notebooks: list[Path], only: list[str] | None = None, start: str | None = None,
                     stop: str | None = None) -> list[Path]:
    """Filter by two-digit prefix: --only 03 [--only 05], or the range --from 02 --to 04 (inclusive)."""
    def number(p: Path) -> str:
        return p.name[:2]
    known = {number(p) for p in notebooks}
    for n in [*(only or []), start, stop]:
        if n is not None and n.zfill(2) not in known:
            raise ValueError(f"no notebook numbered {n} (have {', '.join(sorted(known))})")
    chosen = [p for p in notebooks if not only or number(p) in {n.zfill(2) for n in only}]
    if start:
        chosen = [p for p in chosen if number(p) >= start.zfill(2)]
    if stop:
        chosen = [p for p in chosen if number(p) <= stop.zfill(2)]
    if not chosen:       # `--from 03 --to 02` once printed "done: 2 notebook(s)" from an earlier run's manifest
        raise ValueError(f"--only/--from/--to select no notebook (have {', '.join(sorted(known))})")
    return chosen


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """A kernelspec that runs *this* interpreter (the project's .venv), installed into sys.prefix if missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return name
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install
    install(prefix=sys.prefix, kernel_name=name, display_name=f"{name} ({Path(sys.prefix).name})")
    return name


def artcap_metadata(notebook: Path) -> dict[str, Any]:
    """A notebook's `artcap` metadata: what it needs (`needs`) and may run early (`pretrain`)."""
    import nbformat
    return nbformat.read(notebook, as_version=4).metadata.get("artcap", {})


def notebook_needs(notebook: Path, chosen: list[Path]) -> set[str]:
    """The stems among `chosen` that must finish before `notebook` starts.

    A notebook names the notebooks whose outputs it reads in its metadata (`artcap.needs`, two-digit numbers);
    one without that entry (a user's own 07_...) waits for every earlier notebook. Notebooks outside the
    selection (`--only 05`) are taken as done: their outputs are already in the run directory."""
    numbers = artcap_metadata(notebook).get("needs")
    earlier = [p for p in chosen if p.name[:2] < notebook.name[:2]]
    return {p.stem for p in earlier if numbers is None or p.name[:2] in numbers}


PRETRAIN = "~pretrain"     # a notebook's pre-training job is named <notebook stem>~pretrain


def pretrain_jobs(cfg, paths: RunPaths, chosen: list[Path], needs: dict[str, set[str]]
                  ) -> dict[Path, tuple[Path, list[str]]]:
    """{job: (its notebook, models)} of the chosen notebooks whose metadata allows an early pre-training
    (`artcap.pretrain: {"needs": [...]}`) and whose models' pocket baselines are still to be made, where that
    job could overlap with something (a need of the notebook that the job does not have). Adds each job to its
    notebook's needs and gives each job its own (in `needs`)."""
    from artcap_lib.retrieval.experiment import pockets_to_pretrain
    jobs = {}
    for nb in chosen:
        early = artcap_metadata(nb).get("pretrain")
        if early is None:
            continue
        job_needs = {p.stem for p in chosen if p.name[:2] in early.get("needs", [])}
        if not needs[nb.stem] - job_needs:
            continue                     # nothing to run beside it: the notebook pre-trains as it always can
        models = pockets_to_pretrain(cfg, paths, nb.name[:2])
        if models:
            job = nb.with_name(nb.stem + PRETRAIN)
            jobs[job] = (nb, models)
            needs[job.stem] = job_needs
            needs[nb.stem] = needs[nb.stem] | {job.stem}
    return jobs


def _pretrain(notebook: Path, models: list[str], profile: str, overrides: dict[str, Any], status: Path,
              on_start: Callable[[Any], None]) -> None:
    """`artcap retrieval pretrain --model ...` with the run's profile and overrides, in a session of its own (a
    Ctrl-C is the runner's to pass on, as to a kernel); its progress goes to `status`."""
    import json
    import subprocess
    from types import SimpleNamespace
    command = [sys.executable, "-m", "artcap_lib.cli", "retrieval", "pretrain", "--profile", str(profile)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={json.dumps(value)}"]          # JSON is YAML: the value as the notebook gets it
    for model in models:
        command += ["--model", model]
    status.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, progress_files.ENV: str(status)})
    on_start(SimpleNamespace(provisioner=SimpleNamespace(pgid=proc.pid, pid=proc.pid)))
    output, _ = proc.communicate()
    if proc.returncode:
        last = output.strip().splitlines()[-1] if output.strip() else f"exit status {proc.returncode}"
        raise NotebookFailed(notebook.name, None, "pre-training failed", f"{' '.join(command[2:])}: {last}", None)


def reproduce(profile: str = "demo", overrides: dict[str, Any] | None = None, only: list[str] | None = None,
              start: str | None = None, stop: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected notebooks, up to `cfg.jobs` at a time among those whose needs are met (03, 04 and 05
    only need 02's captions), each in its own kernel; the first failure lets running notebooks finish, starts
    no new one and is raised."""
    overrides = dict(overrides or {})
    cfg = load_profile(profile, overrides)        # fail on a bad profile before any notebook starts
    paths = RunPaths.for_profile(cfg)
    # paths resolve where the user typed them (`config.user_path`); the notebooks run in notebooks/, so they get
    # them absolute (as the profile loaded here made them)
    overrides.update({key: value for key in path_fields(cfg) if (value := _dotted(cfg, key)) and os.path.isabs(value)})
    notebooks = select_notebooks(list_notebooks(), only, start, stop)
    problem = run_dir_problem(cfg, paths, notebooks)      # before the lock creates a mistyped run_dir
    if problem:
        raise ValueError(problem)
    with RunLock(paths.root, f"artcap reproduce --profile {profile}"):
        previous = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = str(paths.root.resolve())     # the notebooks' kernels inherit it: the lock is theirs
        try:
            return _reproduce(cfg, paths, profile, overrides, notebooks, progress, log)
        finally:
            if previous is None:
                os.environ.pop(LOCK_ENV, None)
            else:
                os.environ[LOCK_ENV] = previous


def run_dir_problem(cfg, paths: RunPaths, notebooks: list[Path]) -> str | None:
    """Why the run directory does not fit this run, else None: the notebooks' own folder, later steps selected where
    step 01 never ran (a mistyped run_dir), or step 01 about to make other data (data.*, seed) beside the captions
    and models made from the data already there (a caption of the old painting #1000 would pass for the new one's)."""
    if paths.root == NOTEBOOKS_DIR or any(nb.parent == paths.root for nb in notebooks):
        return (f"run_dir: {paths.root} holds the notebooks themselves: their executed copies would overwrite them; "
                f"choose another run_dir (--set run_dir=...)")
    selected = {nb.name[:2] for nb in notebooks}
    if "01" not in selected:
        if not paths.artworks.is_file():
            return (f"run_dir: {paths.root} has no {paths.artworks.relative_to(paths.root)}, so step 01 has not run "
                    f"there: check run_dir, or run from 01 (--from 01)")
        return None
    if not paths.manifest.is_file() or not any(p.exists() for p in (paths.captions, paths.models)):
        return None
    before = read_json(paths.manifest).get("parameters", {})
    now = cfg.to_dict()
    changed = [f"seed {before['seed']} -> {now['seed']}"] if "seed" in before and before["seed"] != now["seed"] else []
    changed += [f"data.{k} {v!r} -> {now['data'][k]!r}" for k, v in before.get("data", {}).items()
                if path_fields(cfg).get(f"data.{k}") is None and k in now["data"] and v != now["data"][k]]
    if not changed:
        return None
    return (f"run_dir: {paths.root} holds captions and models made from other data ({'; '.join(changed)}): step 01 "
            f"would replace the data under them. Choose a fresh run_dir (--set run_dir=...), or delete that one")


def _reproduce(cfg, paths: RunPaths, profile: str, overrides: dict[str, Any], notebooks: list[Path], progress: bool,
               log: Callable[[str], None]) -> dict[str, Any]:
    needs = {nb.stem: notebook_needs(nb, notebooks) for nb in notebooks}
    early = pretrain_jobs(cfg, paths, notebooks, needs)
    kernel = ensure_kernel()
    manifest = read_json(paths.manifest) if paths.manifest.is_file() else {}
    from artcap_lib.profile_sources import departures
    manifest.update({"profile": cfg.profile, "parameters": cfg.to_dict(), "overrides": overrides,
                     # values that differ from the profile's sources table (the paper profile: the authors' run)
                     "departures_from_sources": departures(cfg, profile),
                     "seeds": {"seed": cfg.seed}, **environment()})
    manifest.setdefault("notebooks", {})
    manifest.pop("failed", None)
    manifest.pop("interrupted", None)
    n = len(notebooks)
    index = {nb.stem: i for i, nb in enumerate(notebooks, 1)}
    board = StatusBoard(log, shown=progress)
    log = board.log

    kernels: dict[str, Any] = {}                 # notebook stem -> its kernel manager, to interrupt it

    def run_one(notebook: Path) -> float:
        began = time.perf_counter()
        if notebook in early:
            _pretrain(*early[notebook], profile, overrides, status_file(paths, notebook),
                      lambda proc: kernels.__setitem__(notebook.stem, proc))
        else:
            _execute(notebook, paths.root / notebook.name, kernel, profile, overrides, status_file(paths, notebook),
                     lambda km: kernels.__setitem__(notebook.stem, km))
        return time.perf_counter() - began

    def name(job: Path) -> str:
        if job in early:
            return f"[pre] {early[job][0].stem}: pre-training {', '.join(early[job][1])}"
        return f"[{index[job.stem]}/{n}] {job.stem}"

    def order(job: Path) -> str:
        # a pre-training job right after the last notebook its notebook waits for besides it (04's: after 02), so
        # that notebook starts first and the job takes the next free slot, ahead of notebooks that need more
        if job in early:
            return max(needs[early[job][0].stem] - {job.stem})[:2] + PRETRAIN
        return job.name[:2]

    began = time.perf_counter()
    pending, done, failure = sorted([*notebooks, *early], key=order), set(), None
    running: dict[Future, Path] = {}

    def collect(future: Future) -> None:
        nonlocal failure
        nb = running.pop(future)
        kernels.pop(nb.stem, None)
        board.finished(nb.stem)
        status_file(paths, nb).unlink(missing_ok=True)
        try:
            wall = future.result()
        except Exception as err:     # a cell's error, a disk that filled, a kernel that died: the run stops here
            if not isinstance(err, NotebookFailed):
                err = NotebookFailed(nb.name, None, type(err).__name__, str(err), None)
            if failure is None:
                failure = err
                manifest["failed"] = {"notebook": err.notebook, "cell": err.cell,
                                      "error": f"{err.ename}: {err.evalue}"}
                write_json(paths.manifest, manifest)
            return
        done.add(nb.stem)
        finished_at = datetime.now(timezone.utc).isoformat()
        if nb in early:
            manifest.setdefault("pretrained", {})[nb.stem] = {"models": early[nb][1], "wall_s": round(wall, 2),
                                                              "finished_at": finished_at}
        else:
            manifest["notebooks"][nb.stem] = {"wall_s": round(wall, 2), "executed": str(paths.root / nb.name),
                                              "finished_at": finished_at}
        write_json(paths.manifest, manifest)
        log(f"{name(nb)} done in {wall:.1f} s")

    pool = ThreadPoolExecutor(max_workers=cfg.jobs)
    try:
        while pending or running:
            if failure is None:
                for nb in [nb for nb in pending if needs[nb.stem] <= done][:cfg.jobs - len(running)]:
                    pending.remove(nb)
                    log(f"{name(nb)} ...")
                    status_file(paths, nb).unlink(missing_ok=True)    # a killed run's last status is not this one's
                    board.started(nb.stem, status_file(paths, nb))
                    running[pool.submit(run_one, nb)] = nb
            if not running:
                break
            finished, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
            board.poll()
            for future in sorted(finished, key=lambda f: running[f].name):
                collect(future)
    except KeyboardInterrupt:
        stopped = sorted(nb.stem for nb in running.values())
        log(f"interrupted: stopping {', '.join(stopped) or 'nothing'} ...")
        _stop(running, kernels)
        failed_before = failure
        for future in [f for f in running if f.done()]:
            collect(future)              # a notebook that finished meanwhile is recorded as finished
        if failure is not failed_before:
            manifest.pop("failed", None)     # the interrupted cell's KeyboardInterrupt is no failure of the step
        stopped = [stem for stem in stopped if stem not in done]
        manifest["interrupted"] = {"notebooks": stopped, "at": datetime.now(timezone.utc).isoformat()}
        write_json(paths.manifest, manifest)
        raise RunInterrupted(f"interrupted: {', '.join(stopped) or 'no notebook'} stopped; finished: "
                             f"{', '.join(sorted(manifest['notebooks'])) or 'none'} "
                             f"({paths.manifest})") from None
    finally:
        board.clear()
        pool.shutdown(wait=not running, cancel_futures=True)     # a kernel that survived SIGKILL is not waited for
    if failure is not None:
        raise failure
    # notebook time summed (also over earlier partial runs), and this invocation's wall clock
    manifest["total_wall_s"] = round(sum(v["wall_s"] for v in manifest["notebooks"].values()), 2)
    manifest["run_wall_s"] = round(time.perf_counter() - began, 2)
    manifest["jobs"] = cfg.jobs
    manifest["input_hashes"] = input_hashes(profile, paths)
    write_json(paths.manifest, manifest)
    return manifest


class StatusBoard:
    """What the running notebooks are doing, on the terminal: on an interactive terminal one line rewritten in place
    (cleared before each log line), in a log (CI, `| tee`) a line when a notebook's task (a stage such as one
    fine-tune, a bar, a message) changes or, unchanged, every LOG_EVERY_S. `shown=False` (`--no-progress`) prints only the log lines."""

    def __init__(self, log: Callable[[str], None], shown: bool = True, stream=None):
        self._print, self.shown = log, shown
        self.stream = stream or sys.stdout
        self.live = shown and log is print and self.stream.isatty()
        self.files: dict[str, Path] = {}
        self.began: dict[str, float] = {}
        self.last: dict[str, tuple[str, float]] = {}     # stem -> (task printed, when) in log mode
        self._drawn = False

    def started(self, stem: str, status: Path) -> None:
        self.files[stem], self.began[stem] = status, time.monotonic()

    def finished(self, stem: str) -> None:
        for table in (self.files, self.began, self.last):
            table.pop(stem, None)

    def log(self, message: str) -> None:
        self.clear()
        self._print(message)

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def lines(self) -> dict[str, tuple[str, str]]:
        """Each running notebook's (task, line): what its kernel last reported as one line after the notebook's
        elapsed time, and the task that line is about (its outermost stage, else its bar or message)."""
        now, out = time.monotonic(), {}
        for stem, path in self.files.items():
            state = progress_files.read_status(path)
            task = (state or {}).get("stage") or (state or {}).get("task") or (state or {}).get("message") or ""
            line = progress_files.status_line(state) or "starting"
            out[stem] = (task, f"{progress_files._clock(now - self.began[stem])} {line}")
        return out

    def poll(self) -> None:
        if not self.shown or not self.files:
            return
        lines = self.lines()
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            text = " | ".join(f"{stem[:2]} {line}" for stem, (_, line) in lines.items())
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self._drawn = True
            return
        now = time.monotonic()
        for stem, (task, line) in lines.items():
            printed, when = self.last.get(stem, ("", 0.0))
            if task and (task != printed or now - when >= LOG_EVERY_S):
                self.last[stem] = (task, now)
                self._print(f"    {stem}: {line}")


def _stop(running: dict[Future, Path], kernels: dict[str, Any]) -> None:
    """Interrupt the running notebooks' kernels (SIGINT to each kernel's process group: its cell raises
    KeyboardInterrupt, its subprocesses stop) and wait for them; kill what is still running after
    INTERRUPT_GRACE_S, or at once on a second Ctrl-C."""
    _signal_kernels(kernels, signal.SIGINT)
    try:
        wait(running, timeout=INTERRUPT_GRACE_S)
    except KeyboardInterrupt:
        pass
    if not all(f.done() for f in running):
        _signal_kernels(kernels, signal.SIGKILL)
        wait(running, timeout=INTERRUPT_GRACE_S)


def _signal_kernels(kernels: dict[str, Any], signum: int) -> None:
    for km in list(kernels.values()):
        provisioner = getattr(km, "provisioner", None)
        pgid, pid = getattr(provisioner, "pgid", None), getattr(provisioner, "pid", None)
        try:
            if pgid:
                os.killpg(pgid, signum)
            elif pid:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass                         # already gone


def _dotted(cfg, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def status_file(paths: RunPaths, notebook: Path) -> Path:
    """Where `notebook`'s kernel writes its progress (`artcap_lib.progress`) while the runner runs it."""
    return paths.root / ".progress" / f"{notebook.stem}.json"


def _execute(notebook: Path, output: Path, kernel: str, profile: str, overrides: dict[str, Any], status: Path,
             on_kernel: Callable[[Any], None] = lambda km: None) -> None:
    """Run one notebook with papermill into `output`, atomically (see the module docstring); its kernel writes its
    progress into `status`; `on_kernel` gets its kernel manager as the kernel starts."""
    import papermill as pm
    from jupyter_client import AsyncKernelManager

    status.parent.mkdir(parents=True, exist_ok=True)

    class Manager(AsyncKernelManager):
        def __init__(self, *args, **kwargs):
            if os.name == "posix":       # local sockets (see the module docstring), named by an absolute path:
                # the default name is relative to each process's directory, and the kernel runs in notebooks/
                from jupyter_core.paths import jupyter_runtime_dir
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", os.path.join(jupyter_runtime_dir(), f"artcap-{uuid.uuid4().hex[:12]}"))
                os.makedirs(jupyter_runtime_dir(), exist_ok=True)
            super().__init__(*args, **kwargs)
            on_kernel(self)

        async def start_kernel(self, **kw):
            kw["env"] = {**(kw.get("env") or os.environ), progress_files.ENV: str(status)}
            return await super().start_kernel(**kw)

    partial = output.with_name(f".{output.stem}.running.ipynb")
    try:
        # the kernel's working directory is given to the kernel, not taken by chdir: papermill's `cwd` changes
        # this whole process's directory, under notebooks running side by side too
        pm.execute_notebook(str(notebook), str(partial), kernel_name=kernel,
                            parameters={"profile": str(profile), "overrides": overrides},
                            progress_bar=False, log_output=False, kernel_manager_class=Manager,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    except pm.PapermillExecutionError as err:
        _publish(partial, output)        # the executed copy with the error, written whole before papermill raised
        raise NotebookFailed(notebook.name, err.cell_index, err.ename, err.evalue, output) from None
    except BaseException:
        partial.unlink(missing_ok=True)  # possibly torn (a full disk): the previous executed copy stays
        raise
    _publish(partial, output)


def _publish(partial: Path, output: Path) -> None:
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, output)


def input_hashes(profile: str, paths: RunPaths) -> dict[str, str]:
    """SHA-256 of what the results depend on: the profile file and the run's data and caption files."""
    profile_file = profile_path(profile)
    files = [profile_file, paths.artworks, paths.splits, *sorted(paths.captions.glob("*.jsonl"))]
    return {str(f.relative_to(paths.root) if f.is_relative_to(paths.root) else f.name): sha256_file(f)
            for f in files if f.is_file()}
