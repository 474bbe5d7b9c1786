"""`make student-edition`: what the students get, holding no solution and no hidden test.

    python -m tools.student_edition [--html _build/html | --no-html] [--out _build/student-edition] [--book-url URL]

Writes into OUT (default _build/student-edition; a previous edition there is replaced, any other folder refused):

    OUT/html/                      the built book, both editions (_build/html with its zh/), for any static host
    OUT/attention-course/          the student repository, in which `make lab`, `make lab EDITION=zh`,
                                   `make check-submission` and `make book` work
    OUT/attention-course.tar.gz    the same repository, as one archive

The repository holds what is listed here, never "everything but": FILES, the folders FOLDERS (the book and its
translation, the released notebooks of both editions, the student's Jupyter configuration), zh/'s *.yml (the
grader's messages, the figures' labels, the glossary), and of tools/ and autograder/ only the modules that the
students' commands import (ENTRY_POINTS, followed through every import, those inside functions included).
So solutions/, zh/solutions/, zh/mistakes/, tests/, docs/, autograder-secret.txt and the rest of the grader
(autograder/probes.py holds reference implementations) stay out, and so does any file added later until it is
listed. Its Makefile is the course's, less every target that is not in MAKE_TARGETS (and the variables no kept
line uses); its README.md is written from the sections of the course's README.md marked
`<!-- student edition: NAME -->` ... `<!-- end student edition -->`.

Before OUT is touched, every file of the edition (the repository and the HTML) is searched for every line of a
solution or a hidden test: the grader's definition (autograder.feedback.secret_lines) applied to each solution
notebook and to its Chinese edition. One found stops the edition, naming the file and the line.
"""
import argparse
import ast
import html
import re
import shutil
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "attention-course"                  # the student repository's folder, and its archive's name
MARK = ".student-edition"                  # in OUT: a folder this tool made, which it may replace
FILES = (".gitignore", "requirements.txt", "environment.yml", "pyproject.toml", "_config.yml", "_toc.yml",
         "nbgrader_config.py")             # nbgrader_config.py: Validate, in the student's JupyterLab, reads it
FOLDERS = ("book", "notebooks", "jupyter/student", "zh/book", "zh/notebooks")
TRANSLATIONS = "zh/*.yml"                  # not zh/solutions/ nor zh/mistakes/: solutions and hidden tests, translated
# The students' commands: make lab (tools.lab, tools.workspace), make check-submission, make book (the book's
# Sphinx extension, the Chinese edition's build). What they import of the course's own packages comes with them.
ENTRY_POINTS = ("tools/lab.py", "tools/workspace.py", "tools/check_submission.py", "tools/zh_book.py",
                "book/_ext/course_book.py")
PACKAGES = ("tools", "autograder")
MAKE_TARGETS = ("$(STAMP)", "book", "cjk-font", "lab", "check-submission", "clean")
MAKE_VARIABLES = ("SHELL",)                # kept although no line names them: make reads them itself
README_SECTIONS = ("intro", "students", "installing", "contents")
SECTION = re.compile(r"^<!-- student edition: (\w+) -->\n(.*?)\n<!-- end student edition -->$", re.S | re.M)
JUNK = ("__pycache__", ".ipynb_checkpoints")


class EditionError(Exception):
    """The edition cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Leak:
    path: Path     # relative to the edition's folder
    line: str      # the line of a solution or hidden test found in it


@dataclass(frozen=True)
class StudentEdition:
    repository: Path
    archive: Path
    html: Path | None
    files: int     # in the repository


# --- what the repository holds ----------------------------------------------------------------------------------


def imported_files(entry_points: Iterable[str]) -> set[str]:
    """The files (relative paths) of the entry points and of every module of PACKAGES they import, at any depth,
    each with its package's __init__.py."""
    todo, found = list(entry_points), set()
    while todo:
        relative = todo.pop()
        if relative in found:
            continue
        path = REPO / relative
        if not path.is_file():
            raise EditionError(f"{relative} is missing: the student edition needs it")
        found.add(relative)
        if Path(relative).parent.as_posix() in PACKAGES:
            todo.append(f"{Path(relative).parent.as_posix()}/__init__.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=relative)):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise EditionError(f"{relative}: a relative import, which the edition does not follow: import "
                                   "by the package's name")
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)] \
                if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                parts = name.split(".")
                if parts[0] not in PACKAGES:
                    continue
                for depth in range(1, len(parts) + 1):
                    for candidate in (Path(*parts[:depth]) / "__init__.py", Path(*parts[:depth]).with_suffix(".py")):
                        if (REPO / candidate).is_file():
                            todo.append(candidate.as_posix())
    return found


