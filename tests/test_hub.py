"""The class hub's whole loop, in a real browser: two students and the instructor on `python -m tools.hub serve`.

The test creates a Linux group and two student accounts with passwords (the hub's PAM authenticator logs them in),
an exchange and an nbgrader course folder of its own, and releases one assignment with nbgrader. In headless
Chromium each student logs in, fetches the assignment from the Assignments list, types code into a solution cell,
saves and submits; from their own terminal, reading solutions/, the repository's gradebook folder, the instructor's
course and the other student's home fails (their own files and the exchange read fine). The instructor collects
with `nbgrader collect`, grades `submitted/` with our grader (which reads nbgrader's timestamp.txt), releases the
feedback with `python -m tools.hub feedback`; each student fetches it in the Assignments list and their page shows
their own score, the one grades.csv gives. Every process and account is gone at the end (checked with psutil and
pwd). Skipped loudly without root (accounts), Chromium, or configurable-http-proxy (npm).
"""
import csv
import dataclasses
import grp
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import psutil
import pytest

from tests.conftest import REPO, solution_path
from tests.test_lab import CHROMIUM, LONG, free_port, launch_browser

ASSIGNMENT = "03_multi_head_attention"  # small, and grades fast
CELL = "split_heads"                    # the solution cell the students type into
WRONG = "def split_heads(x, num_heads):\n    return x\n"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="SKIPPED LOUDLY: Debian's chromium is not installed; the class hub was NOT tested"),
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="SKIPPED LOUDLY: the hub test creates Linux accounts and needs root; NOT tested"),
]


def proxy_or_skip():
    from tools import hub
    try:
        return hub.install_proxy()
    except hub.HubError as error:
        pytest.skip(f"SKIPPED LOUDLY: configurable-http-proxy could not be installed ({error}); "
                    "the class hub was NOT tested")


def students_python():
    """The interpreter the students' servers run: the environment's, or (where it lies in a folder closed to other
    users, such as root's pyenv) Debian's python3.11, through the hub's --python."""
    from tools import hub
    try:
        hub.check_runnable(Path(sys.executable))
        return []
    except hub.HubError:
        system = Path(f"/usr/bin/python3.{sys.version_info.minor}")
        if not system.exists():
            pytest.skip(f"SKIPPED LOUDLY: the students cannot run {sys.executable} and there is no {system}; "
                        "the class hub was NOT tested")
        return ["--python", str(system)]


def saved_sources(path):
    """The cells' sources of a notebook JupyterLab is saving; none while the file is being written (empty, or cut)."""
    try:
        return [c.source.strip() for c in nbformat.read(path, 4).cells]
    except (OSError, ValueError, nbformat.reader.NotJSONError):
        return []


