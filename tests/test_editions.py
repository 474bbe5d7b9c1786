"""The Chinese edition of the notebooks (autograder/editions.py): made from the English solutions and their
translations, the same code in every cell; a submission's edition is read from its content, never from its
metadata; a Chinese notebook is graded by the same tests to the same score, in Chinese."""
import nbformat
import pytest

from autograder import editions, verdicts
from autograder.editions import Edition
from tests.conftest import ALL_ASSIGNMENTS, ASSIGNMENTS, REPO, solution_path, with_cell_replaced
from tests.fastpath import grade_in_process
from tests.mutants import catalogue

TRANSLATED = [a for a in ASSIGNMENTS if editions.has_translation(a)]
ZH_RELEASES = REPO / "zh" / "notebooks"


def english(assignment):
    return nbformat.read(solution_path(assignment), as_version=4)


def chinese(assignment):
    return editions.translated_notebook(english(assignment), assignment)


def zh_release(assignment):
    return nbformat.read(ZH_RELEASES / assignment / f"{assignment}.ipynb", as_version=4)


def en_release(assignment):
    return nbformat.read(REPO / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4)


@pytest.mark.unit
def test_every_assignment_has_a_chinese_edition():
    assert TRANSLATED == ASSIGNMENTS
    assert sorted(p.name for p in ZH_RELEASES.iterdir()) == ALL_ASSIGNMENTS, "run `make notebooks`"


@pytest.mark.unit
@pytest.mark.parametrize("assignment", TRANSLATED)
def test_the_chinese_notebook_is_the_english_code_with_chinese_words(assignment):
    en, zh = english(assignment), chinese(assignment)
    assert [c.metadata for c in en.cells] == [c.metadata for c in zh.cells]
    changed = 0
    for a, b in zip(en.cells, zh.cells):
        if a.cell_type == "code":
            assert editions.same_code(a.source, b.source, messages=True), a.metadata["nbgrader"]["grade_id"]
            assert editions.nbgrader_markers(a.source) == editions.nbgrader_markers(b.source)
        changed += a.source != b.source
    markdown = [b for b in zh.cells if b.cell_type == "markdown"]
    assert markdown and all(editions.CJK.search(c.source) for c in markdown)
    assert changed >= len(markdown)


@pytest.mark.unit
@pytest.mark.parametrize("assignment", TRANSLATED)
def test_a_submission_is_in_the_edition_of_its_instructions(assignment):
    releases = {Edition.EN: en_release(assignment), Edition.ZH: zh_release(assignment)}
    assert editions.detect(en_release(assignment), releases) is Edition.EN
    assert editions.detect(zh_release(assignment), releases) is Edition.ZH
    claimed = en_release(assignment)   # what the metadata says is never read
    claimed.metadata["course_edition"] = "zh"
    claimed.metadata["language_info"] = {"name": "python", "language": "zh"}
    assert editions.detect(claimed, releases) is Edition.EN
    empty = nbformat.v4.new_notebook()
    assert editions.detect(empty, releases) is Edition.EN
    mixed = zh_release(assignment)   # instructions left in Chinese, but one restored in English: still Chinese
    first = next(c for c in mixed.cells if c.cell_type == "markdown")
    first.source = next(c.source for c in en_release(assignment).cells
                        if c.metadata.get("nbgrader", {}).get("grade_id") == first.metadata["nbgrader"]["grade_id"])
    assert editions.detect(mixed, releases) is Edition.ZH


@pytest.mark.unit
def test_a_stale_cell_translation_leaves_the_english_cell(tmp_path, monkeypatch):
    assignment = TRANSLATED[0]
    text = editions.notebook_translation(assignment).read_text(encoding="utf-8")
    first = text.splitlines()[0]
    stale = tmp_path / f"{assignment}.md"
    stale.write_text(text.replace(first, first[:-10] + "0000000000", 1), encoding="utf-8")
    monkeypatch.setattr(editions, "notebook_translation", lambda a: stale)
    en, zh = english(assignment), editions.translated_notebook(english(assignment), assignment)
    grade_id = first.split()[1].removeprefix("cell:")
    source = {c.metadata["nbgrader"]["grade_id"]: (a.source, c.source) for a, c in zip(en.cells, zh.cells)}
    assert source[grade_id][0] == source[grade_id][1]