def is_junk(relative: Path) -> bool:
    """What an editor, Python or a build leaves in a folder, which no student needs."""
    return any(part in JUNK or part.startswith(".") for part in relative.parts) or relative.suffix == ".pyc"


def repository_files() -> list[str]:
    """Every file of the student repository that is copied from the course's (relative paths), sorted."""
    chosen = set(FILES) | imported_files(ENTRY_POINTS)
    chosen |= {p.relative_to(REPO).as_posix() for p in REPO.glob(TRANSLATIONS)}
    for folder in FOLDERS:
        if not (REPO / folder).is_dir():
            raise EditionError(f"{folder}/ is missing: the student edition needs it")
        for path in (REPO / folder).rglob("*"):
            relative = path.relative_to(REPO)
            if not is_junk(relative.relative_to(folder)) and (path.is_file() or path.is_symlink()):
                chosen.add(relative.as_posix())
    for name in sorted(chosen):
        path = REPO / name
        if path.is_symlink() or not path.is_file():
            raise EditionError(f"{name} is {'a symbolic link' if path.is_symlink() else 'missing'}: the edition "
                               "copies files only")
    return sorted(chosen)


# --- the students' Makefile and README --------------------------------------------------------------------------

RULE = re.compile(r"^([^\s#=:][^=:]*?)\s*::?(?!=)")                 # a rule's targets; not `X := value`
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?::=|\?=|\+=|=)")


def student_makefile(text: str) -> str:
    """The course's Makefile with only MAKE_TARGETS: each paragraph (blank-line separated) that defines another
    target goes, and so does each variable (with the comment above it) that no line kept uses."""
    kept: list[list[str]] = []
    for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
        lines = paragraph.splitlines()
        targets = [t for line in lines for m in [RULE.match(line)] if m for t in m.group(1).split()]
        if ".PHONY" in targets:
            phony = [line for line in lines if line.startswith(".PHONY")][0].split(":", 1)[1].split()
            lines = [f".PHONY: {' '.join(t for t in phony if t in MAKE_TARGETS)}" if line.startswith(".PHONY")
                     else line for line in lines]
        elif targets:
            wanted = {t in MAKE_TARGETS for t in targets}
            if wanted == {True, False}:
                raise EditionError("a paragraph of the Makefile defines students' and other targets together "
                                   f"({', '.join(targets)}): part them with a blank line")
            if wanted == {False}:
                continue
        kept.append(lines)
    # Variables: each assignment line outside a rule, with the comment lines just above it.
    groups: dict[str, tuple[int, int, int]] = {}    # name -> (paragraph, first line, last line)
    for p, lines in enumerate(kept):
        if any(RULE.match(line) for line in lines):
            continue
        start = 0
        for i, line in enumerate(lines):
            match = ASSIGNMENT.match(line)
            if match:
                groups[match.group(1)] = (p, start, i)
                start = i + 1
            elif not line.startswith("#"):
                start = i + 1

    def text_without(dropped: set[str]) -> str:
        skip = {(p, i) for name in dropped for p, first, last in [groups[name]] for i in range(first, last + 1)}
        return "\n\n".join("\n".join(line for i, line in enumerate(lines) if (p, i) not in skip)
                           for p, lines in enumerate(kept))
    dropped = {name for name in groups if name not in MAKE_VARIABLES}
    while True:    # a variable is kept when a kept line uses it, until nothing changes
        body = text_without(dropped)
        used = {name for name in dropped if f"$({name})" in body or f"${{{name}}}" in body}
        if not used:
            break
        dropped -= used
    result = re.sub(r"\n{3,}", "\n\n", text_without(dropped)).strip("\n").splitlines()
    if result and result[0].startswith("#"):
        result[0] = ("# The course's commands for students (its student edition, made by `make student-edition`): "
                     "README.md says what each does.")
    return "\n".join(result) + "\n"