def solution_code(grade_id):
    cell = next(c for c in nbformat.read(solution_path(ASSIGNMENT), 4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(line for line in cell.source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")) + "\n"


class Accounts:
    """A group and its student accounts with passwords, made here and removed by remove()."""

    def __init__(self, tag):
        self.group = f"hubt-{tag}"
        self.students = {f"hubt-{tag}-{n}": secrets.token_urlsafe(12) for n in ("a", "b")}
        subprocess.run(["groupadd", self.group], check=True)
        for name, password in self.students.items():
            subprocess.run(["useradd", "--create-home", "--gid", self.group, "--shell", "/bin/bash", name], check=True)
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)

    def processes(self):
        uids = {pwd.getpwnam(name).pw_uid for name in self.students if self.exists(name)}
        return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in uids]

    @staticmethod
    def exists(name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def remove(self):
        for process in self.processes():
            process.kill()
        psutil.wait_procs(self.processes(), timeout=10)
        for name in self.students:
            if self.exists(name):
                subprocess.run(["userdel", "--remove", name], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)


def modes(repo):
    return {p: stat.S_IMODE(p.lstat().st_mode) for p in [repo, *repo.iterdir()] if not p.is_symlink()}


def nbgrader(course, exchange, *args):
    done = subprocess.run([str(BIN / "nbgrader"), *args, f"--CourseDirectory.root={course}",
                           f"--CourseDirectory.release_directory={REPO / 'notebooks'}",
                           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}",
                           f"--Exchange.root={exchange}"],
                          cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"))
    assert done.returncode == 0, f"nbgrader {args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout + done.stderr


def wait_for_hub(url, process, log):
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/hub/api/", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the hub did not start; its log:\n{Path(log).read_text()[-4000:]}")
            time.sleep(0.5)


def stop_hub(process):
    """SIGTERM to the hub (it stops the students' servers and its proxy); then whatever is left of its session."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    left = [p for p in psutil.process_iter(["pid"]) if _session(p) == process.pid]
    for p in left:
        p.kill()
    if process.poll() is None:
        process.kill()
        process.wait()
    return [p.pid for p in left]


def _session(process):
    try:
        return os.getsid(process.pid)
    except OSError:
        return None


def open_assignments(page):
    page.get_by_text("Nbgrader", exact=True).click()
    page.get_by_text("Assignment List", exact=True).click()
    page.locator("#released_assignments_list").wait_for(timeout=LONG)


TERMINAL_JS = """async ([base, command]) => {
    const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
    const made = await fetch(base + 'api/terminals', {method: 'POST', headers: {'X-XSRFToken': xsrf}});
    const name = (await made.json()).name;
    const url = base.replace(/^http/, 'ws') + 'terminals/websocket/' + name;
    const text = await new Promise((resolve, reject) => {
        const socket = new WebSocket(url);
        let out = '';
        socket.onopen = () => socket.send(JSON.stringify(['stdin', command + '\\r']));
        socket.onmessage = (event) => {
            const message = JSON.parse(event.data);
            if (message[0] === 'stdout') { out += message[1]; }
            if (out.includes('END-OF-CHECKS')) { socket.close(); resolve(out); }
        };
        socket.onerror = () => reject('the terminal socket failed');
        setTimeout(() => resolve(out), 60000);
    });
    await fetch(base + 'api/terminals/' + name, {method: 'DELETE', headers: {'X-XSRFToken': xsrf}});
    return text;
}"""


def from_terminal(page, base, paths):
    """For each path, whether the student can read it (READ/DENIED), asked from the student's own terminal. The
    markers are quoted in the command, so that the terminal's echo of the command holds none of them."""
    checks = "; ".join(f"if {{ [ -d {p} ] && ls {p} || cat {p}; }} >/dev/null 2>&1; then echo 'R''={i}='; "
                       f"else echo 'D''={i}='; fi" for i, p in enumerate(paths))
    text = page.evaluate(TERMINAL_JS, [base, f"{checks}; echo 'END-OF''-CHECKS'"])
    return {str(p): ("READ" if f"R={i}=" in text else "DENIED" if f"D={i}=" in text else "NOT ASKED")
            for i, p in enumerate(paths)}


def test_the_class_hub_loop_in_a_browser(tmp_path):
    from playwright.sync_api import sync_playwright
    proxy_or_skip()
    tag = secrets.token_hex(3)
    before = modes(REPO)
    public = Path(tempfile.mkdtemp(prefix="hub-exchange-"))  # students must reach it: not under pytest's 0700 tmp
    public.chmod(0o755)
    exchange, course, out, state = public / "exchange", tmp_path / "course", tmp_path / "out", tmp_path / "state"
    course.mkdir()
    accounts = Accounts(tag)
    hub_process = None
    try:
        (alice, alice_pw), (bob, bob_pw) = accounts.students.items()
        exchange.mkdir(mode=0o1777)
        exchange.chmod(0o1777)
        nbgrader(course, exchange, "release_assignment", ASSIGNMENT)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "hub.log"
        python = students_python()
        hub_process = subprocess.Popen(
            [sys.executable, "-m", "tools.hub", "serve", "--ip", "127.0.0.1", "--port", str(port),
             "--hub-port", str(free_port()), "--proxy-api-port", str(free_port()), "--group", accounts.group,
             "--exchange", str(exchange), "--state", str(state), *python],
            cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_hub(url, hub_process, log)
        code = {alice: solution_code(CELL), bob: WRONG}

        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            pages = {}
            try:
                for name, password in accounts.students.items():
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    pages[name] = page
                    page.goto(f"{url}/hub/login", wait_until="domcontentloaded")
                    page.fill("#username_input", name)
                    page.fill("#password_input", password)
                    page.click("#login_submit")
                    page.wait_for_url(f"**/user/{name}/lab**", timeout=LONG)
                    page.wait_for_selector(".jp-LabShell", timeout=LONG)
                    assert page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").count() == 1
                    open_assignments(page)
                    released = page.locator("#released_assignments_list .list_item", has_text=ASSIGNMENT)
                    released.get_by_role("button", name="Fetch").click()
                    fetched = page.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first
                    fetched.wait_for(timeout=LONG)

                    # the student types into a solution cell, and saves
                    base = f"{url}/user/{name}/"
                    page.goto(f"{base}lab/tree/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", wait_until="domcontentloaded")
                    notebook = nbformat.read(REPO / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
                    index = next(i for i, c in enumerate(notebook.cells)
                                 if c.metadata.get("nbgrader", {}).get("grade_id") == CELL)
                    editor = page.locator(".jp-NotebookPanel .jp-Cell").nth(index).locator(".cm-content")
                    editor.wait_for(timeout=LONG)
                    editor.click()
                    page.keyboard.press("Control+a")
                    page.keyboard.press("Delete")
                    page.keyboard.insert_text(code[name])
                    page.keyboard.press("Control+s")
                    home = Path(pwd.getpwnam(name).pw_dir)
                    saved = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
                    deadline = time.monotonic() + 60
                    while code[name].strip() not in saved_sources(saved):
                        assert time.monotonic() < deadline, f"{name}'s edit never reached {saved}"
                        time.sleep(0.5)
                    assert stat.S_IMODE(home.stat().st_mode) == 0o700, "the hub left a student's home open"

                    open_assignments(page)
                    fetched = page.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first
                    fetched.get_by_role("button", name="Submit").click()
                    page.locator("#submitted_assignments_list .list_item").first.wait_for(timeout=LONG)

                # what a student's server can read: their own work and the exchange, never the course's secrets
                other = Path(pwd.getpwnam(bob).pw_dir) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
                own = Path(pwd.getpwnam(alice).pw_dir) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
                secret = [REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", REPO / "solutions",
                          REPO / "_build", REPO / "nbgrader_config.py", course, other]
                readable = [own, exchange / "attention-course" / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                            Path(python[1]) if python else BIN / "python"]
                seen = from_terminal(pages[alice], f"{url}/user/{alice}/", [*secret, *readable])
                assert {str(p): seen[str(p)] for p in readable} == {str(p): "READ" for p in readable}, seen
                assert {str(p): seen[str(p)] for p in secret} == {str(p): "DENIED" for p in secret}, seen

                # the instructor: collect, grade with our grader, release the feedback
                nbgrader(course, exchange, "collect", ASSIGNMENT)
                for name in accounts.students:
                    submitted = course / "submitted" / name / ASSIGNMENT
                    assert (submitted / f"{ASSIGNMENT}.ipynb").is_file() and (submitted / "timestamp.txt").is_file()
                graded = subprocess.run([sys.executable, "-m", "autograder", "grade", str(course / "submitted"),
                                         "--out", str(out), "--workers", "1"],
                                        cwd=REPO, capture_output=True, text=True)
                assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
                with open(out / "grades.csv") as f:
                    grades = {row["student_id"]: row for row in csv.DictReader(f)}
                assert sorted(grades) == sorted(accounts.students)
                assert all(row["submitted_at"] for row in grades.values()), "timestamp.txt was not read"
                assert float(grades[alice]["final_score"]) > float(grades[bob]["final_score"]), grades
                released = subprocess.run([sys.executable, "-m", "tools.hub", "feedback", ASSIGNMENT, "--out",
                                           str(out), "--course", str(course), "--exchange", str(exchange)],
                                          cwd=REPO, capture_output=True, text=True)
                assert released.returncode == 0, released.stdout + released.stderr
                assert released.stdout.split("\n")[:2] == [f"{n}: released" for n in sorted(accounts.students)]

                # each student fetches their feedback in the Assignments list and reads their own score
                for name, page in pages.items():
                    page.goto(f"{url}/user/{name}/lab", wait_until="domcontentloaded")
                    page.wait_for_selector(".jp-LabShell", timeout=LONG)
                    open_assignments(page)
                    submitted = page.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first
                    submitted.get_by_role("button", name="Fetch Feedback").click()
                    page.get_by_text("(view feedback)").first.wait_for(timeout=LONG)
                    pages_of = sorted((Path(pwd.getpwnam(name).pw_dir) / ASSIGNMENT / "feedback").glob("*/*.html"))
                    assert len(pages_of) == 1, pages_of
                    row = grades[name]
                    expected = f"Score: {float(row['final_score']):g} / {float(row['max_score']):g}"
                    assert expected in pages_of[0].read_text(), f"{name}'s feedback does not say {expected}"
            finally:
                browser.close()
    finally:
        left = stop_hub(hub_process) if hub_process is not None else []
        psutil.wait_procs(accounts.processes(), timeout=20)   # the students' servers end on the hub's SIGTERM
        processes = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in accounts.processes() if p.is_running()]
        accounts.remove()
        for path, mode in before.items():
            path.chmod(mode)
        shutil.rmtree(public, ignore_errors=True)
    assert not left, f"processes of the hub outlived it: {left}"
    assert not processes, f"the students' processes outlived the hub: {processes}"
    assert not any(Accounts.exists(n) for n in accounts.students), "a student account outlived the test"
    with pytest.raises(KeyError):
        grp.getgrnam(accounts.group)


@pytest.mark.unit
def test_the_hub_locks_the_repository_but_what_students_run():
    from tools import hub
    public = Path(tempfile.mkdtemp(prefix="hub-lock-"))  # its parents open to others, unlike pytest's tmp_path
    public.chmod(0o755)
    try:
        _check_the_lock(hub, public / "repo")
    finally:
        shutil.rmtree(public)


def _check_the_lock(hub, repo):
    for name in ("solutions", ".venv", "jupyter", "_build"):
        (repo / name).mkdir(parents=True, mode=0o755)
    (repo / "nbgrader_config.py").write_text("")
    (repo / "nbgrader_config.py").chmod(0o644)
    changed = hub.lock_repository(repo)
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [repo, *repo.iterdir()]}
    assert mode == {"repo": 0o711, "solutions": 0o700, "_build": 0o700, "nbgrader_config.py": 0o600,
                    ".venv": 0o755, "jupyter": 0o755}
    assert sorted(p.name for p in changed) == ["_build", "nbgrader_config.py", "repo", "solutions"]
    assert hub.lock_repository(repo) == []  # a second start changes nothing
    (repo / ".venv").chmod(0o700)
    with pytest.raises(hub.HubError, match="by other users"):
        hub.lock_repository(repo)


@pytest.mark.unit
def test_the_hub_configuration_runs_students_as_themselves(tmp_path):
    from tools import hub
    settings = hub.HubSettings("127.0.0.1", 8000, 8081, 8001, "ml101", tmp_path / "exchange", tmp_path / "state",
                               None, Path(sys.executable))
    text = hub.hub_config(settings, Path("/proxy"))
    assert "c.LocalAuthenticator.allowed_groups = {'ml101'}" in text
    assert "'-m', 'jupyterhub.singleuser'" in text and "PYTHONPATH" not in text
    compile(text, "jupyterhub_config.py", "exec")
    other = hub.hub_config(dataclasses.replace(settings, python=Path("/usr/bin/python3.11")), Path("/proxy"))
    assert "'/usr/bin/python3.11', '-m', 'jupyterhub.singleuser'" in other and "PYTHONPATH" in other


@pytest.mark.unit
def test_feedback_of_a_student_without_a_collected_submission_is_not_released(tmp_path):
    from tools import hub
    out, course = tmp_path / "out", tmp_path / "course"
    with pytest.raises(hub.HubError, match="holds no feedback page"):
        hub.release_feedback(ASSIGNMENT, out, course, tmp_path / "exchange")
    page = out / "feedback" / "ghost" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>Score: 1 / 26</p>")
    assert hub.release_feedback(ASSIGNMENT, out, course, tmp_path / "exchange") == [
        hub.FeedbackPage("ghost", hub.Released.NO_SUBMISSION)]
    assert not (course / "feedback").exists()
