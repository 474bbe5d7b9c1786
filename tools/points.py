"""What each assignment grades, read from its notebook's nbgrader metadata: the solution notebook
(solutions/<id>/<id>.ipynb), or where there is none (the student edition, tools/student_edition.py) the
released one (notebooks/<id>/<id>.ipynb), which nbgrader gives the same grade ids, points and solution cells.

The README's table (`make readme`, tools/readme.py) and the book's assignment boxes and course plan
(book/_ext/course_book.py) are generated from these figures, never typed. A graded test cell counts
for the solution cell above it: notebooks put each component's tests right after its solution cell.
A solution cell with no test cell after it (code pasted from an earlier assignment) grades nothing here.
The book's Sphinx extension imports this module too (the standard library and PyYAML only).
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "notebooks"
BOOK = REPO / "book"
TOC = REPO / "_toc.yml"
MINUTES_PER_COMPONENT = 30   # the course plan's estimate for writing and testing one graded component
PROSE_WORDS_PER_MINUTE = 150  # reading speed for technical prose
CODE_LINES_PER_MINUTE = 10    # reading (and running) a chapter's code


@dataclass(frozen=True)
class Component:
    name: str      # the solution cell's grade_id: the function or class the student writes
    points: float


@dataclass(frozen=True)
class Assignment:
    id: str
    components: tuple[Component, ...]  # in notebook order, each worth at least one point

    @property
    def points(self) -> float:
        return sum(c.points for c in self.components)

    @property
    def minutes(self) -> int:
        return MINUTES_PER_COMPONENT * len(self.components)


@dataclass(frozen=True)
class Chapter:
    number: int
    file: str           # path of the chapter's source in the table of contents, e.g. book/01_attention
    title: str
    reading_minutes: int
    assignment: Assignment | None  # the assignment named like the chapter (solutions/<name>/ or notebooks/<name>/)


def solution_path(assignment_id: str) -> Path:
    return SOLUTIONS / assignment_id / f"{assignment_id}.ipynb"


def release_path(assignment_id: str) -> Path:
    return RELEASE / assignment_id / f"{assignment_id}.ipynb"


def notebook_path(assignment_id: str) -> Path:
    """The notebook whose metadata says what an assignment grades: its solution notebook, else its release."""
    solution = solution_path(assignment_id)
    return solution if solution.is_file() else release_path(assignment_id)


def assignment(assignment_id: str) -> Assignment:
    """The graded components of an assignment and their points."""
    path = notebook_path(assignment_id)
    if not path.is_file():
        raise FileNotFoundError(f"assignment {assignment_id}: neither {solution_path(assignment_id).relative_to(REPO)} "
                                f"nor {path.relative_to(REPO)} exists")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    points: dict[str, float] = {}
    current: str | None = None
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            current = meta["grade_id"]
            points.setdefault(current, 0)
        elif meta.get("grade"):
            if current is None:
                raise ValueError(f"{assignment_id}: the graded cell {meta['grade_id']} comes before any solution cell")
            points[current] += meta.get("points", 0)
    return Assignment(assignment_id, tuple(Component(name, p) for name, p in points.items() if p > 0))


def toc_chapters() -> list[str]:
    """The files of the numbered chapters of _toc.yml (its parts with `numbered: true`), in order."""
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    parts = toc.get("parts") or [{"numbered": toc.get("options", {}).get("numbered"),
                                  "chapters": toc.get("chapters", [])}]
    return [chapter["file"] for part in parts if part.get("numbered") for chapter in part.get("chapters", [])]


def reading_minutes(text: str) -> int:
    """Minutes to read a MyST chapter: its prose, and its code, at the rates above; a multiple of 5."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # front matter
    code = re.findall(r"^```\{code-cell\}.*?\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    minutes = len(re.findall(r"\w+", prose)) / PROSE_WORDS_PER_MINUTE + \
        sum(len([l for l in c.splitlines() if l.strip()]) for c in code) / CODE_LINES_PER_MINUTE
    return max(5, 5 * round(minutes / 5))


def chapters() -> list[Chapter]:
    """Every numbered chapter of the book, with its assignment."""
    result = []
    for number, file in enumerate(toc_chapters(), start=1):
        text = (REPO / f"{file}.md").read_text(encoding="utf-8")
        heading = re.search(r"^# (.+)$", text, flags=re.M)
        if heading is None:
            raise ValueError(f"{file}.md has no title (a line `# Title`)")
        title = heading.group(1).strip()
        name = Path(file).name
        result.append(Chapter(number, file, title, reading_minutes(text),
                              assignment(name) if notebook_path(name).is_file() else None))
    return result


def duration(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    return " ".join(part for part in [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""] if part)
