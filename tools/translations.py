"""The Chinese edition's translations, held to their English source (`make translations`).

An English MyST page (book/<name>.md) is a sequence of *blocks*: runs of non-blank lines, where a fenced
block (```` ``` ````, ``~~~``, ``:::``) or a display equation (``$$``) is one block, blank lines included.
Its translation, zh/book/<name>.md, has the same front matter and, for each block, a *unit*: a marker line

    % en:3fa9c2d10b

(a MyST comment: it is not rendered) that gives the digest of the English block it translates, followed by
the translation, up to the next marker. When the English block changes, its digest changes: the unit that
still carries the old digest is *stale*, and the English block with the new digest is *missing*. Both are
named, with their files and lines, by `make translations` and by tests/test_translations.py.

Code cells and equations are not translated, except the comments and docstrings of a code cell (and its
figure's alt text): a unit that translates a code cell must have the same code once comments and docstrings
are set aside, and a unit that translates an equation must be the same equation.

The notebooks (zh/solutions/<id>.md) and the mistakes (zh/mistakes/<id>.yml) are held the same way; their
formats are described in autograder/editions.py, which makes the Chinese notebooks from them.

    python -m tools.translations                 # every stale, missing or mistranslated unit; exit 1 if any
    python -m tools.translations skeleton FILE   # a translation to start from: FILE's blocks under markers
                                                 # (FILE: a page book/<name>.md, a notebook solutions/<id>/<id>.ipynb
                                                 # or an assignment's solutions/<id>/mistakes.py)
"""
import argparse
import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from autograder import editions
from tools import points

REPO = points.REPO
ZH = REPO / "zh"
MARKER = re.compile(r"^% en:([0-9a-f]{10})\s*$")
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", flags=re.S)
FENCE = re.compile(r"^(`{3,}|~{3,}|:{3,})")
CJK = editions.CJK
# Latin words that a Chinese paragraph may keep: none; a run of them outside code, math, links and
# directives is English left untranslated.
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


class Kind(Enum):
    PROSE = "prose"
    CODE = "code cell"
    MATH = "equation"


@dataclass(frozen=True)
class Block:
    """One block of a page: its text, its first line (1-based) and, for an English block, its digest."""
    text: str
    line: int

    @property
    def digest(self) -> str:
        return digest(self.text)

    @property
    def kind(self) -> Kind:
        if self.text.startswith("```{code-cell}"):
            return Kind.CODE
        if self.text.startswith("$$"):
            return Kind.MATH
        return Kind.PROSE


@dataclass(frozen=True)
class Unit:
    """One translated unit: the digest of the English block it translates, its text and its marker's line."""
    source: str
    text: str
    line: int


class Problem(Enum):
    MISSING = "no translation"
    STALE = "translates English that has changed or gone"
    CODE = "its code differs from the English code cell (only comments and docstrings may)"
    MATH = "its equation differs from the English one"
    UNTRANSLATED = "still English"
    FRONT_MATTER = "its front matter differs from the English page's"
    NO_FILE = "the translation does not exist"
    MARKERS = "its nbgrader markers (### BEGIN SOLUTION, ...) differ from the English cell's"


@dataclass(frozen=True)
class Finding:
    problem: Problem
    path: Path     # the file to edit: the translation (or, for a missing unit, the English page)
    line: int
    excerpt: str   # the English text concerned (a missing or stale unit) or the translation's

    def __str__(self) -> str:
        where = f"{self.path.relative_to(REPO)}:{self.line}" if self.path.is_relative_to(REPO) else \
            f"{self.path}:{self.line}"
        return f"{where}: {self.problem.value}: {shorten(self.excerpt)}"


digest = editions.digest


def shorten(text: str, width: int = 90) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[:width - 1] + "…"


def split_front_matter(text: str) -> tuple[str, str, int]:
    """(front matter, body, the body's first line number)."""
    match = FRONT_MATTER.match(text)
    if match is None:
        return "", text, 1
    return match.group(0), text[match.end():], match.group(0).count("\n") + 1


