"""Hostile and broken submissions (tests/hostile/) graded in one batch with honest ones: the batch
finishes and exits 0, honest students get exactly their marks, no attack gains points (or it is
flagged), broken runs are listed with a reason, and no feedback page shows a hidden test."""
import json
import socket
import threading

import nbformat
import pytest

from autograder import feedback
from autograder.outputs import kernel_output_path
from tests.conftest import finished, read_csv, solution_path, start_grader, with_cell_replaced
from tests.mutants import catalogue
from tests.hostile import ASSIGNMENT, CASES, FULL, MARKDOWN_MESSAGE, build
from tests.hostile.inputs import PLANTED, plant_all

FORMULA_NAMES = ['=HYPERLINK("http:", "x")', "+1+cmd", "@SUM(A1)", "-2+3"]
MISTAKEN_FORMULA_NAME = '=HYPERLINK("http:", "mistaken")'


# The batch's limits: every notebook that does its work finishes well within them, even on a loaded machine
# (the fork bomb forks from a small process of its own, not from a kernel of torch's size).
LIMITS = ["--timeout", "60", "--cell-timeout", "6"]
# The cases that a cell's time limit ends, without ending the notebook (a cell that loops, a function that hangs
# when the grader calls it after the notebook's last cell: each call is a cell's time): they run with a shorter
# cell limit (3 s) in a run of their own, which only makes the interruption more certain; the rest of their
# notebook finishes well within it. At 6 s they held a worker for 12, 33 and 47 s of the batch.
UNTIL_THE_CELL_LIMIT = ["diagnostics-hang", "diagnostics-hang-swallowed", "infinite-loop"]
CELL_LIMITS = ["--timeout", "60", "--cell-timeout", "3"]
# The cases whose outcome is the notebook's time limit (they score 0 with "timeout" in errors.csv) run until it
# ends them, whatever it is: they are graded in a run of their own with short limits (4 s for the notebook, the
# grader's calls included, 2 s for a cell), which only make their timeout more certain. They burn a core until
# then: at 12 s and 6 s, they took 23 and 16 s; at 4 s and 2 s, 11 and 5 s.
UNTIL_THE_LIMIT = sorted(name for name, case in CASES.items() if case.error == "timeout")
SHORT_LIMITS = ["--timeout", "4", "--cell-timeout", "2"]
# folder suffix -> (workers, limits): the two small runs wait on their limits beside the batch, on one worker each (a
# worker's zygote costs about 5 s of CPU to start; their two to three notebooks end within the batch's time anyway)
RUNS = {"": (2, LIMITS), "-until-the-cell-limit": (1, CELL_LIMITS), "-until-the-limit": (1, SHORT_LIMITS)}


def _run_of(name):
    return "-until-the-limit" if name in UNTIL_THE_LIMIT else "-until-the-cell-limit" if name in UNTIL_THE_CELL_LIMIT else ""


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    submissions, out = root / "submitted", root / "out"
    for name, case in CASES.items():
        folder = root / f"submitted{_run_of(name)}" / name / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(build(case), folder / f"{ASSIGNMENT}.ipynb")
    for name in FORMULA_NAMES:   # student ids that a spreadsheet would run as formulas
        folder = submissions / name / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(build(CASES["honest"]), folder / f"{ASSIGNMENT}.ipynb")
    # A student id that a spreadsheet would run, with a mistake the diagnostics name (misconceptions.csv)
    folder = submissions / MISTAKEN_FORMULA_NAME / ASSIGNMENT
    folder.mkdir(parents=True)
    mutant = catalogue()[ASSIGNMENT]["sdpa/unscaled"]
    nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), folder / f"{ASSIGNMENT}.ipynb")
    plant_all(submissions, root / "outside")   # links, a pipe, hidden folders, litter (tests/hostile/inputs.py)
    # A server on the host's loopback: a sandboxed notebook must not reach it.
    hits = []
    server = socket.create_server(("127.0.0.1", 47615))
    server.settimeout(0.5)

    def listen():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                hits.append(connection.recv(100))
                connection.close()
            except OSError:
                pass
    stop = threading.Event()
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        # side by side: the two small runs wait on time limits for most of theirs
        started = [start_grader(root / f"submitted{run}", root / f"out{run}", workers, *limits)
                   for run, (workers, limits) in RUNS.items()]
        processes = [finished(process) for process in started]
    finally:
        stop.set()
        thread.join()
        server.close()
    process = processes[0]
    outs = [root / f"out{run}" for run in RUNS]
    rows = {name: [r for o in outs for r in read_csv(o / name)] for name in ("grades.csv", "errors.csv", "flags.csv")}
    return {"process": process, "processes": processes, "out": out, "outs": outs, "hits": hits,
            "grades": {r["student_id"]: float(r["score"]) for r in rows["grades.csv"]},
            "max": {r["student_id"]: float(r["max_score"]) for r in rows["grades.csv"]},
            "errors": {r["student_id"]: r["reason"] for r in rows["errors.csv"]},
            "flags": [(r["student_id"], r["reason"]) for r in rows["flags.csv"]],
            "graded_in": {r["student_id"]: o for o in outs for r in read_csv(o / "grades.csv")}}


