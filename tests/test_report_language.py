"""The class report in the instructor's language (`python -m autograder grade ... --language zh`): its texts
through editions.say (zh/grader.yml), the misconceptions from zh/mistakes/, its links to the Chinese edition of the
book (_build/html/zh/<page>.html#label), <html lang='zh-CN'>; the English report and every CSV file as they were.
Fast: a class built by hand, nothing graded."""
import html
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from autograder import diagnose, report
from autograder.editions import Edition, say
from autograder.model import CellResult, ClassResults, Outcome, Pair, Status, SubmissionResult
from tests.conftest import REPO, SOLUTIONS

ASSIGNMENT = "01_attention"
MISTAKE = "nw.sign-flipped"        # a misconception with a translation in zh/mistakes/01_attention.yml
BOOK_URL = "https://example.org/course/"
CJK = re.compile(r"[\u3400-\u9fff]")
HEADINGS = ["Grading report", "Mistakes of the class, by misconception", "Score distribution",
            "Pass rate per graded test cell", "Pass rate per component", "Most common test messages",
            "Students who need help", "Possibly copied work", "Errors and submissions not graded",
            "Flags (graded, but a person should look)"]
COLUMNS = ["kind of mistake", "misconception", "cells (students)", "book section", "not attempted", "student A",
           "share of A in B"]


def a_class():
    """Two students of 01_attention, one making a known mistake (with a translation) and one an unknown one, a
    submission not graded, a flag, an error and a pair of alike submissions."""
    known = diagnose.misconceptions(SOLUTIONS / ASSIGNMENT, ASSIGNMENT)
    assert MISTAKE in known, "choose another translated misconception"

    def cell(grade_id, score, mistake="", outcome=Outcome.FAILED):
        return CellResult(grade_id, score, 1.0, "wrong" if score < 1 else "", mistake, outcome=outcome)
    submissions = [
        SubmissionResult("s1", ASSIGNMENT, Status.GRADED, (cell("a", 0.0, MISTAKE), cell("b", 1.0, outcome=Outcome.PASSED))),
        SubmissionResult("s2", ASSIGNMENT, Status.GRADED, (cell("a", 0.0, "sdpa.no-such-mistake"),
                                                           cell("b", 0.0, outcome=Outcome.NOT_ATTEMPTED)),
                         flags=("looked at the grader",)),
        SubmissionResult("s3", ASSIGNMENT, Status.NOT_GRADED, reason="the worker died"),
    ]
    return ClassResults(submissions=submissions, problems=[("s4", "stray", "no assignment")],
                        cells={ASSIGNMENT: [("a", 1.0), ("b", 1.0)]},
                        components={ASSIGNMENT: {"a": "nadaraya_watson", "b": "nadaraya_watson"}},
                        misconceptions={MISTAKE: known[MISTAKE]},
                        similar=[Pair(ASSIGNMENT, "s1", "s2", 0.9, 0.9, 0.95, (("x = 1", "y = 1"),))])


def page(edition=None, book_url=BOOK_URL):
    results = a_class()
    _, _, errors, flags = report._rows(results)
    if edition is None:
        return report.report_html(results, errors, flags, book_url)
    return report.report_html(results, errors, flags, book_url, edition)


def headings(text):
    return [html.unescape(h) for h in re.findall(r"<h[123]>([^<]*)</h[123]>", text)]


@pytest.mark.unit
def test_the_chinese_report_is_in_chinese():
    text = page(Edition.ZH)
    assert text.startswith("<!DOCTYPE html><html lang='zh-CN'>")
    assert f"<title>{say(Edition.ZH, 'Grading report')}</title>" in text
    found = headings(text)
    for heading in HEADINGS:
        assert heading not in found and say(Edition.ZH, heading) in found, heading
    assert all(CJK.search(h) for h in found if h != ASSIGNMENT and not h.startswith(f"{ASSIGNMENT}:")), found
    for column in COLUMNS:
        assert f"<th>{column}</th>" not in text and f"<th>{say(Edition.ZH, column)}</th>" in text, column
    assert say(Edition.ZH, "{count} students", count=1) in text and " students</td>" not in text
    assert CJK.search(say(Edition.ZH, "{count} students", count=1)), "zh/grader.yml lacks the report's texts"