def readme_sections(text: str) -> dict[str, str]:
    sections = {match.group(1): match.group(2).strip("\n") for match in SECTION.finditer(text)}
    missing = [name for name in README_SECTIONS if name not in sections]
    if missing:
        raise EditionError(f"README.md lacks the sections marked for students: {', '.join(missing)} (each between "
                           "`<!-- student edition: NAME -->` and `<!-- end student edition -->`)")
    return sections


def student_readme(text: str, book_url: str | None = None) -> str:
    """The student repository's README.md: the course's title, then its sections marked for students, HTML comments
    (the generated table's markers) left out."""
    sections = {name: re.sub(r"^<!--.*?-->\n?", "", body, flags=re.M | re.S)
                for name, body in readme_sections(text).items()}
    title = text.splitlines()[0] if text.startswith("# ") else f"# {NAME}"
    book = (f"Read the book at <{book_url.rstrip('/')}/> (简体中文: <{book_url.rstrip('/')}/zh/>), or build it here "
            "with `make book`." if book_url else "`make book` builds the book into `_build/html/` (简体中文: "
                                                 "`_build/html/zh/`).")
    about = textwrap.fill(
        "This is the course's student edition: the book's sources (`book/`, and its 简体中文 translation in "
        "`zh/book/`), the assignments (`notebooks/`, and `zh/notebooks/` in 简体中文) and the commands to work on them "
        f"and check them before you hand them in. It holds no solution and no hidden test. {book}", width=110)
    installing = textwrap.fill("You need Python 3.11 and `make`: the first `make lab`, `make check-submission` or "
                               "`make book` installs the rest, as below.", width=110)
    parts = [title, sections["intro"], about, sections["students"], "## Installing", installing,
             sections["installing"], sections["contents"]]
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


# --- the search for solutions and hidden tests ------------------------------------------------------------------


def secret_lines() -> set[str]:
    """Every line of a solution or a hidden test (the grader's definition), in both editions."""
    import nbformat
    from autograder import editions, feedback
    notebooks = sorted(p for p in (REPO / "solutions").glob("*/*.ipynb") if p.stem == p.parent.name)
    if not notebooks:
        raise EditionError("no solution notebook in solutions/: make student-edition runs in the course's own "
                           "repository, whose solutions it keeps out")
    lines: set[str] = set()
    for path in notebooks:
        english = nbformat.read(path, as_version=4)
        lines |= feedback.secret_lines(english)
        if editions.has_translation(path.stem):
            lines |= feedback.secret_lines(editions.translated_notebook(english, path.stem))
    return lines


Trie = dict[str, "Trie"]   # a character -> what may follow it; "" -> {} where a line ends


