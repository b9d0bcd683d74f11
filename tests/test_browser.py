"""JupyterLab in a real browser: notebook 04 runs, and its sampling lab's p slider changes the text.

The test does what a student does. It starts JupyterLab on a free localhost port, opens
notebook 04 in Debian's Chromium (headless, driven by Playwright), runs all cells from the Run
menu on the quick preset, moves the p slider with the keyboard, and keeps a screenshot.
"""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NOTEBOOK = "notebooks/04_nucleus_sampling.ipynb"
SCREENSHOT = ROOT / ".pytest_cache" / "browser" / "04_nucleus_sampling_lab.png"
RUN_ALL_TIMEOUT_MS = 120_000

# JupyterLab settings for the test's server: no autosave, so the run never writes outputs into
# the committed notebook; every cell kept in the page; the notebook's kernel started without
# asking; no news or update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# JupyterLab renders an exception like a stderr stream, so an error is told apart by its text:
# IPython's traceback header, or the closing `SomethingError: message` line.
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b", re.MULTILINE)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium not found at {CHROMIUM}: "
                       "`apt-get install chromium chromium-driver` (.ci/run does this) to run the browser test"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_lab_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def wait_until_serving(server: subprocess.Popen, status_url: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(status_url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab_url(tmp_path):
    """JupyterLab serving the bundle on the quick preset; the URL that opens notebook 04."""
    port, token = free_port(), secrets.token_hex(16)
    write_lab_settings(tmp_path / "lab-settings")
    env = {**os.environ, "PICOLLM_PRESET": "quick", "PICOLLM_ARTEFACTS_DIR": str(tmp_path / "artefacts"),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    log = tmp_path / "jupyterlab.log"
    # --allow-root: CI containers run as root; it changes nothing for anyone else.
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               "--LabApp.expose_app_in_browser=True",
               f"--ServerApp.root_dir={ROOT}"]
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(server, f"{base}/api/status?token={token}", log)
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def run_all_cells(page) -> None:
    """Run All Cells (the command behind Run > Run All Cells) until every code cell has run or one raised.

    Under load (the suite run on two workers) a Run All has once run only the first cell, the kernel still
    starting: then it is sent again, once.
    """
    for _ in range(2):
        send_run_all(page)
        wait_until_idle(page)
        if not cells_not_run(page) or error_outputs(page):
            return


def send_run_all(page) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')")
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the command acts on the notebook in focus
    not_run = len(cells_not_run(page))
    for _ in range(3):  # a command sent while the page still settles can be dropped: send it again
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(
                """notRun => {
                    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                        .map(prompt => prompt.textContent.trim());
                    return prompts.includes('[*]:') || prompts.filter(prompt => prompt === '[ ]:').length < notRun;
                }""", arg=not_run, timeout=15_000)
            return
        except PlaywrightTimeout:
            continue


def wait_until_idle(page) -> None:
    """Until no cell is queued or running and the kernel is idle."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                .map(prompt => prompt.textContent.trim());
            const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return prompts.length > 0 && /^\\[\\d+\\]:$/.test(prompts[0]) && !prompts.includes('[*]:')
                && indicator && indicator.dataset.status === 'idle';
        }""",
        timeout=RUN_ALL_TIMEOUT_MS,
    )


def cells_not_run(page) -> list[int]:
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    return [number for number, prompt in enumerate(prompts, start=1) if not re.fullmatch(r"\[\d+\]:", prompt.strip())]


def error_outputs(page) -> list[str]:
    outputs = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    return [text for text in outputs if ERROR_TEXT.search(text)]


def lab_text(page) -> str:
    """The text the sampling lab shows (a text area's value, else the element's text)."""
    return page.locator(".picollm-lab-text").first.evaluate(
        "element => (element.querySelector('textarea, input') || {}).value ?? element.innerText")


def test_lab_runs_in_chromium_and_the_p_slider_resamples(lab_url, page, capsys):
    committed_notebook = (ROOT / NOTEBOOK).read_bytes()
    started = time.perf_counter()
    try:
        page.goto(lab_url)
        page.wait_for_selector(".jp-Notebook .jp-CodeCell, .jp-Dialog", timeout=60_000)
        assert not page.locator(".jp-Dialog").count(), f"JupyterLab says: {page.locator('.jp-Dialog').inner_text()}"
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
        run_all_cells(page)
        assert not error_outputs(page), f"a cell raised:\n{error_outputs(page)[0][-2000:]}"
        assert not cells_not_run(page), f"code cells {cells_not_run(page)} did not run"

        handle = page.locator(".picollm-lab-p .noUi-handle").first
        handle.scroll_into_view_if_needed()
        page.wait_for_function("() => document.querySelector('.picollm-lab-text') !== null")
        text_before, p_before = lab_text(page), handle.get_attribute("aria-valuenow")
        assert text_before.strip(), "the lab shows no text before the slider moves"
        # From wherever it starts, send p to the opposite end of its range.
        handle.press("End" if p_before == handle.get_attribute("aria-valuemin") else "Home")
        page.wait_for_function(
            """before => {
                const box = document.querySelector('.picollm-lab-text');
                const field = box.querySelector('textarea, input');
                return (field ? field.value : box.innerText) !== before;
            }""",
            arg=text_before, timeout=30_000,
        )
        assert handle.get_attribute("aria-valuenow") != p_before, "the p slider did not move"
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=30_000)  # chart redrawn
        assert lab_text(page).strip(), "the lab shows no text after the slider moved"
    finally:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        with capsys.disabled():
            print(f"\nbrowser test: {time.perf_counter() - started:.1f} s in Chromium; screenshot {SCREENSHOT}")
    assert (ROOT / NOTEBOOK).read_bytes() == committed_notebook, "the browser run wrote into the committed notebook"
