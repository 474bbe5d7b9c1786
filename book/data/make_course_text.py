"""Write book/data/course_text.txt, the text on which chapter 6 trains its language model.

The text is the prose of this course's own chapters 1-5 (book/01_attention.md ... book/05_attention_at_scale.md),
as they stood when chapter 6 was written, released under the course repository's licence. The snapshot is
written once and committed: the chapters may change later, the training text does not.

What is kept: the Markdown prose outside code cells. What is dropped: the front matter, code cells and every
other fenced block (admonitions keep their text), display math between `$$` lines, MyST labels `(name)=`,
headings' `#` marks, and the roles `{cite}`...`` (`{cite:t}` becomes "its authors"), `{glue:text}`...`` (a number
measured when a chapter builds: "N"), `{ref}`...`` ("above") and `{doc}`...`` (its title). Characters outside ASCII are replaced by their closest ASCII spelling where NFKD has
one (é -> e) and by a few fixed spellings (× -> x, → -> ->, ≤ -> <=, ...), else dropped; paragraphs are joined
into single lines, separated by blank lines.

Run from the repository root:  python book/data/make_course_text.py
"""
import re
import unicodedata
from pathlib import Path

CHAPTERS = ["01_attention", "02_self_attention", "03_multi_head_attention", "04_transformer",
            "05_attention_at_scale"]
SPELLINGS = {"×": "x", "→": "->", "←": "<-", "≤": "<=", "≥": ">=", "≈": "~", "≠": "!=", "—": " -- ", "–": "-",
             "’": "'", "‘": "'", "“": '"', "”": '"', "…": "...", "·": ".", "−": "-", "⊕": "+"}


def prose(markdown):
    """The paragraphs of prose of one chapter, each on one line."""
    markdown = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)           # front matter
    kept, fence, math = [], None, False
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence:                                                                # inside a fenced block
            if stripped == fence:
                fence = None
            elif fence_is_admonition and not stripped.startswith(":"):
                kept.append(line)
            continue
        match = re.match(r"^(`{3,}|:{3,})\s*(\{[\w-]+\})?", stripped)
        if match:
            fence = match.group(1)
            fence_is_admonition = match.group(2) in ("{admonition}", "{note}", "{warning}")
            continue
        if stripped == "$$" or (stripped.startswith("$$") and not stripped.endswith("$$")):
            math = not math
            continue
        if math or (stripped.startswith("$$") and stripped.endswith("$$")) or re.match(r"^\(.+\)=$", stripped):
            continue
        kept.append(line.lstrip("#").strip() if stripped.startswith("#") else line)
    text = "\n".join(kept)
    text = re.sub(r"\{doc\}`([^`<]*?)\s*(<[^`]*>)?`", lambda m: m.group(1) or "notation", text)   # its title
    text = re.sub(r"\{cite:t\}`[^`]*`", "its authors", text)
    text = re.sub(r"\{glue:text\}`[^`]*`", "N", text)                      # a number measured when the book builds
    text = re.sub(r"\{ref\}`[^`]*`", "above", text)
    text = re.sub(r"\{(cite|cite:p|glue|numref|eq)\}`[^`]*`", "", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paragraphs if p and not p.startswith(("```", ":::"))]


def ascii_only(text):
    text = "".join(SPELLINGS.get(c, c) for c in text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r" +([.,;:])", r"\1", re.sub(r"  +", " ", text))


if __name__ == "__main__":
    book = Path(__file__).resolve().parent.parent
    paragraphs = [p for name in CHAPTERS for p in prose((book / f"{name}.md").read_text(encoding="utf-8"))]
    text = ascii_only("\n\n".join(paragraphs)) + "\n"
    (book / "data" / "course_text.txt").write_text(text, encoding="ascii")
    print(f"{len(paragraphs)} paragraphs, {len(text):,} characters, {len(set(text))} distinct")