@pytest.mark.unit
def test_the_charts_count_every_score_and_speak_the_reports_language():
    """report.html's charts are SVG in the page's text: every score in one bin (full marks in the last), every bar
    as long as its rate, labels escaped, and the Chinese report's labels in Chinese (no font needed by the grader)."""
    chart = report.histogram([0, 41, 41, 20.5, 40.9], 41, "<b>01</b>", "score", "students")
    counts = [int(n) for n in re.findall(r"<title>(\d+)</title></rect>", chart)]
    assert len(counts) == 20 and sum(counts) == 5 and counts[0] == 1 and counts[-1] == 3 and counts[10] == 1
    assert "&lt;b&gt;01&lt;/b&gt;" in chart and "<b>" not in chart
    bars = report.bar_chart(["a<b", "c"], [100, 25], "rates", "%", "#1f77b4")
    widths = [float(w) for w in re.findall(r'<rect x="[^"]+" y="[^"]+" width="([^"]+)"', bars)]
    assert len(widths) == 2 and widths[0] == pytest.approx(4 * widths[1], abs=0.5) and "a&lt;b" in bars
    charts = re.findall(r"<svg role=\"img\" aria-label=\"([^\"]+)\"", page(Edition.ZH))
    assert len(charts) == 3 and all(CJK.search(html.unescape(label)) for label in charts), charts


@pytest.mark.unit
def test_the_chinese_report_names_the_misconceptions_in_chinese():
    known = a_class().misconceptions[MISTAKE]
    unit = yaml.safe_load((REPO / "zh" / "mistakes" / f"{ASSIGNMENT}.yml").read_text(encoding="utf-8"))[MISTAKE]
    text = html.unescape(page(Edition.ZH))
    assert f"<strong>{unit['believed']}</strong>" in text and unit["fix"] in text
    assert known.mistake not in text and known.fix not in text
    assert "sdpa.no-such-mistake" in text, "an unknown misconception keeps its id"
    english = html.unescape(page())
    assert f"<strong>{known.mistake}</strong>" in english and known.fix in english


@pytest.mark.unit
def test_the_chinese_report_links_to_the_chinese_book():
    links = [html.unescape(link) for link in re.findall(r'href="([^"]+)"', page(Edition.ZH))]
    assert links == [f"{BOOK_URL}zh/book/01_attention.html#ch01-nadaraya-watson"]
    english = [html.unescape(link) for link in re.findall(r'href="([^"]+)"', page())]
    assert english == [f"{BOOK_URL}book/01_attention.html#ch01-nadaraya-watson"]
    local = re.findall(r'href="([^"]+)"', page(Edition.ZH, book_url=None))
    assert local == [(report.BUILT_BOOK / "zh" / "book" / "01_attention.html").as_uri() + "#ch01-nadaraya-watson"]
    built = Path(unquote(urlparse(local[0]).path))
    if built.is_file():   # after `make book`: the Chinese page has the section
        assert 'id="ch01-nadaraya-watson"' in built.read_text(encoding="utf-8")


@pytest.mark.unit
def test_book_link_in_each_edition():
    labels = {"ch01-masking": "book/01_attention"}
    assert report.book_link("ch01-masking", "https://x.org/b", labels) == "https://x.org/b/book/01_attention.html#ch01-masking"
    assert report.book_link("ch01-masking", "https://x.org/b/", labels, Edition.ZH) == \
        "https://x.org/b/zh/book/01_attention.html#ch01-masking"
    assert report.book_link("no-such-label", "https://x.org/b", labels, Edition.ZH) == ""


@pytest.mark.unit
def test_the_english_report_is_as_it_was():
    text = page()
    assert text == page(Edition.EN)
    assert text.startswith("<!DOCTYPE html><html><head>") and "<title>Grading report</title>" in text
    found = headings(text)
    assert all(heading in found for heading in HEADINGS)
    assert all(f"<th>{column}</th>" in text for column in COLUMNS)
    assert "<strong>1 submissions were not graded</strong> (a failure of the grader" in text
    assert "<p>3 students, 3 submissions, 1 not graded, 2 errors, 1 flags.</p>" in text   # s4: a stray folder, an error
    assert "1 students</td>" in text and not CJK.search(text)


@pytest.mark.unit
def test_only_the_report_changes_language(tmp_path):
    report.write_report(a_class(), tmp_path / "en", BOOK_URL)
    report.write_report(a_class(), tmp_path / "zh", BOOK_URL, edition=Edition.ZH)
    files = sorted(p.name for p in (tmp_path / "en").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "zh").iterdir()) and "report.html" in files
    for name in files:
        same = (tmp_path / "en" / name).read_bytes() == (tmp_path / "zh" / name).read_bytes()
        assert same == (name != "report.html"), name


@pytest.mark.unit
def test_the_command_line_takes_the_language(tmp_path):
    from autograder.__main__ import parse_args
    (tmp_path / "in").mkdir()
    common = ["grade", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--unsafe-no-sandbox"]
    assert parse_args(common).language == "en"
    assert Edition(parse_args(common + ["--language", "zh"]).language) is Edition.ZH
    with pytest.raises(SystemExit):
        parse_args(common + ["--language", "fr"])
