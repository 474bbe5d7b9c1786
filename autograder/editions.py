"""The course's editions (English, 简体中文): the Chinese notebooks, mistakes and grader messages, from their units.

Code is written once, in English. The Chinese edition of an assignment is made from its English solution notebook
and two files of translations, each unit of which names the English it translates (so that a change of the English
makes the unit stale, and tools/translations.py names it):

    zh/solutions/<id>.md      the notebook's cells: a marker `% cell:<grade_id> en:<digest of the English source>`
                              before each translated cell's source (Markdown cells; code cells whose comments,
                              docstrings or messages are translated; their code the English code)
    zh/mistakes/<id>.yml      {mistake id: {en: digest of its English believed and fix, believed: ..., fix: ...}}
    zh/grader.yml             {English text the grader writes (a str.format template): its Chinese}

A Chinese submission is graded by the Chinese edition of the assignment (its own scratch course, so that nbgrader
keeps its locked cells in Chinese), whose test cells run the English code: the same score, in Chinese.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re
import tokenize
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

REPO = Path(__file__).resolve().parent.parent
ZH = REPO / "zh"
CELL_MARKER = re.compile(r"^% cell:(\S+) en:([0-9a-f]{10})\s*$")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
NBGRADER_MARKERS = re.compile(r"^\s*#+\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)\b.*$", flags=re.M)


class Edition(Enum):
    EN = "en"
    ZH = "zh"


def digest(text: str) -> str:
    """The digest of an English unit: its text, trailing spaces and surrounding blank lines aside."""
    normal = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:10]


# --- notebooks --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellUnit:
    grade_id: str
    source: str    # the digest of the English cell's source it translates
    text: str
    line: int


def notebook_translation(assignment: str) -> Path:
    return ZH / "solutions" / f"{assignment}.md"


def cell_units(text: str) -> tuple[list[CellUnit], list[tuple[int, str]]]:
    """The units of a notebook's translation, and (line, text) of what stands outside any unit."""
    units: list[CellUnit] = []
    outside: list[tuple[int, str]] = []
    current: tuple[str, str, int] | None = None
    lines: list[str] = []

    def close() -> None:
        content = "\n".join(lines).strip("\n")
        if current is not None:
            units.append(CellUnit(current[0], current[1], content, current[2]))
        elif content.strip() and not content.lstrip().startswith("<!--"):
            outside.append((1, content))

    for number, line in enumerate(text.splitlines(), start=1):
        marker = CELL_MARKER.match(line)
        if marker:
            close()
            current, lines = (marker.group(1), marker.group(2), number), []
        else:
            lines.append(line)
    close()
    return units, outside


def code_tokens(source: str) -> list[tuple[int, str]]:
    """Python source as tokens, without comments, docstrings, layout or IPython magics."""
    kept: list[tuple[int, str]] = []
    previous = tokenize.NEWLINE
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
                continue
            docstring = token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT,
                                                                          tokenize.DEDENT)
            previous = token.type
            if docstring:
                continue
            kept.append((token.type, token.string))
    except (tokenize.TokenError, SyntaxError) as error:
        return [(-1, f"untokenizable: {error}")]
    return kept


def _fields(literal: str) -> list[str] | None:
    """The expressions an f-string computes (in order of their text), [] for a plain string, None if unparsable."""
    import ast
    try:
        node = ast.parse(literal.strip(), mode="eval").body
    except SyntaxError:
        return None
    return sorted(ast.unparse(n.value) for n in ast.walk(node) if isinstance(n, ast.FormattedValue))


def same_code(english: str, chinese: str, messages: bool = False) -> bool:
    """Whether two cells are the same code once comments and docstrings (and, with `messages`, the strings that
    the Chinese translates: each computes the same expressions, in any order) are set aside."""
    en, zh = _joined(code_tokens(english)), _joined(code_tokens(chinese))
    if len(en) != len(zh):
        return False
    for e, z in zip(en, zh):
        if z == e:
            continue
        fields = _fields(e[1])
        if not (messages and e[0] == z[0] == tokenize.STRING and CJK.search(z[1])) or fields is None or \
                fields != _fields(z[1]):
            return False
    return True