@pytest.mark.unit
def test_the_grader_says_its_texts_in_the_edition():
    assert editions.say(Edition.EN, "Score: {total} / {best}", total="3", best="4") == "Score: 3 / 4"
    assert editions.say(Edition.ZH, "Score: {total} / {best}", total="3", best="4") == "得分：3 / 4"
    assert editions.say(Edition.ZH, "a text nobody translated {x}", x=1) == "a text nobody translated 1"


@pytest.mark.unit
def test_the_same_code_allows_translated_messages_only():
    assert editions.same_code('assert ok, f"bad {a} and {b:.3g}"', 'assert ok, f"错 {b:.3g} 和 {a}"', messages=True)
    assert not editions.same_code('assert ok, f"bad {a}"', 'assert ok, f"错 {c}"', messages=True)
    assert not editions.same_code('assert ok, "bad"', 'assert ok, "错"', messages=False)
    assert not editions.same_code('x = 1  # one', 'x = 2  # 一', messages=True)
    assert editions.same_code('x = 1  # one', 'x = 1  # 一')


@pytest.mark.parametrize("assignment", [a for a in TRANSLATED if verdicts.in_grader(english(a))])
def test_the_chinese_solution_passes_every_test_in_process(assignment):
    source = chinese(assignment)
    failed = {g: v.message for g, v in grade_in_process(source, source).items() if not v.passed}
    assert failed == {}


def first_mutants():
    """The first mutant graded here (failing cells of its own) of each assignment whose tests run in the grader's
    process."""
    found = []
    for assignment in TRANSLATED:
        graded_here = sorted(name for name, m in catalogue().get(assignment, {}).items() if m.fails)
        if verdicts.in_grader(english(assignment)) and graded_here:
            found.append((assignment, graded_here[0]))
    return found


@pytest.mark.parametrize("assignment,name", first_mutants())
def test_a_chinese_mistake_fails_the_same_tests_in_process(assignment, name):
    mutant = catalogue()[assignment][name]
    zh_source, en_source = chinese(assignment), english(assignment)
    zh_notebook = with_cell_replaced(assignment, mutant.cell, mutant.source, zh_source)
    en_notebook = with_cell_replaced(assignment, mutant.cell, mutant.source)
    zh = {g: v.passed for g, v in grade_in_process(zh_notebook, zh_source).items()}
    en = {g: v.passed for g, v in grade_in_process(en_notebook, en_source).items()}
    assert zh == en and not all(en.values())


@pytest.mark.quick   # it builds a Chinese course with nbgrader (seconds): not a unit test
def test_every_assignments_mistakes_resolve_in_its_chinese_course(tmp_path):
    """A mistake's edit quotes the English solution (its comments too): a Chinese course keeps that notebook beside
    its translation, so that the catalogue and the diagnostics' reference are the English course's."""
    from autograder import course, mistakes
    built = course.build_course(tmp_path / "course", only=TRANSLATED, edition=Edition.ZH)
    assert course.edition(built) is Edition.ZH
    for assignment in TRANSLATED:
        folder = course.source_folder(built, assignment)
        english = solution_path(assignment).parent
        assert mistakes.declarations(folder).mistakes == mistakes.declarations(english).mistakes
        assert mistakes.solution_cells(folder) == mistakes.solution_cells(english)
        assert nbformat.read(course.source_notebook(built, assignment), as_version=4).cells != english_cells(assignment)


def english_cells(assignment):
    return english(assignment).cells
