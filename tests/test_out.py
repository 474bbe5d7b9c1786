"""OUT holds one class (autograder/pipeline.py): what the grader wrote into OUT for a student or an assignment that a
run no longer finds in SUBMISSIONS (feedback page, result, kernel output), and what killed batches and older grader
versions left, is removed when the batch has finished; no other file, and nothing through a link. The end-to-end
case (the small class graded again without one student) is in tests/test_operations.py."""
import os

import pytest

from autograder import feedback, outputs, pipeline
from autograder.grade import write_result
from autograder.model import SubmissionResult, Status

A, B = "01_attention", "02_self_attention"


def result(out, student, assignment):
    path = outputs.result_path(out, student, assignment)
    write_result(SubmissionResult(student, assignment, Status.GRADED, fingerprint="f"), path)
    return path


def page(out, student, assignment, summary=True):
    """A feedback page, with the summary feedback.summary_html writes (or without: someone else's page)."""
    path = out / "feedback" / student / assignment / f"{assignment}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = feedback.summary_html(assignment, {"t": (1.0, 2.0)}, {"t": "x"}) if summary else "<p>my own page</p>"
    path.write_text(f"<html><body><main>\n{body}</main></body></html>", encoding="utf-8")
    return path


def printed(out, student, assignment):
    path = out / "kernel-output" / student / f"{assignment}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("what the kernel printed", encoding="utf-8")
    return path


def other(path, text="not the grader's"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.unit
def test_only_the_graders_files_of_absent_submissions_are_stale_and_removed(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    kept = {("alice", A), ("bob", B)}
    keep = [result(out, "alice", A), page(out, "alice", A), printed(out, "alice", A), result(out, "bob", B),
            page(out, "bob", B)]
    carol_key = outputs.key("carol", A)
    stale = [result(out, "carol", A), page(out, "carol", A), printed(out, "carol", A),   # carol is gone
             result(out, "alice", B), page(out, "alice", B), printed(out, "alice", B),   # alice handed in no B
             other(out / "results" / f"{carol_key}.started", ""),                       # a batch killed in flight
             other(out / "results" / f".{carol_key}.json.4242.1234.partial", "{"),
             other(out / "feedback" / "_mathjax" / "tex-chtml.js", "MathJax"),           # an older grader's MathJax
             other(out / "feedback" / "_mathjax" / "output" / "chtml" / "fonts" / "woff-v2" / "MathJax_Main-Regular.woff")]
    not_ours = [other(out / "notes.txt"), other(out / "results" / "notes.json"),
                other(out / "results" / f"{'0' * 24}.json", "{}"),                         # a result's name, not one
                other(out / "results" / f"{'1' * 24}.json", stale[0].read_text()),         # carol's, under another name
                other(out / "feedback" / "carol" / A / "my notes.txt"),
                page(out, "dave", A, summary=False),                                       # no summary: not ours
                other(out / "feedback" / "_mathjax" / "README.md"),
                other(out / "kernel-output" / "carol" / "notes.md")]
    page(outside, "erin", A)
    os.symlink(outside / "feedback" / "erin", out / "feedback" / "erin")                  # links: never followed
    (out / "feedback" / "frank" / A).mkdir(parents=True)
    os.symlink(outside / "feedback" / "erin" / A / f"{A}.html", out / "feedback" / "frank" / A / f"{A}.html")
    os.symlink(stale[0], out / "results" / f"{'2' * 24}.json")
    os.symlink(outside, out / "feedback" / "_mathjax" / "output" / "linked")
    other(outside / "tex-chtml.js", "theirs")

    assert sorted(pipeline.stale_outputs(out, kept)) == sorted(stale)
    removed = pipeline.remove_stale_outputs(out, kept)
    assert sorted(removed) == sorted(p.relative_to(out).as_posix() for p in stale)
    assert not any(p.exists() for p in stale)
    assert all(p.is_file() for p in keep + not_ours)
    assert (outside / "feedback" / "erin" / A / f"{A}.html").is_file() and (outside / "tex-chtml.js").is_file()
    assert not (out / "feedback" / "alice" / B).exists() and not (out / "kernel-output" / "alice" / B).exists()
    assert (out / "feedback" / "carol" / A).is_dir(), "a folder that holds a file not of the grader's stays"
    assert not (out / "feedback" / "_mathjax" / "output" / "chtml").exists()
    assert pipeline.stale_outputs(out, kept) == []


@pytest.mark.unit
def test_the_command_line_says_what_it_removed(tmp_path, capsys, monkeypatch):
    import signal
    from autograder import __main__ as cli
    from autograder.model import ClassResults
    monkeypatch.setattr(cli, "grade_class", lambda *args, **kwargs: ClassResults(removed=["feedback/carol/a/a.html",
                                                                                          "results/x.json"]))
    monkeypatch.setattr(cli, "write_report", lambda *args, **kwargs: None)
    (tmp_path / "submitted").mkdir()
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["grade", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)   # main() makes SIGTERM stop as Ctrl-C does: not pytest's
    stderr = capsys.readouterr().err
    assert "removed 2 files" in stderr and str(tmp_path / "out" / "feedback" / "carol" / "a" / "a.html") in stderr