def blocks(text: str) -> list[Block]:
    """The blocks of a MyST page's body (front matter excluded), in order."""
    _, body, first = split_front_matter(text)
    result: list[Block] = []
    current: list[str] = []
    start = 0
    fences: list[str] = []   # the open fences, innermost last
    in_math = False

    def close() -> None:
        nonlocal current
        if current:
            result.append(Block("\n".join(current), start))
        current = []

    for number, line in enumerate(body.splitlines(), start=first):
        if not current and not line.strip():
            continue
        if not current:
            start = number
        if not fences and not in_math and not line.strip():
            close()
            continue
        current.append(line)
        fence = FENCE.match(line.strip()) if not in_math else None
        if fence:
            mark = fence.group(1)
            if fences and mark[0] == fences[-1][0] and len(mark) >= len(fences[-1]) and \
                    line.strip() == mark:
                fences.pop()
            elif line.strip() != mark or not fences:
                fences.append(mark)
        elif not fences:
            stripped = line.strip()
            if in_math:
                in_math = not stripped.endswith("$$")
            elif stripped.startswith("$$"):
                in_math = not (len(stripped) > 2 and stripped.endswith("$$"))
    close()
    return result


def units(text: str) -> tuple[list[Unit], list[Block]]:
    """A translation's units, and the blocks of it that no marker precedes."""
    _, body, first = split_front_matter(text)
    found: list[Unit] = []
    orphans: list[Block] = []
    source: str | None = None
    lines: list[str] = []
    start = first

    def close() -> None:
        content = "\n".join(lines).strip("\n")
        if source is not None:
            found.append(Unit(source, content, start))
        elif content.strip():
            orphans.append(Block(content, start))

    for number, line in enumerate(body.splitlines(), start=first):
        marker = MARKER.match(line)
        if marker:
            close()
            source, lines, start = marker.group(1), [], number
        else:
            lines.append(line)
    close()
    return found, orphans


def code_tokens(cell: str) -> list[tuple[int, str]]:
    """A code cell's code as tokens, without comments, docstrings, the cell's metadata or layout."""
    lines = cell.splitlines()[1:-1]   # inside the fence
    if lines and lines[0].strip() == "---":   # the cell's options as a YAML block
        end = lines.index("---", 1) if "---" in lines[1:] else 0
        lines = lines[end + 1:]
    while lines and re.match(r"^:[\w-]+:", lines[0]):   # or as `:option: value` lines
        lines = lines[1:]
    return editions.code_tokens("\n".join(lines))   # comments, docstrings, layout and IPython magics set aside


def is_untranslated(text: str) -> bool:
    """Whether a prose unit is still English: words in Latin letters outside code, math, links, directives'
    options and labels, and no Chinese."""
    prose = re.sub(r"^\s*(```|:::|~~~).*$", " ", text, flags=re.M)   # fences and their directives
    prose = re.sub(r"`[^`\n]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|<[^>]*>|^:\w[^:]*:.*$|^\(.*\)=$|\{[^}]*\}",
                   " ", prose, flags=re.S | re.M)
    return len(LATIN_WORD.findall(prose)) >= 3 and not CJK.search(prose)


def check_page(english: Path, translation: Path) -> list[Finding]:
    """Every problem of one translated page."""
    if not translation.is_file():
        return [Finding(Problem.NO_FILE, translation, 1, str(english.relative_to(REPO)))]
    en_text = english.read_text(encoding="utf-8")
    zh_text = translation.read_text(encoding="utf-8")
    findings: list[Finding] = []
    if split_front_matter(en_text)[0] != split_front_matter(zh_text)[0]:
        findings.append(Finding(Problem.FRONT_MATTER, translation, 1, split_front_matter(zh_text)[0]))
    english_blocks = {block.digest: block for block in blocks(en_text)}
    translated, orphans = units(zh_text)
    for orphan in orphans:
        findings.append(Finding(Problem.STALE, translation, orphan.line, orphan.text))
    covered = set()
    for unit in translated:
        block = english_blocks.get(unit.source)
        if block is None:
            findings.append(Finding(Problem.STALE, translation, unit.line, unit.text))
            continue
        covered.add(unit.source)
        if block.kind is Kind.CODE and code_tokens(block.text) != code_tokens(unit.text):
            findings.append(Finding(Problem.CODE, translation, unit.line, unit.text))
        elif block.kind is Kind.MATH and digest(block.text) != digest(unit.text):
            findings.append(Finding(Problem.MATH, translation, unit.line, unit.text))
        elif block.kind is Kind.PROSE and is_untranslated(unit.text):
            findings.append(Finding(Problem.UNTRANSLATED, translation, unit.line, unit.text))
    for source, block in english_blocks.items():
        if source not in covered:
            findings.append(Finding(Problem.MISSING, english, block.line, block.text))
    return findings


ENGLISH_WORDS = re.compile(r"[A-Za-z]{3,}")


