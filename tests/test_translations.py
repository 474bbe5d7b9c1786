"""The 简体中文 edition is held to its English (tools/translations.py): every unit up to date, code and equations
the English ones, no English left, the glossary's terms used; and a change to the English names the translation
that it makes stale."""
import re
import shutil

import pytest
import yaml

from tests.conftest import REPO
from tools import translations

TERMS = yaml.safe_load((REPO / "zh" / "terms.yml").read_text(encoding="utf-8"))


@pytest.mark.quick   # the whole repository's translations (its mistakes modules import torch): not a unit test
def test_every_translation_is_up_to_date():
    findings = translations.check()
    assert findings == [], "run `make translations`:\n" + "\n".join(map(str, findings))


@pytest.mark.unit
def test_every_page_of_the_book_has_a_translation():
    assert [zh for _, zh in translations.pages() if not zh.is_file()] == []
    assert sorted(p.name for p in (REPO / "zh" / "book").glob("*.md")) == \
        sorted(zh.name for _, zh in translations.pages()), "a file in zh/book/ that translates no page of the book"


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """A copy of chapter 1 and its translation, where a test may change the English."""
    english, translation = tmp_path / "book" / "01_attention.md", tmp_path / "zh" / "book" / "01_attention.md"
    english.parent.mkdir(parents=True)
    translation.parent.mkdir(parents=True)
    shutil.copy(REPO / "book" / "01_attention.md", english)
    shutil.copy(REPO / "zh" / "book" / "01_attention.md", translation)
    monkeypatch.setattr(translations, "REPO", tmp_path)
    assert translations.check_page(english, translation) == []
    return english, translation


def prose_block(path, index=3):
    return [b for b in translations.blocks(path.read_text(encoding="utf-8")) if b.kind is translations.Kind.PROSE][index]


@pytest.mark.unit
def test_changing_one_english_paragraph_names_its_translation(pair):
    english, translation = pair
    block = prose_block(english)
    english.write_text(english.read_text(encoding="utf-8").replace(block.text, block.text + " One more sentence."),
                       encoding="utf-8")
    findings = translations.check_page(english, translation)
    stale = [f for f in findings if f.problem is translations.Problem.STALE]
    missing = [f for f in findings if f.problem is translations.Problem.MISSING]
    assert len(stale) == 1 and len(missing) == 1 and len(findings) == 2, findings
    marker_line = translation.read_text(encoding="utf-8").splitlines()[stale[0].line - 1]
    assert marker_line == f"% en:{block.digest}" and stale[0].path == translation
    assert missing[0].path == english and missing[0].line == block.line
    assert "zh/book/01_attention.md:" in str(stale[0]) and "One more sentence" in str(missing[0])


@pytest.mark.unit
def test_a_translation_with_other_code_is_found_and_translated_comments_are_not(pair):
    english, translation = pair
    text = translation.read_text(encoding="utf-8")
    cell = next(u for u in translations.units(text)[0]
                if u.text.startswith("```{code-cell}") and "import torch\n" in u.text)
    commented = cell.text.replace("import torch\n", "import torch  # 中文注释\n", 1)
    translation.write_text(text.replace(cell.text, commented), encoding="utf-8")
    assert translations.check_page(english, translation) == []
    translation.write_text(text.replace(cell.text, cell.text.replace("import torch\n", "import torch as t\n", 1)),
                           encoding="utf-8")
    assert [f.problem for f in translations.check_page(english, translation)] == [translations.Problem.CODE]


@pytest.mark.unit
def test_a_changed_equation_and_english_left_untranslated_are_found(pair):
    english, translation = pair
    text = translation.read_text(encoding="utf-8")
    equation = next(u for u in translations.units(text)[0] if u.text.startswith("$$"))
    translation.write_text(text.replace(equation.text, equation.text.replace("$$", "$$ 2 \\cdot", 1)),
                           encoding="utf-8")
    assert [f.problem for f in translations.check_page(english, translation)] == [translations.Problem.MATH]
    source = prose_block(english)
    unit = next(u for u in translations.units(text)[0] if u.source == source.digest)
    translation.write_text(text.replace(unit.text, source.text), encoding="utf-8")
    assert [f.problem for f in translations.check_page(english, translation)] == [translations.Problem.UNTRANSLATED]


@pytest.mark.unit
def test_text_outside_any_unit_is_found(pair):
    english, translation = pair
    text = translation.read_text(encoding="utf-8")
    first = text.index("% en:")
    translation.write_text(text[:first] + "多出来的一段。\n\n" + text[first:], encoding="utf-8")
    assert [f.problem for f in translations.check_page(english, translation)] == [translations.Problem.STALE]


@pytest.mark.unit
def test_the_skeleton_of_a_page_lists_its_blocks_under_their_markers():
    english = REPO / "book" / "02_self_attention.md"
    skeleton = translations.skeleton(english)
    units, orphans = translations.units(skeleton)
    assert orphans == []
    assert [u.source for u in units] == [b.digest for b in translations.blocks(english.read_text(encoding="utf-8"))]


def prose(text):
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    text = re.sub(r"^(```|~~~)\{code-cell\}.*?^\1", " ", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\{[^}]*\}|\([^)]*\)=|\]\([^)]*\)", " ", text, flags=re.S)
    return text


@pytest.mark.unit
@pytest.mark.parametrize("english, translation", translations.pages(), ids=lambda p: p.name)
def test_the_glossary_terms_are_used(english, translation):
    """Where the English page uses a term of the glossary, its translation uses the glossary's Chinese for it."""
    en, zh = prose(english.read_text(encoding="utf-8")).lower(), prose(translation.read_text(encoding="utf-8"))
    absent = {term: chinese for term, chinese in TERMS.items()
              if re.search(rf"\b{re.escape(term.lower())}s?\b", en) and chinese not in zh}
    assert absent == {}, f"{translation.relative_to(REPO)} does not use these terms of zh/terms.yml"
