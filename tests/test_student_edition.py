"""The student edition (`make student-edition`, tools/student_edition.py): the book's HTML and a student repository
that hold no solution and no hidden test, in which the students' commands work. The book is not built here: a small
stand-in of _build/html takes its place."""
import html
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ALL_ASSIGNMENTS, ASSIGNMENTS, REPO, release_path
from tests.test_notebooks import leaks, secret_lines
from tools import points, student_edition

PAGE = "<html><body><h1>{title}</h1><p>A page of the book.</p></body></html>"


def fake_book(folder, extra=""):
    """A stand-in for the built book, _build/html with its zh/ (the real one is `make book`'s, tests/test_book.py)."""
    for page, title in (("index.html", "Attention"), ("book/01_attention.html", "The attention mechanism"),
                        ("zh/index.html", "注意力"), ("zh/book/01_attention.html", "注意力机制")):
        (folder / page).parent.mkdir(parents=True, exist_ok=True)
        (folder / page).write_text(PAGE.format(title=title) + extra, encoding="utf-8")
    (folder / "_static").mkdir()
    (folder / "_static" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    return folder


def run(command, cwd, **kwargs):
    """A command run in the student edition, as a student would: with this Python, writing no bytecode there."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), **kwargs)


def test_the_student_edition_holds_no_solution_and_its_commands_work(tmp_path):
    out = tmp_path / "edition"
    made = student_edition.build(out, fake_book(tmp_path / "html"), book_url="https://course.example/book")
    repository = made.repository
    files = sorted(p for p in out.rglob("*") if p.is_file())

    # Every file, the HTML included, searched for every solution and hidden-test line of both editions.
    assert len(secret_lines(ASSIGNMENTS[0])) >= 10
    assert leaks([p for p in files if p != made.archive and p.suffix != ".png"]) == []
    with tarfile.open(made.archive) as tar:                     # the archive is the folder, file for file
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert members == {f"{repository.name}/{p.relative_to(repository).as_posix()}": p.read_bytes()
                       for p in repository.rglob("*") if p.is_file()}
    assert (out / "html" / "zh" / "index.html").is_file() and (out / "html" / "_static" / "logo.png").is_file()

    held = {p.relative_to(repository).parts[0] for p in repository.rglob("*")}
    assert not held & {"solutions", "tests", "docs", "autograder-secret.txt", ".ci", "work", "_build"}, held
    assert not (repository / "zh" / "solutions").exists() and not (repository / "zh" / "mistakes").exists()
    assert not (repository / "autograder" / "probes.py").exists()    # the grader's reference implementations
    for name in ("lab", "workspace", "check_submission", "points", "zh_book"):
        assert (repository / "tools" / f"{name}.py").read_bytes() == (REPO / "tools" / f"{name}.py").read_bytes()
    assert {p.relative_to(repository) for p in repository.rglob("*.ipynb")} == \
        {p.relative_to(REPO) for folder in ("notebooks", "zh/notebooks") for p in (REPO / folder).rglob("*.ipynb")}

    # The book's points come from the release: the same as the solutions' (assignment boxes, course plan).
    listed = run([sys.executable, "-c", "from tools import points; print([(c.file, c.assignment) "
                                        "for c in points.chapters()]); print(points.__file__)"], repository)
    assert listed.returncode == 0, listed.stderr
    chapters, where = listed.stdout.strip().splitlines()
    assert Path(where).resolve() == (repository / "tools" / "points.py").resolve()
    assert chapters == str([(c.file, c.assignment) for c in points.chapters()])
    assert all(f"Assignment(id='{a}'" in chapters for a in ASSIGNMENTS)

    # make check-submission, in the edition, on a released notebook (one run of its kernel).
    notebook = tmp_path / "student" / "01_attention" / "01_attention.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_bytes(release_path("01_attention").read_bytes())
    checked = run(["make", "check-submission", f"NB={notebook}", "STAMP=", f"BIN={Path(sys.executable).parent}"],
                  repository, timeout=600)
    assert checked.returncode != 0, checked.stdout + checked.stderr     # a stub is not ready, and says why
    assert "[ok] every graded cell of the release is there, once" in checked.stdout, checked.stdout + checked.stderr
    assert re.search(r"\[FAIL\] visible tests: 0 of \d+ test cells pass", checked.stdout), checked.stdout
    assert "not done yet" in checked.stdout and "NOT ready" in checked.stdout

    # make lab's first step, in both editions.
    for edition in ("en", "zh"):
        synced = run([sys.executable, "-m", "tools.workspace", "--edition", edition, "--work",
                      str(tmp_path / "work" / edition)], repository)
        assert synced.returncode == 0, synced.stderr
        assert len(list((tmp_path / "work" / edition).glob("*/*.ipynb"))) == len(ALL_ASSIGNMENTS)

    # The students' make targets name no file the edition lacks; the instructors' are not there.
    dry = run(["make", "-n", "book", "lab", "check-submission", "EDITION=zh"], repository)
    assert dry.returncode == 0, dry.stderr
    for module in re.findall(r"-m (tools\.\w+)", dry.stdout):
        assert (repository / f"{module.replace('.', '/')}.py").is_file(), module
    named = {token for token in re.findall(r"[\w./-]+", dry.stdout)
             if re.fullmatch(r"(?!\.venv|_build|-)[\w-]+(/[\w.-]+)*\.(py|txt|toml|yml|json|cfg|md)", token)}
    assert "book/_kernel/figures_for_editions.py" in named and "requirements.txt" in named
    assert [name for name in sorted(named) if not (repository / name).is_file()] == []
    rules = set(re.findall(r"^([\w$().-]+):(?!=)", (repository / "Makefile").read_text(encoding="utf-8"), re.M))
    assert rules == {"$(STAMP)", ".PHONY", "book", "cjk-font", "lab", "check-submission", "clean"}, rules

    # Its README is a student's: every make command it names works there, every file it names is there.
    readme = (repository / "README.md").read_text(encoding="utf-8")
    assert "## For students" in readme and "https://course.example/book/" in readme and "<!--" not in readme
    assert "For instructors" not in readme and "solutions/" not in readme
    code = " ".join(re.findall(r"`([^`]+)`", readme))
    for target in sorted(set(re.findall(r"\bmake ([a-z][\w-]*)\b", code))):
        assert run(["make", "-n", target], repository).returncode == 0, f"the README names `make {target}`"
    for path in sorted(set(re.findall(r"`((?:[\w.-]+/)+[\w.-]*)`", readme))):
        if not path.startswith(("work/", "_build/", ".venv/")) and "<" not in path:
            assert (repository / path).exists(), f"the README names {path}, which the edition lacks"


@pytest.mark.quick
def test_a_line_of_a_solution_anywhere_stops_the_edition(tmp_path):
    line = sorted(secret_lines(ASSIGNMENTS[-1]))[0]
    book = fake_book(tmp_path / "html", extra=f"<pre><span>{html.escape(line[:12])}</span>{html.escape(line[12:])}</pre>")
    with pytest.raises(student_edition.EditionError) as error:
        student_edition.build(tmp_path / "edition", book)
    assert "book/01_attention.html" in str(error.value) and line in str(error.value)
    assert not (tmp_path / "edition").exists() and [p.name for p in tmp_path.iterdir()] == ["html"]


@pytest.mark.quick
def test_the_edition_replaces_its_own_folder_and_no_other(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(student_edition.EditionError, match="is not a student edition"):
        student_edition.build(other, None)
    assert [p.name for p in other.iterdir()] == ["mine.txt"]
    first = student_edition.build(tmp_path / "edition", None)
    (first.repository / "stale.txt").write_text("from an earlier edition")
    second = student_edition.build(tmp_path / "edition", None)
    assert not (second.repository / "stale.txt").exists() and second.html is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edition", "notes"]


@pytest.mark.unit
def test_the_points_of_the_release_are_the_points_of_the_solutions(monkeypatch, tmp_path):
    """The student edition's book reads the release's nbgrader metadata, where the course's reads the solutions'."""
    from_solutions = points.chapters()
    monkeypatch.setattr(points, "SOLUTIONS", tmp_path / "no-solutions")
    assert points.notebook_path(ASSIGNMENTS[0]) == points.release_path(ASSIGNMENTS[0])
    assert points.chapters() == from_solutions
    assert [c.assignment.id for c in from_solutions if c.assignment] == ALL_ASSIGNMENTS


@pytest.mark.unit
def test_the_students_makefile_keeps_their_targets_and_what_those_use():
    makefile = "\n".join([
        "# The course's commands.", "SHELL := /bin/bash", "# the interpreter", "PY := python3", "# for tests only",
        "N ?= 40", "", ".PHONY: lab test", "", "# The lab.", "lab:", "\t$(PY) -m tools.lab", "",
        "# The tests.", "test:", "\tpytest -n $(N)", ""])
    kept = student_edition.student_makefile(makefile)
    assert "lab:" in kept and "$(PY) -m tools.lab" in kept and "PY := python3" in kept and "# the interpreter" in kept
    assert "test:" not in kept and "N ?= 40" not in kept and "for tests only" not in kept
    assert ".PHONY: lab\n" in kept and "SHELL := /bin/bash" in kept
    with pytest.raises(student_edition.EditionError, match="part them"):
        student_edition.student_makefile("lab:\n\techo\ntest:\n\techo\n")