def test_the_batch_finishes_and_exits_zero(hostile_batch):
    for process in hostile_batch["processes"]:
        assert process.returncode == 0, process.stderr
    graded = [name for name, planted in PLANTED.items() if planted.score is not None]
    assert sorted(hostile_batch["grades"]) == sorted(["'" + n for n in FORMULA_NAMES + [MISTAKEN_FORMULA_NAME]]
                                                     + list(CASES) + graded)


def test_no_case_lands_in_errors_unexpectedly(hostile_batch):
    expected = {name for name, case in CASES.items() if case.error} | {name for name, p in PLANTED.items() if p.error}
    unexpected = {name: reason for name, reason in hostile_batch["errors"].items() if name not in expected}
    assert not unexpected, unexpected


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_links_are_refused_and_every_student_folder_appears(hostile_batch, name):
    """A link at any level is refused with a reason (never followed: the link to the solutions scores 0, not
    full marks), a pipe does not hang the batch, a hidden student folder is graded or listed."""
    planted = PLANTED[name]
    assert hostile_batch["grades"].get(name) == planted.score, hostile_batch["grades"].get(name)
    if planted.error:
        assert planted.error in hostile_batch["errors"].get(name, ""), hostile_batch["errors"].get(name)
    else:
        assert name not in hostile_batch["errors"]
    assert name in hostile_batch["grades"] or name in hostile_batch["errors"], "a student folder vanished"


def test_litter_is_never_a_student_nor_a_notebook(hostile_batch):
    for outputs in (hostile_batch["grades"], hostile_batch["errors"]):
        assert not [name for name in outputs if name.startswith(("__MACOSX", "._", ".ipynb_checkpoints"))], outputs
    assert not [reason for student, reason in hostile_batch["flags"] if student == "unzipped-on-a-mac"]


def test_a_message_in_markdown_or_html_is_shown_as_text(hostile_batch):
    """The student's exception message is escaped text on the page: no link, no tag, no script of theirs."""
    import html
    import re
    page = _page(hostile_batch, "markdown-message")
    assert not re.search(r"<a\b[^>]*evil\.example", page), "the message became a link"
    for tag in ("<script>alert", "<b>bold</b>", "<img src=x"):
        assert tag not in page, f"{tag} reached the page as HTML"
    from autograder.feedback import SUMMARY_CLASS
    summary = page.split(f'<section class="{SUMMARY_CLASS}">', 1)[1].split("</section>", 1)[0]
    assert html.escape(MARKDOWN_MESSAGE) in summary, "the message is not in the summary as literal text"
    assert MARKDOWN_MESSAGE in html.unescape(page.split("</section>", 1)[1]), "nor under its test cell"


