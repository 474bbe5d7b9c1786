"""Sphinx extension of the course book: figures that come from the repository, not from typing.

    ```{assignment} 01_attention
    ```
ends a chapter with a box naming its assignment, its graded components and their points (read from
solutions/01_attention/01_attention.ipynb's nbgrader metadata, or the released notebook where there is no
solutions/, tools/points.py), and how to open and check it.

    ```{course-plan}
    ```
is the introduction's table of every numbered chapter: reading time, assignment, points, time to do it.

Every page starts with a link to the same page in the other edition: the English book is built into
_build/html/, the Chinese one (tools/zh_book.py, `course_edition: zh`) into _build/html/zh/, with the same
page names. In the Chinese edition the boxes and the plan speak Chinese.

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
        if self.config.course_edition == "zh":
            components = "；".join(f"`{c.name}`（{c.points:g} 分）" for c in assignment.components)
            markdown = f"""
:::{{admonition}} 作业 `{assignment.id}`：{assignment.points:g} 分
:class: tip assignment-box

**要写的内容**：{components}。预计用时约 {points.duration(assignment.minutes)}。

**如何打开**：在课程仓库中运行 `make lab EDITION=zh`。JupyterLab 会打开你自己的文件夹 `work/`，
中文版的 `{notebook}` 就在其中；填写每个标有 `# YOUR CODE HERE` 的单元格，并运行其下方的测试。
工具栏中的 **Validate** 会像评分器一样运行整个笔记本。

**提交之前**：`make check-submission NB=work/{notebook}` 会告诉你应上传哪个文件，并检查它
（每个评分单元格都在、在时间限制内从头到尾运行无误、可见测试通过）。

符号与术语：{{doc}}`notation`。
:::
"""
        else:
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
        return self.render(markdown, [points.notebook_path(assignment.id)])


class CoursePlan(MarkdownDirective):
    def run(self):
        chapters = points.chapters()
        zh = self.config.course_edition == "zh"
        rows = ["| 章 | 阅读 | 作业 | 分数 | 完成作业 |" if zh else "| chapter | reading | assignment | points | doing it |",
                "| --- | --- | --- | --- | --- |"]
        for c in chapters:
            a = c.assignment
            # In Chinese, the link shows the Chinese page's own title.
            link = f"{{doc}}`{Path(c.file).name}`" if zh else f"{{doc}}`{c.number}. {c.title} <{Path(c.file).name}>`"
            rows.append(f"| {link} | {points.duration(c.reading_minutes)} | " +
                        (f"`{a.id}` | {a.points:g} | {points.duration(a.minutes)} |" if a else "| | |"))
        total = sum(c.assignment.points for c in chapters if c.assignment)
        if zh:
            rows += ["", f"共 {total:g} 分。阅读时间按英文原文估算：正文每分钟 {points.PROSE_WORDS_PER_MINUTE} 词，"
                     f"代码每分钟 {points.CODE_LINES_PER_MINUTE} 行；每个评分组件按 {points.MINUTES_PER_COMPONENT} "
                     "分钟计划。两者都在每次构建本书时由各章和笔记本算出。"]
        else:
            rows += ["", f"{plural(total, 'point')} in all. Reading times count the prose at "
                     f"{points.PROSE_WORDS_PER_MINUTE} words and the code at {points.CODE_LINES_PER_MINUTE} lines "
                     f"a minute; an assignment is planned at {points.MINUTES_PER_COMPONENT} minutes per graded "
                     "component. Both are worked out from the chapters and notebooks each time the book is built."]
        dependencies = [points.TOC] + [REPO / f"{c.file}.md" for c in chapters] + \
            [points.notebook_path(c.assignment.id) for c in chapters if c.assignment]
        return self.render("\n".join(rows), dependencies)


def edition_switch(app, pagename, templatename, context, doctree):
    """A link at the top of the page to the same page in the other edition."""
    if "body" not in context:
        return
    depth = pagename.count("/")
    if app.config.course_edition == "zh":
        href, label, lang = "../" * (depth + 1) + f"{pagename}.html", "English", "en"
    else:
        href, label, lang = "../" * depth + f"zh/{pagename}.html", "简体中文", "zh-Hans"
    context["body"] = (f'<p class="edition-switch" style="text-align: right; margin: 0;">'
                       f'<a href="{href}" hreflang="{lang}" lang="{lang}">{label}</a></p>\n' + context["body"])


def setup(app):
    app.add_config_value("course_edition", "en", "env")  # "zh": the Chinese edition (tools/zh_book.py)
    app.connect("html-page-context", edition_switch)
    app.add_directive("assignment", AssignmentBox)
    app.add_directive("course-plan", CoursePlan)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