def english_comments(source: str) -> bool:
    """Whether a code cell's comments and docstrings hold English words (three or more) to translate."""
    words = 0
    try:
        previous = tokenize.NEWLINE
        for token in tokenize.generate_tokens(io.StringIO(source + "\n").readline):
            docstring = token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT,
                                                                          tokenize.DEDENT)
            if token.type == tokenize.COMMENT and not editions.NBGRADER_MARKERS.match(token.string) or docstring:
                words += len(ENGLISH_WORDS.findall(re.sub(r"`[^`]*`|\$[^$]*\$", " ", token.string)))
            if token.type not in (tokenize.COMMENT, tokenize.NL):
                previous = token.type
    except (tokenize.TokenError, SyntaxError):
        return False
    return words >= 3


def needs_translation(cell: Any) -> bool:
    return cell.cell_type == "markdown" or (cell.cell_type == "code" and english_comments(cell.source))


def solution_notebook(assignment: str) -> Path:
    return points.solution_path(assignment)


def check_notebook(assignment: str) -> list[Finding]:
    """Every problem of one notebook's translation."""
    import nbformat
    english_path, translation = solution_notebook(assignment), editions.notebook_translation(assignment)
    if not translation.is_file():
        return [Finding(Problem.NO_FILE, translation, 1, str(english_path.relative_to(REPO)))]
    english = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(english_path, as_version=4).cells
               if "grade_id" in c.metadata.get("nbgrader", {})}
    found, outside = editions.cell_units(translation.read_text(encoding="utf-8"))
    findings = [Finding(Problem.STALE, translation, line, text) for line, text in outside]
    covered = set()
    for unit in found:
        cell = english.get(unit.grade_id)
        if cell is None or digest(cell.source) != unit.source:
            findings.append(Finding(Problem.STALE, translation, unit.line, f"cell {unit.grade_id}: {unit.text}"))
            continue
        covered.add(unit.grade_id)
        if cell.cell_type == "code":
            if editions.nbgrader_markers(cell.source) != editions.nbgrader_markers(unit.text):
                findings.append(Finding(Problem.MARKERS, translation, unit.line, unit.text))
            elif not editions.same_code(cell.source, unit.text, messages=True):
                findings.append(Finding(Problem.CODE, translation, unit.line, unit.text))
            elif english_comments(unit.text) and not CJK.search(unit.text):
                findings.append(Finding(Problem.UNTRANSLATED, translation, unit.line, unit.text))
        elif is_untranslated(unit.text):
            findings.append(Finding(Problem.UNTRANSLATED, translation, unit.line, unit.text))
    for grade_id, cell in english.items():
        if grade_id not in covered and needs_translation(cell):
            findings.append(Finding(Problem.MISSING, english_path, 1, f"cell {grade_id}: {cell.source}"))
    return findings


def check_mistakes(assignment: str) -> list[Finding]:
    """Every problem of one assignment's translated mistakes."""
    import yaml
    from autograder import mistakes
    folder = points.SOLUTIONS / assignment
    declared = mistakes.declarations(folder).mistakes
    if not declared:
        return []
    translation = editions.mistakes_translation(assignment)
    if not translation.is_file():
        return [Finding(Problem.NO_FILE, translation, 1, str((folder / "mistakes.py").relative_to(REPO)))]
    text = translation.read_text(encoding="utf-8")
    try:
        units = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        return [Finding(Problem.STALE, translation, 1, f"this is not YAML: {error}")]
    if not isinstance(units, dict):
        return [Finding(Problem.STALE, translation, 1, "this is not a YAML mapping of mistake ids")]
    line_of = {key: number for number, line in enumerate(text.splitlines(), start=1)
               for key in [line.split(":", 1)[0].strip().strip("'\"")] if line and not line[0].isspace()}
    findings = []
    english = {m.id: m for m in declared}
    for key, unit in units.items():
        m = english.get(key)
        if m is None or not isinstance(unit, dict) or unit.get("en") != editions.mistake_digest(m.believed, m.fix):
            findings.append(Finding(Problem.STALE, translation, line_of.get(key, 1), f"{key}: {unit}"))
        elif not all(CJK.search(str(unit.get(part) or "")) for part in ("believed", "fix")):
            findings.append(Finding(Problem.UNTRANSLATED, translation, line_of.get(key, 1), f"{key}: {unit}"))
    for key, m in english.items():
        if key not in units:
            findings.append(Finding(Problem.MISSING, folder / "mistakes.py", 1, f"{key}: {m.believed}"))
    return findings


