"""End to end in a browser: JupyterLab (this .venv, the project's `artcap` kernel) serves notebook 06, headless
Chromium runs it on the demo profile through the UI (Run > Run All Cells), a figure must render, and the run
explorer the notebook ends with is clicked through (tests/explore_lab.py).

Needs Debian's chromium and chromedriver (scripts/setup.sh installs them when it runs as root) and selenium;
skipped with the reason otherwise. The run directory is a small demo run (step 01 for real, steps 02-05 in
their documented schemas: tests/report_rundir.py); the notebook is a copy whose parameters cell points at it,
as a user would edit it, so the committed notebook is never touched.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from artcap_lib.config import NOTEBOOKS_DIR
from artcap_lib.runner import KERNEL_NAME, ensure_kernel
from explore_lab import click_through_explorer
from report_rundir import make_run_dir

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
NOTEBOOK = "06_paper_tables_figures.ipynb"
# what Chromium needs on this kind of machine: no sandbox (root, containers), no GPU, nothing reaching out
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")

pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                                       "/usr/bin/chromedriver): scripts/setup.sh installs them as root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with a token, rooted in a temporary folder holding notebook 06."""
    tmp = tmp_path_factory.mktemp("lab")
    overrides = make_run_dir(tmp / "demo")
    root = tmp / "root"
    root.mkdir()
    nb = nbformat.read(NOTEBOOKS_DIR / NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f'profile = "demo"\noverrides = {overrides!r}\n'
    nbformat.write(nb, root / NOTEBOOK)
    ensure_kernel()
    port, token = _free_port(), secrets.token_hex(16)
    state = tmp / "jupyter"       # settings, workspaces, runtime files of this server only
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(state / "ws"),
           "HF_HUB_OFFLINE": "1"}
    log = open(tmp / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited ({server.returncode}):\n{(tmp / 'jupyterlab.log').read_text()}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer:\n{(tmp / 'jupyterlab.log').read_text()}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "root": root, "profile_dir": tmp}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser(lab):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = lab["profile_dir"] / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def test_notebook_06_runs_in_jupyterlab_and_renders_figures(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def body_text(driver):
        return driver.find_element(By.TAG_NAME, "body").text

    wait = WebDriverWait(browser, 240, poll_frequency=0.5)
    browser.get(f"{lab['url']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell"))
    # the notebook names the project's kernel; JupyterLab starts it without asking
    wait.until(lambda d: f"{KERNEL_NAME} (" in body_text(d) and "| Idle" in body_text(d))
    browser.find_element(By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[text()='Run']]").click()
    browser.find_element(By.XPATH, "//li[contains(@class,'lm-Menu-item')][.//div[text()='Run All Cells']]").click()

    def prompts(driver):
        return [p.text.strip("[]: ") for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
    # Run All queues every cell ([*]); it is over when none is queued (a failing cell stops the rest: [ ])
    wait.until(lambda d: prompts(d) and prompts(d)[0].isdigit() and "*" not in prompts(d))
    stderr = [o.text for o in browser.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
    assert all(p.isdigit() for p in prompts(browser)), (prompts(browser), stderr)
    images = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert images, body_text(browser)[-3000:]
    # decoded and laid out, not a broken image
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 100", img)
               for img in images)
    assert "Table 2" in body_text(browser) and "human-ft" in body_text(browser)

    # save from the UI, then read what the browser ran: no cell failed, the figures are PNG outputs
    browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook").click()
    browser.find_element(By.CSS_SELECTOR, "body").send_keys(Keys.CONTROL, "s")
    path = lab["root"] / NOTEBOOK

    def saved(_):
        try:
            nb = nbformat.read(path, as_version=4)
        except nbformat.reader.NotJSONError:       # read while Lab writes it (the explorer's widget state is large)
            return None
        return nb if all(c.get("execution_count") for c in nb.cells if c.cell_type == "code") else None
    nb = wait.until(saved)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5
    # the notebook ends with the run explorer: click through a painting and a query
    click_through_explorer(browser, lab["profile_dir"] / "demo", WebDriverWait(browser, 60, poll_frequency=0.5))
