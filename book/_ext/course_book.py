"""Sphinx extension of the course book: figures that come from the repository, not from typing.

    ```{assignment} 01_attention
    ```
ends a chapter with a box naming its assignment, its graded components and their points (read from
solutions/01_attention/01_attention.ipynb's nbgrader metadata), and how to open and check it.

    ```{course-plan}
    ```
is the introduction's table of every numbered chapter: reading time, assignment, points, time to do it.

Both are rendered when the page is read; each page notes the notebooks and chapters it reads as
dependencies, so that Sphinx reads it again when they change (the cached execution of the page's code
is not affected). The figures come from tools/points.py, which the README's table uses too.
"""
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tools import points  # noqa: E402  (after the repository is on the path)


def plural(n, word):
    return f"{n:g} {word}{'' if n == 1 else 's'}"


class MarkdownDirective(SphinxDirective):
    """A directive that writes MyST Markdown, parsed in place."""

    def render(self, markdown, dependencies):
        for path in dependencies:
            self.env.note_dependency(str(path))
        container = nodes.container()
        self.state.nested_parse(StringList(markdown.splitlines(), source=self.get_source_info()[0]),
                                self.content_offset, container)
        return container.children


class AssignmentBox(MarkdownDirective):
    required_arguments = 1

    def run(self):
        assignment = points.assignment(self.arguments[0])
        notebook = f"{assignment.id}/{assignment.id}.ipynb"
        components = "; ".join(f"`{c.name}` ({plural(c.points, 'point')})" for c in assignment.components)
        markdown = f"""
:::{{admonition}} Assignment `{assignment.id}`: {plural(assignment.points, 'point')}
:class: tip assignment-box

**What you write**: {components}. Plan about {points.duration(assignment.minutes)}.

**How to open it**: run `make lab` in the course repository. JupyterLab opens on your own folder
`work/`, where `{notebook}` waits; fill in every cell marked `# YOUR CODE HERE` and run the tests
below it. **Validate** in the toolbar runs it as the grader will.

**Before you hand it in**: `make check-submission NB=work/{notebook}` says which file to upload and
checks it (every graded cell there, a clean run within the time limit, the visible tests).

Symbols and terms: {{doc}}`notation`.
:::
"""
        return self.render(markdown, [points.solution_path(assignment.id)])


class CoursePlan(MarkdownDirective):
    def run(self):
        chapters = points.chapters()
        rows = ["| chapter | reading | assignment | points | doing it |", "| --- | --- | --- | --- | --- |"]
        for c in chapters:
            a = c.assignment
            link = f"{{doc}}`{c.number}. {c.title} <{Path(c.file).name}>`"
            rows.append(f"| {link} | {points.duration(c.reading_minutes)} | " +
                        (f"`{a.id}` | {a.points:g} | {points.duration(a.minutes)} |" if a else "| | |"))
        total = sum(c.assignment.points for c in chapters if c.assignment)
        rows += ["", f"{plural(total, 'point')} in all. Reading times count the prose at "
                 f"{points.PROSE_WORDS_PER_MINUTE} words and the code at {points.CODE_LINES_PER_MINUTE} lines "
                 f"a minute; an assignment is planned at {points.MINUTES_PER_COMPONENT} minutes per graded "
                 "component. Both are worked out from the chapters and notebooks each time the book is built."]
        dependencies = [points.TOC] + [REPO / f"{c.file}.md" for c in chapters] + \
            [points.solution_path(c.assignment.id) for c in chapters if c.assignment]
        return self.render("\n".join(rows), dependencies)


def setup(app):
    app.add_directive("assignment", AssignmentBox)
    app.add_directive("course-plan", CoursePlan)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