def matcher(lines: Iterable[str]) -> re.Pattern[str]:
    """One regular expression that finds any of `lines`: their trie, so that a text is read once, not once a line."""
    trie: Trie = {}
    for line in lines:
        node = trie
        for character in line:
            node = node.setdefault(character, {})
        node[""] = {}

    def pattern(node: Trie) -> str:
        branches = [re.escape(c) + pattern(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and "" not in node else f"(?:{'|'.join(branches)})"
        return body + ("?" if "" in node else "")
    return re.compile(pattern(trie) or r"(?!)")


def readable_text(path: Path) -> str | None:
    """What a reader of the file could find a line in, whitespace-normalised: a page's text and its markup, a
    notebook's cells and its JSON, any other text file as it is; None for a binary file (an image, a font)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    views = [text]
    if path.suffix == ".html":
        views.append(html.unescape(re.sub(r"<[^>]+>", "", text)))
    elif path.suffix == ".ipynb":
        import json
        try:
            views += ["".join(cell.get("source", "")) for cell in json.loads(text).get("cells", [])]
        except (ValueError, AttributeError, TypeError):
            pass   # not a notebook after all: its text is searched as it is
    return "\n".join(" ".join(view.split()) for view in views)


def leaks(folder: Path, secrets: re.Pattern[str]) -> list[Leak]:
    """Every file under `folder` that holds a line of a solution or a hidden test (one line named per file)."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = readable_text(path)
        match = secrets.search(text) if text is not None else None
        if match:
            found.append(Leak(path.relative_to(folder), match.group(0)))
    return found


# --- making it ---------------------------------------------------------------------------------------------------


def write_repository(target: Path, book_url: str | None) -> int:
    """The student repository in `target`; returns its number of files."""
    files = repository_files()
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target / relative)
    (target / "Makefile").write_text(student_makefile((REPO / "Makefile").read_text(encoding="utf-8")),
                                     encoding="utf-8")
    (target / "README.md").write_text(student_readme((REPO / "README.md").read_text(encoding="utf-8"), book_url),
                                      encoding="utf-8")
    return len(files) + 2


def archive(folder: Path, target: Path) -> None:
    """folder as a .tar.gz whose members are under folder's name, owned by no one in particular."""
    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, filter=anonymous)


def build(out: Path, html_folder: Path | None, book_url: str | None = None) -> StudentEdition:
    """The student edition in `out` (see the module's docstring); raises EditionError, leaving `out` as it was."""
    out = out.resolve()
    if out.exists() and not (out / MARK).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise EditionError(f"{out} exists and is not a student edition: name another --out, or empty it yourself")
    if html_folder is not None and not all((html_folder / page).is_file() for page in ("index.html", "zh/index.html")):
        raise EditionError(f"{html_folder} holds no built book in both editions (index.html and zh/index.html): "
                           "run `make book` first, or pass --no-html")
    secrets = matcher(secret_lines())
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".student-edition-", dir=out.parent))
    staging.chmod(0o755)   # (mkdtemp's is 0o700) for a web server, or anyone, to read
    try:
        repository = staging / NAME
        files = write_repository(repository, book_url)
        if html_folder is not None:
            shutil.copytree(html_folder, staging / "html", symlinks=False)
        found = leaks(staging, secrets)
        if found:
            raise EditionError(f"{len(found)} file(s) of the edition hold a line of a solution or a hidden test; "
                               "nothing was written:\n" + "\n".join(f"  {leak.path}: {leak.line}" for leak in found))
        archive(repository, staging / f"{NAME}.tar.gz")
        (staging / MARK).write_text("made by `make student-edition` (tools/student_edition.py); it replaces this "
                                    "folder when run again\n", encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=".student-edition-old-", dir=out.parent))
            out.rename(old / "previous")
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return StudentEdition(out / NAME, out / f"{NAME}.tar.gz", out / "html" if html_folder is not None else None, files)


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m tools.student_edition", description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=REPO / "_build" / "html",
                        help="the built book, both editions (default: _build/html, which `make book` builds)")
    parser.add_argument("--no-html", action="store_true", help="make the student repository only")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "student-edition",
                        help="where to write the edition (default: _build/student-edition)")
    parser.add_argument("--book-url", default=None,
                        help="where the students read the book (its HTML, published): the student README links it")
    args = parser.parse_args(argv)
    try:
        edition = build(args.out, None if args.no_html else args.html, args.book_url)
    except EditionError as error:
        print(f"make student-edition: {error}", file=sys.stderr)
        return 1
    print(f"make student-edition: the student repository ({edition.files} files, no solution and no hidden test) in "
          f"{shown(edition.repository)}/, and as {shown(edition.archive)}")
    if edition.html is not None:
        print(f"make student-edition: the book's HTML, both editions, in {shown(edition.html)}/: "
              "publish it on any static host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