def test_every_csv_is_safe_to_open_in_a_spreadsheet(hostile_batch):
    for out in hostile_batch["outs"]:
        for path in out.glob("*.csv"):
            text = path.read_text(encoding="utf-8")
            for row in read_csv(path):
                for value in row.values():
                    assert not value.startswith(("=", "+", "@", "\t", "\r")), f"{path.name}: {value!r}"
                    assert not value.startswith("-") or value.replace(".", "").lstrip("-").isdigit(), f"{path.name}: {value!r}"
            # the formula-named students are in the batch's run
            assert out != hostile_batch["out"] or "'=HYPERLINK" in text or path.name in ("errors.csv", "flags.csv", "timings.log")


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_case_gains_points(hostile_batch, name):
    case, score = CASES[name], hostile_batch["grades"][name]
    assert hostile_batch["max"][name] == FULL, "the maximum score must not change"
    if case.exact is not None:
        assert score == case.exact, f"{name} scored {score}, expected {case.exact}"
    assert score <= case.max_score, f"{name} scored {score}, more than {case.max_score}"
    if case.flag and name not in hostile_batch["errors"]:
        reasons = [reason for student, reason in hostile_batch["flags"] if student == name]
        assert any(case.flag in reason for reason in reasons), f"{name} not flagged for {case.flag!r}: {reasons}"
    if case.error and not (case.error_optional and name not in hostile_batch["errors"]):
        assert case.error in hostile_batch["errors"].get(name, ""), hostile_batch["errors"]


def test_honest_students_are_neither_flagged_nor_listed(hostile_batch):
    for name in ("honest", "honest-too"):
        assert name not in hostile_batch["errors"]
        assert not [reason for student, reason in hostile_batch["flags"] if student == name]


def test_no_notebook_reaches_the_network_of_the_host(hostile_batch):
    assert hostile_batch["hits"] == []


