"""The student's path in JupyterLab, in a real browser (Debian's headless Chromium, driven by Playwright).

`python -m tools.lab student` (what `make lab` runs) starts JupyterLab on a temporary workspace, on a
free port with a token (JUPYTER_PORT, JUPYTER_TOKEN, JUPYTER_PORT_RETRIES=0, as a person or a cloud
notebook would set them). In the browser: a notebook filled in with the solution (written through
Jupyter's contents API) is run with Run All, then Validate says it passes; a stub left as released
gets the failing cell. The student's JupyterLab has no instructor tool (Create Assignment, Formgrader,
course list, nbgrader's menu) and no pop-up (the news question), while `python -m tools.lab instructor`
(`make lab-instructor`) serves the formgrader. No file of the repository changes, and the servers and
their kernels are gone at the end.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import psutil
import pytest

from tests.conftest import REPO, filled_notebook, release_path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASSIGNMENT = "01_attention"          # filled in with the solution: Validate must succeed
STUB = "03_multi_head_attention"     # left as released: Validate must name a failing cell
INSTRUCTOR_PLUGINS = ["@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                      "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:menu"]
INSTRUCTOR_COMMANDS = ["nbgrader:open-create-assignment", "nbgrader:open-formgrader", "nbgrader:open-course-list"]
LONG = 90_000  # ms: generous waits, for a loaded 2-core machine

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="SKIPPED LOUDLY: Debian's chromium is not installed and `make test` could not install it "
           "(apt-get install chromium); the student's JupyterLab was NOT checked in a browser")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def repository_state():
    """The bytes of every file git tracks, and the list of untracked files it does not ignore."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    digest = hashlib.sha256()
    for name in sorted(tracked.decode().split("\0")):
        path = REPO / name
        if name and path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout
    return digest.hexdigest(), sorted(line for line in untracked.splitlines() if line.startswith("??"))


