"""`make book`, second half: the 简体中文 edition, in _build/html/zh/, from one execution of the chapters.

The English build (first half of `make book`) executes each chapter and caches the executed notebook in
_build/.jupyter_cache. This module assembles each Chinese page as a notebook: the Markdown and the code cells of
its translation (zh/book/<name>.md), with the outputs of the English page's code cells, which it reads from that
cache. A figure's output carries the figure itself, pickled (book/_kernel/figures_for_editions.py runs in the
kernels of the English build); it is drawn again here, its word labels replaced by their translations from
zh/figures.yml, in a CJK font. Sphinx then builds the assembled pages (execution off) with the English book's
configuration, in Chinese (language zh_CN: the theme's own words, and a search index of Chinese words cut by
jieba), into _build/html/zh/.

    python -m tools.zh_book          # after the English build: assemble, build, copy into _build/html/zh
"""
import base64
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from autograder import editions
from tools import points, translations

REPO = points.REPO
BUILD = REPO / "_build"
SOURCES = BUILD / "zh"                  # the assembled Chinese book: _config.yml, _toc.yml, book/*.ipynb
HTML = BUILD / "html" / "zh"            # where the Chinese edition is published, beside the English
CACHE = BUILD / ".jupyter_cache"        # the English build's executed chapters
FIGURE_LABELS = translations.ZH / "figures.yml"
FIGURE_MIME = "application/vnd.course.figure+pickle"
TITLE = "注意力、自注意力与多头注意力：PyTorch 实现"
MATH = re.compile(r"\$[^$]*\$")
CAPTIONS = {"Chapters": "章节", "Reference": "参考"}   # the parts of _toc.yml (tests/test_book.py checks each has one)


class EditionError(Exception):
    """The Chinese edition cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Page:
    english: Path
    translation: Path

    @property
    def name(self) -> str:   # e.g. book/01_attention
        return self.english.relative_to(REPO).with_suffix("").as_posix()


def pages() -> list[Page]:
    return [Page(english, translation) for english, translation in translations.pages()]


def read_myst(path: Path) -> nbformat.NotebookNode:
    """A MyST page as a notebook; a translation's marker lines are dropped (between a label and its heading, a
    comment would part them)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                     if not translations.MARKER.match(line))
    notebook: nbformat.NotebookNode = read_myst_markdown_notebook(text + "\n")
    return notebook


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def executed(page: Page) -> nbformat.NotebookNode:
    """The English page as the English build executed it (from its cache)."""
    notebook = read_myst(page.english)
    if not code_cells(notebook):
        return notebook
    from jupyter_cache import get_cache
    try:
        _, merged = get_cache(str(CACHE)).merge_match_into_notebook(notebook)
    except KeyError as error:
        raise EditionError(f"{page.name}: the English build has not executed this version of the page "
                           f"(no match in {CACHE.relative_to(REPO)}); run the English build first: make book") from error
    result: nbformat.NotebookNode = merged
    return result


def label_translation(text: str, labels: dict[str, str]) -> str | None:
    """The Chinese of a figure's text, the text itself where it has no word to translate, None if missing.
    A label written with `{}` in zh/figures.yml stands for each text that has anything (a number the chapter
    computed) in their place: "fitted slope {}": "拟合斜率 {}" translates "fitted slope 2.06"."""
    if text in labels:
        return labels[text]
    for english, chinese in labels.items():
        if "{}" in english:
            match = re.fullmatch("(.+?)".join(map(re.escape, english.split("{}"))), text, flags=re.S)
            if match:
                pieces = chinese.split("{}")
                if len(pieces) != len(match.groups()) + 1:
                    raise EditionError(f"{FIGURE_LABELS.relative_to(REPO)}: {english!r} and its translation "
                                       "have different numbers of {}")
                return "".join(piece + value for piece, value in zip(pieces, [*match.groups(), ""]))
    if len(re.findall(r"[A-Za-z]{2,}", MATH.sub(" ", text))) == 0:
        return text   # numbers, symbols, math: the same in both editions
    return None


def cjk_font() -> str:
    """The family name of an installed CJK font, registered with matplotlib (editions.cjk_font)."""
    font = editions.cjk_font()
    if font is None:
        raise EditionError("no CJK font is installed for the figures' Chinese labels: apt-get install "
                           "fonts-wqy-microhei (make book does it when it can)")
    return font


