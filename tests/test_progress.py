"""Progress where the user is looking: bars in a notebook, the running notebook's task on `artcap reproduce`'s
terminal, and no kernel chatter (the unencrypted-TCP warning) reaching it."""
import io
import json
import subprocess
import sys

from artcap_lib import progress, runner
from test_runner import _project_with


def test_under_the_runner_a_bar_writes_its_state_for_the_terminal_and_no_tqdm_bar(tmp_path, monkeypatch):
    status = tmp_path / "status.json"
    monkeypatch.setenv(progress.ENV, str(status))
    monkeypatch.setattr(progress, "REFRESH_S", 0.0)
    with progress.stage("fine-tuning BLIP on human"):
        with progress.Bar(40, "epoch 2/5", unit="batch") as bar:
            assert bar._tqdm is None                       # the executed notebook gets no bar text
            bar.update(13)
            state = progress.read_status(status)
    assert state["stage"] == "fine-tuning BLIP on human" and (state["done"], state["total"]) == (13, 40)
    line = progress.status_line(state)
    assert line.startswith("fine-tuning BLIP on human · epoch 2/5: 13/40 batch, ") and "batch/s, ETA " in line
    progress.say("scoring human")
    assert progress.status_line(progress.read_status(status)) == "scoring human"


def test_outside_the_runner_a_bar_is_a_tqdm_bar_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with progress.Bar(3, "captioning (x)", unit="img") as bar:
        from tqdm.auto import tqdm
        assert isinstance(bar._tqdm, tqdm)                 # tqdm.auto: a widget in JupyterLab
        bar.update(3)
    assert list(tmp_path.iterdir()) == []


def test_a_hidden_bar_reports_nowhere(tmp_path, monkeypatch):
    status = tmp_path / "status.json"
    monkeypatch.setenv(progress.ENV, str(status))
    progress.Bar(5, "another rank's bar", show=False).update(5)
    assert not status.exists()


def _board(tmp_path, live: bool):
    out = io.StringIO()
    out.isatty = lambda: live
    lines: list[str] = []
    board = runner.StatusBoard(print if live else lines.append, stream=out)
    if live:
        board.live = True             # `print` writes to sys.stdout; the test reads the stream it was given
    status = tmp_path / "02.json"
    board.started("02_llava_captioning", status)
    return board, out, lines, status


def _write(status, **state):
    status.write_text(json.dumps(state))


def test_the_board_logs_a_line_per_task_change_not_per_update(tmp_path, monkeypatch):
    board, _, lines, status = _board(tmp_path, live=False)
    board.poll()
    assert lines == []                                    # nothing reported yet: no "starting" line in a log
    for done in (1, 2, 3):
        _write(status, task="captioning (pocket-llava)", done=done, total=10, unit="img", rate=2.0, eta_s=4)
        board.poll()
    for epoch in (1, 2):            # a bar inside a stage: the stage is the task (not one line per epoch)
        _write(status, stage="fine-tuning BLIP on human", task=f"epoch {epoch}/4", done=0, total=15, unit="batch")
        board.poll()
    assert len(lines) == 2, lines
    assert "02_llava_captioning:" in lines[0] and "captioning (pocket-llava): 1/10 img, 2 img/s, ETA 0:04" in lines[0]
    assert "fine-tuning BLIP on human · epoch 1/4: 0/15 batch" in lines[1]
    monkeypatch.setattr(runner, "LOG_EVERY_S", 0)         # unchanged for LOG_EVERY_S: said again
    board.poll()
    assert len(lines) == 3 and "epoch 2/4" in lines[2]


def test_on_a_terminal_the_board_rewrites_one_line_and_clears_it_before_a_log_line(tmp_path, capsys):
    board, out, _, status = _board(tmp_path, live=True)
    _write(status, task="epoch 1/3", done=5, total=8, unit="batch")
    board.poll()
    assert out.getvalue().startswith("\r\x1b[K02 0:00 epoch 1/3: 5/8 batch")
    board.log("[2/6] 02_llava_captioning done in 3.0 s")
    assert out.getvalue().endswith("\r\x1b[K")
    assert capsys.readouterr().out == "[2/6] 02_llava_captioning done in 3.0 s\n"


def test_reproduce_shows_the_running_notebooks_task_and_not_the_kernels_tcp_warning(tmp_path):
    code = ("import time\nfrom artcap_lib import progress\n"
            "progress.say('loading the pocket captioner')\ntime.sleep(1.5)\n"
            "with progress.Bar(8, 'captioning (pocket-llava)', unit='img') as bar:\n"
            "    for _ in range(8):\n        time.sleep(0.3)\n        bar.update()\n")
    env = _project_with(tmp_path, {"01_caption": code})
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "artcap_lib.cli", "reproduce", "--set", f"run_dir={run_dir}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = [line for line in done.stdout.splitlines() if line.strip().startswith("01_caption:")]
    assert any("loading the pocket captioner" in line for line in shown), done.stdout
    assert any("captioning (pocket-llava): " in line and "/8 img" in line for line in shown), done.stdout
    assert "without encryption" not in done.stderr + done.stdout
    assert not (run_dir / ".progress" / "01_caption.json").exists()     # removed once the notebook finished