def _joined(tokens: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Tokens with each run of adjacent strings (one string, implicitly concatenated) made one, parenthesised."""
    out: list[tuple[int, str]] = []
    for kind, text in tokens:
        if kind == tokenize.STRING and out and out[-1][0] == tokenize.STRING:
            out[-1] = (kind, out[-1][1][:-1] + " " + text + ")")
        else:
            out.append((kind, f"({text})" if kind == tokenize.STRING else text))
    return out


def nbgrader_markers(source: str) -> list[str]:
    """The nbgrader marker lines of a cell (### BEGIN SOLUTION ...): a translation keeps them, every one."""
    return [m.group(0).strip() for m in NBGRADER_MARKERS.finditer(source)]


def translated_notebook(english: NotebookNode, assignment: str) -> NotebookNode:
    """The Chinese solution notebook: the English one with each translated cell's source replaced. A unit whose
    English changed since it was translated keeps the English cell (tools/translations.py names it)."""
    import nbformat
    units = {u.grade_id: u for u in cell_units(notebook_translation(assignment).read_text(encoding="utf-8"))[0]}
    notebook = nbformat.from_dict(english)
    for cell in notebook.cells:
        unit = units.get(cell.metadata.get("nbgrader", {}).get("grade_id", ""))
        if unit is not None and unit.source == digest(cell.source):
            cell.source = unit.text
    notebook.metadata["course_edition"] = Edition.ZH.value   # a label for people; the grader never reads it
    result: NotebookNode = notebook
    return result


def has_translation(assignment: str) -> bool:
    return notebook_translation(assignment).is_file()


def locked_texts(notebook: NotebookNode) -> dict[str, str]:
    """{grade_id: source} of a notebook's locked Markdown cells (its instructions)."""
    return {c.metadata["nbgrader"]["grade_id"]: c.source.strip() for c in notebook.cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("locked")
            and "grade_id" in c.metadata.get("nbgrader", {})}


def detect(submission: NotebookNode, releases: dict[Edition, NotebookNode]) -> Edition:
    """The edition a submission was written in, from its content (never from its metadata): the one whose
    instructions (locked Markdown cells) it keeps most of; English when none or a tie. Either way the same code
    grades it: the edition only decides the language of its feedback."""
    theirs = locked_texts(submission)
    kept = {edition: sum(theirs.get(gid) == text for gid, text in locked_texts(release).items())
            for edition, release in releases.items()}
    best = max(kept.values(), default=0)
    if best == 0 or kept.get(Edition.EN, 0) == best:
        return Edition.EN
    return next(edition for edition, count in kept.items() if count == best)


# --- the mistakes and the grader's messages -----------------------------------------------------------------------


def mistakes_translation(assignment: str) -> Path:
    return ZH / "mistakes" / f"{assignment}.yml"


def mistake_digest(believed: str, fix: str) -> str:
    return digest(f"{believed}\n{fix}")


@functools.lru_cache(maxsize=32)
def _yaml(path: str, mtime: int) -> Any:
    import yaml
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


def _read(path: Path) -> Any:
    return _yaml(str(path), path.stat().st_mtime_ns) if path.is_file() else {}


def mistake_in(edition: Edition, assignment: str, mistake_id: str, believed: str, fix: str) -> tuple[str, str]:
    """(believed, fix) of a mistake in an edition: the English where no up-to-date translation exists."""
    if edition is Edition.EN:
        return believed, fix
    unit = _read(mistakes_translation(assignment)).get(mistake_id)
    if not isinstance(unit, dict) or unit.get("en") != mistake_digest(believed, fix):
        return believed, fix
    return str(unit.get("believed") or believed), str(unit.get("fix") or fix)


GRADER_MESSAGES = ZH / "grader.yml"


def say(edition: Edition, template: str, **values: object) -> str:
    """A text the grader writes, in an edition: `template` (English, a str.format template) or its translation
    from zh/grader.yml, filled with `values`."""
    if edition is not Edition.EN:
        template = str(_read(GRADER_MESSAGES).get(template) or template)
    return template.format(**values) if values else template


CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC")   # Debian's fonts-wqy-microhei (`make book` installs it)


@functools.cache
def cjk_font() -> str | None:
    """The family name of an installed CJK font, registered with matplotlib; None where there is none (the
    grader's pictures then keep their English labels)."""
    from matplotlib import font_manager
    for path in font_manager.findSystemFonts():
        if re.search(r"wqy-microhei|NotoSansCJK", Path(path).name, flags=re.I):
            font_manager.fontManager.addfont(path)
    known = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in known), None)