def redraw(pickled: str, labels: dict[str, str], missing: set[str]) -> str:
    """A figure drawn again with its labels in Chinese, as a base64 PNG; labels with no translation go to missing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text
    figure = pickle.loads(zlib.decompress(base64.b64decode(pickled)))
    font = cjk_font()
    for text in figure.findobj(Text):
        english = text.get_text()
        chinese = label_translation(english, labels)
        if chinese is None:
            missing.add(english)
        elif chinese != english:
            text.set_text(chinese)
            text.set_fontfamily([font, "DejaVu Sans"])
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(buffer, format="png", bbox_inches="tight")   # as IPython's inline backend draws it
    glyphs = [str(w.message) for w in caught if "Glyph" in str(w.message)]
    if glyphs:
        raise EditionError(f"a figure's Chinese label has characters that {font} lacks: {glyphs[0]}")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def assemble(page: Page, labels: dict[str, str], missing: set[str]) -> nbformat.NotebookNode:
    """The Chinese page as an executed notebook: its own cells, the English page's outputs."""
    if not page.translation.is_file():
        raise EditionError(f"{page.name}: no translation ({page.translation.relative_to(REPO)}); "
                           "make translations lists what is missing")
    english = code_cells(executed(page))
    notebook = read_myst(page.translation)
    chinese = code_cells(notebook)
    if len(chinese) != len(english):
        raise EditionError(f"{page.translation.relative_to(REPO)} has {len(chinese)} code cells, its English page "
                           f"{len(english)}: make translations says which")
    for zh_cell, en_cell in zip(chinese, english):
        zh_cell.execution_count = en_cell.get("execution_count")
        zh_cell.outputs = []
        for output in en_cell.get("outputs", []):
            output = nbformat.from_dict(dict(output))
            data = output.get("data", {})
            if FIGURE_MIME in data:
                data["image/png"] = redraw(data.pop(FIGURE_MIME), labels, missing)
            zh_cell.outputs.append(output)
    return notebook


def write_config() -> None:
    """The English book's _config.yml and _toc.yml, for the assembled Chinese pages."""
    config: dict[str, Any] = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    config["title"] = TITLE
    config["exclude_patterns"] = ["_build", "**/.*"]
    config["execute"]["execute_notebooks"] = "off"
    config["bibtex_bibfiles"] = ["book/references.bib"]
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {name: str(REPO / path) for name, path in sphinx["local_extensions"].items()}
    sphinx["config"]["language"] = "zh_CN"
    sphinx["config"]["html_theme_options"] = {"search_bar_text": "搜索本书……"}   # jupyter-book's is English
    sphinx["config"]["nb_code_prompt_show"] = "点击显示"   # "Show code cell {type}": {type} would stay English
    sphinx["config"]["nb_code_prompt_hide"] = "点击隐藏"
    sphinx["config"]["course_edition"] = "zh"
    (SOURCES / "_config.yml").write_text("# Generated by tools/zh_book.py from _config.yml: do not edit.\n" +
                                         yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    toc: dict[str, Any] = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    for part in toc.get("parts", []):
        part["caption"] = CAPTIONS.get(part.get("caption", ""), part.get("caption", ""))
    (SOURCES / "_toc.yml").write_text("# Generated by tools/zh_book.py from _toc.yml: do not edit.\n" +
                                      yaml.safe_dump(toc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    shutil.copy(REPO / "book" / "references.bib", SOURCES / "book" / "references.bib")


def assemble_all() -> None:
    labels: dict[str, str] = yaml.safe_load(FIGURE_LABELS.read_text(encoding="utf-8")) or {} \
        if FIGURE_LABELS.is_file() else {}
    (SOURCES / "book").mkdir(parents=True, exist_ok=True)
    missing: set[str] = set()
    for page in pages():
        target = SOURCES / f"{page.name}.ipynb"
        notebook = assemble(page, labels, missing)
        text = nbformat.writes(notebook)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:  # unchanged: Sphinx reads it not again
            target.write_text(text, encoding="utf-8")
    if missing:
        listed = SOURCES / "untranslated-figure-labels.yml"
        listed.write_text(yaml.safe_dump({label: "" for label in sorted(missing)}, allow_unicode=True, width=1000),
                          encoding="utf-8")
        raise EditionError(f"{len(missing)} figure label(s) have no translation in {FIGURE_LABELS.relative_to(REPO)}; "
                           f"{listed.relative_to(REPO)} lists them, ready to fill in and add:\n" +
                           "\n".join(f"  {label!r}" for label in sorted(missing)))
    write_config()


def build() -> int:
    """Sphinx on the assembled pages, warnings as errors, then the HTML copied to _build/html/zh."""
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    status = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(SOURCES), "--builder",
                             "html", "-W", "-n", "--keep-going"], env=environment).returncode
    if status != 0:
        return status
    if HTML.exists():
        shutil.rmtree(HTML)
    shutil.copytree(SOURCES / "_build" / "html", HTML)
    return 0


def main() -> int:
    try:
        assemble_all()
    except EditionError as error:
        print(f"The Chinese edition: {error}", file=sys.stderr)
        return 1
    return build()


if __name__ == "__main__":
    sys.exit(main())