# Module-level constants of the grader whose texts it says (editions.say) through a name rather than a literal.
SAID_CONSTANTS = {"diagnose": ("SUBJECTS", "PICTURE_TITLES"),
                  "feedback": ("SUMMARY_COLUMNS", "HEATMAPS", "SUPPRESSED", "REMOVED", "PAGE_FULL"),
                  "remote": ("STOPPED", "OUTSIDE", "NO_AGENT")}


def _strings(node: ast.AST) -> list[str]:
    """The string constants a template expression can be: a literal, either branch of `a if c else b`, a tuple."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    if isinstance(node, ast.Tuple):
        return [s for element in node.elts for s in _strings(element)]
    return []


def grader_templates() -> set[str]:
    """Every text the grader says in an edition (autograder/*.py, and tools/check_submission.py which speaks to a
    student as the grader does: the literal templates of their `say` calls, and the constants of SAID_CONSTANTS)."""
    found: set[str] = set()
    for path in sorted((REPO / "autograder").glob("*.py")) + [REPO / "tools" / "check_submission.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and len(node.args) >= 2 and \
                    (getattr(node.func, "id", None) == "say" or getattr(node.func, "attr", None) == "say"):
                found.update(_strings(node.args[1]))
        names = SAID_CONSTANTS.get(path.stem, ())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(target, "id", None) in names for target in node.targets):
                found.update(_strings(node.value))
    return found


def check_grader_messages() -> list[Finding]:
    """zh/grader.yml: a translation for each text the grader says, and none for a text it no longer says."""
    import yaml
    path = editions.GRADER_MESSAGES
    if not path.is_file():
        return [Finding(Problem.NO_FILE, path, 1, "the grader's messages")]
    text = path.read_text(encoding="utf-8")
    try:
        translated = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        return [Finding(Problem.STALE, path, 1, f"this is not YAML: {error}")]
    said = grader_templates()
    findings = [Finding(Problem.STALE, path, 1, key) for key in translated if key not in said]
    findings += [Finding(Problem.MISSING, REPO / "autograder", 1, key) for key in sorted(said - set(translated))]
    findings += [Finding(Problem.UNTRANSLATED, path, 1, key) for key, value in translated.items()
                 if key in said and not CJK.search(str(value or "")) and not (value == key and " " not in key)]
    for key, value in translated.items():
        fields = set(re.findall(r"\{(\w+)\}", key))
        if key in said and fields != set(re.findall(r"\{(\w+)\}", str(value or ""))):
            findings.append(Finding(Problem.CODE, path, 1, f"{key}: its {{fields}} differ in the translation"))
    return findings


def assignments() -> list[str]:
    return sorted(p.parent.name for p in points.SOLUTIONS.glob("*/*.ipynb") if p.stem == p.parent.name)


def pages() -> list[tuple[Path, Path]]:
    """Each English page of the book with the path of its translation."""
    files = ["book/intro", *points.toc_chapters(), "book/notation"]
    return [(REPO / f"{file}.md", ZH / f"{file}.md") for file in files]


def check() -> list[Finding]:
    """Every problem of every translation: the book's pages, the notebooks, the mistakes."""
    return [finding for english, translation in pages() for finding in check_page(english, translation)] + \
        [finding for assignment in assignments() for finding in check_notebook(assignment) + check_mistakes(assignment)] + \
        check_grader_messages()


def skeleton(english: Path) -> str:
    """A translation to start from: the front matter, then each English block under its marker (for a notebook,
    each cell to translate; for a mistakes.py, each mistake)."""
    if english.suffix == ".ipynb":
        import nbformat
        cells = [c for c in nbformat.read(english, as_version=4).cells if needs_translation(c)]
        return "".join(f"% cell:{c.metadata['nbgrader']['grade_id']} en:{digest(c.source)}\n{c.source}\n\n"
                       for c in cells)
    if english.name == "mistakes.py":
        import yaml
        from autograder import mistakes
        units = {m.id: {"en": editions.mistake_digest(m.believed, m.fix), "believed": m.believed, "fix": m.fix}
                 for m in mistakes.declarations(english.parent).mistakes}
        return str(yaml.safe_dump(units, allow_unicode=True, sort_keys=False, width=110))
    text = english.read_text(encoding="utf-8")
    front, _, _ = split_front_matter(text)
    return front + "".join(f"\n% en:{block.digest}\n{block.text}\n" for block in blocks(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    start = sub.add_parser("skeleton", help="print a translation to start from")
    start.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "skeleton":
        sys.stdout.write(skeleton(args.file.resolve()))
        return 0
    findings = check()
    for finding in findings:
        print(finding)
    print(f"{len(findings)} unit(s) to translate or fix" if findings else "every translation is up to date")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