class Lab:
    """A JupyterLab server started by tools.lab, reached over HTTP with its token."""

    def __init__(self, view, work, log):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, JUPYTER_PORT=str(self.port), JUPYTER_TOKEN=self.token, JUPYTER_PORT_RETRIES="0")
        self.log = log
        # --expose-app-in-browser lets the test ask JupyterLab which plugins and commands exist
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.lab", view, "--work", str(work), "--",
             "--no-browser", "--ServerApp.ip=127.0.0.1", "--LabApp.expose_app_in_browser=True"],
            cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.request("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"JupyterLab ({view}) did not start; its log:\n{Path(log).read_text()[-3000:]}")
                time.sleep(0.3)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)

    def status(self, path):
        try:
            return self.request("GET", path)[0]
        except urllib.error.HTTPError as error:
            return error.code

    def stop(self):
        """Shut the kernels and the server down; kill whatever of them is left; return what was left."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        try:
            for kernel in self.request("GET", "/api/kernels")[1]:
                self.request("DELETE", f"/api/kernels/{kernel['id']}")
            self.request("POST", "/api/shutdown")
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        gone, alive = psutil.wait_procs(children, timeout=15)
        for process in alive:
            process.kill()
        return [p.pid for p in alive]


@contextmanager
def lab(view, work, log):
    server = Lab(view, work, log)
    try:
        yield server
    finally:
        left = server.stop()
        assert not left, f"processes of the {view} JupyterLab outlived it: {left}"


def launch_browser(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"])


def open_notebook(page, server, path):
    page.goto(f"{server.url}/lab/tree/{path}?token={server.token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=LONG)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=LONG)
    # the kernel is ready when the toolbar's kernel status says so
    page.wait_for_function(
        "(path) => { const w = window.jupyterapp.shell.currentWidget; return w && w.context && w.context.path === path"
        " && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }", arg=path, timeout=LONG)


def current(page):
    """The notebook panel of the current tab (other notebooks may be open, restored by JupyterLab)."""
    return page.locator("#" + page.evaluate("() => window.jupyterapp.shell.currentWidget.id"))


def run_all(page, notebook):
    """Run → Run All Cells, then wait until every code cell has run."""
    page.get_by_text("Run", exact=True).first.click()
    page.get_by_text("Run All Cells", exact=True).click()
    code_cells = sum(c.cell_type == "code" for c in notebook.cells)
    panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    page.wait_for_function(
        """([id, n]) => {
            const prompts = [...document.querySelectorAll('#' + id + ' .jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());
            return prompts.length === n && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
        }""", arg=[panel, code_cells], timeout=LONG)


def validate(page):
    """Press Validate; return the text of the dialog it opens (and close it)."""
    current(page).locator(".jp-Toolbar").get_by_text("Validate", exact=True).click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=LONG)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog').textContent.includes('Validating')",
                           timeout=LONG)
    text = dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=LONG)
    return text


def visible_problems(page):
    """Instructor tools and pop-ups that the student's JupyterLab shows (an empty list is right)."""
    problems = []
    plugins = page.evaluate("(ids) => ids.filter(id => window.jupyterapp.hasPlugin(id))", INSTRUCTOR_PLUGINS)
    problems += [f"plugin {p} is loaded" for p in plugins]
    commands = page.evaluate("(ids) => ids.filter(id => window.jupyterapp.commands.hasCommand(id))",
                             INSTRUCTOR_COMMANDS)
    problems += [f"command {c} exists" for c in commands]
    menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    problems += [f"menu {m}" for m in menus if "nbgrader" in m.lower()]
    text = page.locator("body").inner_text().lower()
    problems += [f"the page shows {word!r}" for word in ("create assignment", "formgrader", "courses")
                 if word in text]
    problems += [f"pop-up: {t.strip()[:100]}" for t in page.locator(".jp-Dialog, .Toastify__toast").all_inner_texts()]
    return problems


def test_the_student_validates_in_jupyterlab_without_instructor_tools(tmp_path):
    from playwright.sync_api import sync_playwright
    before = repository_state()
    work = tmp_path / "work"
    with lab("student", work, tmp_path / "student.log") as server, sync_playwright() as playwright:
        assert (work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file(), "make lab did not copy the notebooks in"
        assert server.status("/formgrader") == 404, "the formgrader server extension runs for the student"
        assert server.status("/formgraders") == 404, "the course list server extension runs for the student"
        notebook = filled_notebook(ASSIGNMENT)
        server.request("PUT", f"/api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
                       {"type": "notebook", "format": "json", "content": notebook})
        browser = launch_browser(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            open_notebook(page, server, f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
            assert page.evaluate("() => window.jupyterapp.hasPlugin('@jupyter/nbgrader:validate-assignment')")
            page.wait_for_timeout(3000)  # the news question, when enabled, shows a moment after start
            assert visible_problems(page) == []

            run_all(page, notebook)
            failing = current(page).locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
            assert not [t for t in failing if "Error" in t], f"a cell fails after Run All: {failing[:2]}"
            assert "Success! Your notebook passes all the tests." in validate(page)

            open_notebook(page, server, f"{STUB}/{STUB}.ipynb")
            report = validate(page)
            assert "Success" not in report and "NotImplementedError" in report, report[:500]
            assert re.search(r"The following cells? failed|VALIDATION FAILED", report), report[:500]
            first_test = next(c for c in nbformat.read(release_path(STUB), 4).cells
                              if c.metadata.get("nbgrader", {}).get("grade"))
            assert first_test.source.splitlines()[0] in report, "the dialog does not show the failing cell"

            # The selectors above can see a pop-up: a notification raised on purpose shows as one.
            page.evaluate("() => window.jupyterapp.commands.execute('apputils:notify', "
                          "{message: 'a test notification', type: 'info', options: {autoClose: false}})")
            page.locator(".Toastify__toast").first.wait_for(timeout=LONG)
            assert any("a test notification" in p for p in visible_problems(page))
            assert errors == [], f"script errors in JupyterLab: {errors}"
        finally:
            browser.close()
    assert json.loads((work / ".release.json").read_text()), "the workspace record is missing"
    assert repository_state() == before, "running the student's JupyterLab changed the repository"


def test_the_instructor_view_serves_the_formgrader(tmp_path):
    before = repository_state()
    with lab("instructor", tmp_path / "unused", tmp_path / "instructor.log") as server:
        assert server.status("/formgrader") == 200, "the formgrader does not run in make lab-instructor"
        _, page = server.request("GET", "/lab")
        disabled = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                        page, re.S).group(1)).get("disabledExtensions", [])
        assert not set(INSTRUCTOR_PLUGINS) & set(disabled), disabled
    assert repository_state() == before, "running the instructor's JupyterLab changed the repository"
