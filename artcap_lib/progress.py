"""Progress of a long step, shown where the user is looking.

In JupyterLab (or any Python session) a step's `Bar` is a tqdm bar (`tqdm.auto`: a widget in Lab, text in a
terminal). Under `artcap reproduce` the notebooks run headless, so a bar there would only fill the executed copy;
instead the runner gives each notebook's kernel a status file (environment variable `ARTCAP_PROGRESS_FILE`) and the
bars, `say` messages and `stage`s of that kernel write their current state into it as one JSON object, replaced
atomically at most every REFRESH_S. The runner reads it (`read_status`) and prints `status_line` on the terminal:
images captioned of total with rate and ETA, the epoch and step of a fine-tune, the metric being computed.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

ENV = "ARTCAP_PROGRESS_FILE"
REFRESH_S = 0.5          # a status file is rewritten at most this often (a bar may update every few milliseconds)

_stages: list[str] = []  # what the kernel is doing, outermost first ("fine-tuning BLIP on human", "epoch 2/5")
_last_write = 0.0


def _status_file() -> str | None:
    return os.environ.get(ENV) or None


def _publish(state: dict[str, Any], force: bool = False) -> None:
    global _last_write
    path = _status_file()
    if path is None:
        return
    now = time.monotonic()
    if not force and now - _last_write < REFRESH_S:
        return
    _last_write = now
    state = {"stage": " · ".join(_stages), **state, "at": time.time()}
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, path)
    except OSError:
        pass             # progress is a courtesy: a full disk or a removed run directory must not fail the step


def under_runner() -> bool:
    """True when `artcap reproduce` is reading this process's progress (bars then go to the terminal, not here)."""
    return _status_file() is not None


def say(message: str) -> None:
    """A line for the reader (printed) that is also the step's current status on the runner's terminal."""
    print(message, flush=True)
    _publish({"message": message}, force=True)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name what the enclosed code does; bars and messages inside are shown under it."""
    _stages.append(name)
    _publish({}, force=True)
    try:
        yield
    finally:
        _stages.pop()


class Bar:
    """Counts `total` units of work (`update(n)`); when `show`, a tqdm bar, or under the runner its status line. Usable as a context manager; `note` adds a short text (e.g. what is still running);
    `leave=False` removes the tqdm bar once closed (one per epoch would pile up)."""

    def __init__(self, total: int, desc: str, unit: str = "it", show: bool = True, leave: bool = True):
        self.total, self.desc, self.unit, self.n, self.note, self.show = int(total), desc, unit, 0, "", show
        self._start = time.monotonic()
        self._tqdm = None
        if show and not under_runner():
            from tqdm.auto import tqdm
            self._tqdm = tqdm(total=self.total, desc=desc, unit=unit, leave=leave)
        self._write(force=True)

    def update(self, n: int = 1, note: str | None = None) -> None:
        self.n += n
        if note is not None:
            self.note = note
            if self._tqdm is not None:
                self._tqdm.set_postfix_str(note, refresh=False)
        if self._tqdm is not None:
            self._tqdm.update(n)
        self._write(force=self.n >= self.total)

    def state(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self._start
        rate = self.n / elapsed if elapsed > 0 and self.n else None
        eta = (self.total - self.n) / rate if rate else None
        return {"task": self.desc, "done": self.n, "total": self.total, "unit": self.unit,
                "rate": rate, "eta_s": eta, "note": self.note}

    def _write(self, force: bool = False) -> None:
        if self.show:    # a bar not shown (another rank's, a quiet call's) reports nowhere
            _publish(self.state(), force)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ the runner's side
def read_status(path: str | os.PathLike) -> dict[str, Any] | None:
    """The last state a kernel wrote, or None (not written yet, or being replaced this instant)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def status_line(state: dict[str, Any] | None) -> str:
    """One line for the terminal: 'fine-tuning BLIP on human · epoch 2/5: 13/40 steps, 2.1 steps/s, ETA 0:13'."""
    if not state:
        return ""
    parts = [p for p in (state.get("stage"), state.get("task") or state.get("message")) if p]
    text = " · ".join(parts)
    if state.get("total"):
        unit = state.get("unit") or "it"
        text += f": {state['done']}/{state['total']} {unit}"
        if state.get("rate"):
            text += f", {state['rate']:.3g} {unit}/s"
        if state.get("eta_s") is not None and state["done"] < state["total"]:
            text += f", ETA {_clock(state['eta_s'])}"
    if state.get("note"):
        text += f" ({state['note']})"
    return text


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