def test_no_feedback_page_shows_a_hidden_test(hostile_batch):
    hidden = feedback.secret_lines(nbformat.read(solution_path(ASSIGNMENT), 4), [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
    assert len(hidden) > 20
    pages = sorted(page for out in hostile_batch["outs"] for page in (out / "feedback").rglob("*.html"))
    assert len(pages) >= len(CASES) - len(hostile_batch["errors"])
    for page in pages:
        text = feedback.normalise(page.read_text(encoding="utf-8").replace("&quot;", '"').replace("&#39;", "'")
                                  .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page.parent.parent.name}'s feedback shows hidden tests: {leaked[:2]}"


def _page(hostile_batch, name):
    out = hostile_batch["graded_in"][name]
    return (out / "feedback" / name / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(encoding="utf-8")


def _decodings(text):
    """Every way the leak cases encode what they print, undone: base64 (and zlib inside it), hex, reversed."""
    import base64
    import binascii
    import re
    import zlib
    found = [text, text[::-1]]
    for token in re.findall(r"[A-Za-z0-9+/=]{16,}", text):
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        for candidate in (raw, binascii.unhexlify(token) if re.fullmatch(r"(?:[0-9a-f]{2})+", token) else b""):
            try:
                candidate = zlib.decompress(candidate)
            except zlib.error:
                pass
            found.append(candidate.decode("utf-8", errors="replace"))
    return found


LEAKS = ["history-spy", "history-base64", "history-zlib", "history-reversed", "history-hex", "history-split",
         "thread-spy", "frame-spy", "generator-frame-spy", "linecache-spy", "message-leak", "parent-message-spy"]


@pytest.mark.parametrize("name", LEAKS)
def test_no_encoding_of_a_leak_rebuilds_a_hidden_test_line(hostile_batch, name):
    hidden = feedback.secret_lines(nbformat.read(solution_path(ASSIGNMENT), 4), [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
    page = _page(hostile_batch, name)
    text = page.replace("&quot;", '"').replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    for decoded in map(feedback.normalise, _decodings(text)):   # normalised once, searched for every line
        leaked = [line for line in hidden if line in decoded]
        assert not leaked, f"{name}: the feedback page lets one rebuild hidden-test lines: {leaked[:2]}"


@pytest.mark.parametrize("name", ["history-base64", "frame-spy", "linecache-spy"])
def test_a_notebook_that_introspects_gets_no_output_after_the_hidden_tests(hostile_batch, name):
    assert "outputs after the hidden tests started are not shown" in _page(hostile_batch, name)


def test_an_honest_notebook_keeps_its_outputs(hostile_batch):
    assert "outputs after the hidden tests started are not shown" not in _page(hostile_batch, "honest")


def test_student_html_cannot_run_in_the_feedback_page(hostile_batch):
    import re
    page = _page(hostile_batch, "html-script")   # the student's source is on the page as escaped text: look at tags
    assert "data-mime-type" in page or "jp-RenderedHTML" in page, "the HTML output is not on the page at all"
    assert "<script>window.hacked" not in page
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", page, re.IGNORECASE), "an event handler survived"
    assert not re.search(r"<a[^>]+href=[\"']?\s*javascript:", page, re.IGNORECASE), "a javascript: link survived"


def test_feedback_pages_work_offline(hostile_batch):
    """A page is one file: no script at all, nothing it may load (its Content-Security-Policy), its math as MathML
    (tests/test_inputs.py opens a page alone in a browser), and nothing beside it to load."""
    page = _page(hostile_batch, "honest")
    assert "<script" not in page and "default-src 'none'" in page and "<math" in page
    assert not (hostile_batch["out"] / "feedback" / "_mathjax").exists()


def test_a_fork_bomb_is_capped_and_costs_its_neighbours_nothing(hostile_batch):
    from autograder.sandbox import PIDS_LIMIT, PidsCgroup
    group = PidsCgroup.make()
    if group is None:
        pytest.skip("this machine lets the grader create no pids cgroup: only RLIMIT_NPROC-free limits hold")
    group.remove()
    import re
    forks = int(re.search(r"forks: (\d+)", _page(hostile_batch, "fork-bomb")).group(1))
    assert forks < PIDS_LIMIT, f"the fork bomb made {forks} processes"
    assert hostile_batch["grades"]["honest"] == hostile_batch["grades"]["honest-too"] == FULL


@pytest.mark.parametrize("name", ["print-megabytes", "print-flood", "display-40mb"])
def test_feedback_is_small_even_when_a_notebook_prints_megabytes(hostile_batch, name):
    page = hostile_batch["out"] / "feedback" / name / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert page.stat().st_size < 3_000_000


def test_forged_diagnostics_name_nothing(hostile_batch):
    """Lines that look like the grader's diagnostics (without its nonce) are ignored: no misconception, no text."""
    rows = [r for r in read_csv(hostile_batch["out"] / "misconceptions.csv") if r["student_id"] == "forged-diagnostics"]
    assert rows == []
    page = (hostile_batch["out"] / "feedback" / "forged-diagnostics" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "Likely mistake" not in page and "alert(1)</script>" not in page


def test_what_the_kernel_prints_after_the_first_request_changes_nothing(hostile_batch):
    """Two students hand in one notebook whose every function and forward prints random bytes, in every way a kernel
    can print (stdout, stderr, the raw descriptors, displays), whenever the grader's tests and diagnostics call them
    (tests/hostile/__init__.py, NOISE): each of them is graded once, and every file of their grades (result,
    feedback page, the rows of every CSV) is identical but for their ids. The noise is kept for the instructor."""
    out, students = hostile_batch["out"], ("random-after-a", "random-after-b")
    pages = [_page(hostile_batch, name).replace(name, "STUDENT") for name in students]
    assert pages[0] == pages[1]
    results = {}   # what each result says, but for its id and its fingerprint (the added cell has a random id)
    for path in (out / "results").glob("*.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        student = result.pop("student_id")
        if student in students:
            results[student] = result | {"fingerprint": None}
    assert sorted(results) == sorted(students) and results[students[0]] == results[students[1]]
    for path in sorted(out.glob("*.csv")):
        rows = [[sorted((k, v) for k, v in r.items() if k != "student_id") for r in read_csv(path)
                 if r.get("student_id") == name] for name in students]
        assert rows[0] == rows[1], path.name
    for name in students:
        assert name not in hostile_batch["errors"] and hostile_batch["grades"][name] == FULL, "the noise cost points"
        noise = kernel_output_path(out, name, ASSIGNMENT)
        assert noise.stat().st_size > 1000, "the noise is kept for the instructor"
