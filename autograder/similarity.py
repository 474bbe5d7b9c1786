"""Copied-work detection: pairs of submissions of the same assignment whose student-written code is
suspiciously similar, for a person to look at. A pair is a reason to look, never a proof.

Student-written code is the source of the solution cells and of the code cells a student added, minus
what every student has anyway: the released stubs (the release notebook's code), the helpers pasted
from another assignment (a solution cell that no graded test cell follows before the next solution
cell: left out entirely) and the code shown in the book (the code cells of book/*.md).

Nothing is executed: copydetect (winnowing, Schleimer, Wilkerson and Aiken 2003) tokenises each
notebook's student code with pygments, replaces every identifier by one letter (renamed variables,
comments and whitespace do not matter), and keeps a sample of the hashes of its k-grams; the hashes of
the boilerplate above are removed. Fingerprints are order-free sets, so reordered functions and cells
still match. Each notebook is fingerprinted once, then every pair of an assignment is compared.

The same notebooks give the same pairs and scores in every run: the k-grams are hashed here with BLAKE2b
(`_kgram_hashes`), not by copydetect's own `hashed_kgrams`, which uses Python's hash() of a string: salted
afresh in every process (PYTHONHASHSEED), it changed which k-grams winnowing keeps, and so every score, from
one run to the next (a pair at 0.605, absent, then at 0.610). Nothing else here depends on hash() or on the
order of a set: what is summed, counted or compared over a set of hashes does not depend on its order.

The score of a pair is the smaller of the two shares: the share of A's fingerprinted code that is found
in B, and the share of B's found in A (copydetect's two similarities). Both must be high: one notebook
whose few lines all occur somewhere in a longer one is not a pair by itself.
"""
from __future__ import annotations

import functools
import hashlib
import os
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from importlib import metadata
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import autograder
from autograder import course
from autograder.collect import Submission, read_notebook
from autograder.course import components
from autograder.model import Pair

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from nbformat import NotebookNode

REPO = Path(autograder.__file__).resolve().parent.parent
NOISE = 25           # k: the shortest match that counts, in characters of normalised code (about one statement)
GUARANTEE = 30       # every match at least this long is found (winnowing window GUARANTEE - NOISE + 1)
THRESHOLD = 0.6      # calibrated by tests/test_similarity.py on independent solutions and planted copies
MAX_CODE_CHARS = 50_000    # of one notebook's student code (about 1000 lines); more is cut
MAX_REGIONS = 6      # matching regions kept per pair (the cells that match most)
MAX_REGION_LINES = 40
MAX_REGION_CHARS = 2000
SEPARATOR = "\ue000"  # between cells: kept by the tokeniser, and no k-gram across it counts
CELL_SEPARATOR = f"\n{SEPARATOR}\n"


@dataclass(frozen=True)
class _Code:
    """One notebook's student code: the text fingerprinted and where each cell starts in it."""
    student_id: str
    text: str
    starts: tuple[int, ...]  # character offset of each cell in text


@dataclass(frozen=True)
class Fingerprint:
    """The winnowed k-gram hashes of a text, with what copydetect's compare_files reads of its own
    CodeFingerprint (the same attribute names)."""
    filtered_code: str               # the text tokenised and normalised (identifiers as one letter)
    offsets: npt.NDArray[np.int64]   # N x 2: (offset in filtered_code, characters removed before it)
    hashes: frozenset[int]           # the hashes kept
    hash_idx: dict[int, list[int]]   # {hash: offsets in filtered_code of the k-grams kept with it}
    token_coverage: float            # characters of filtered_code inside a kept k-gram
    k: int = NOISE


@dataclass(frozen=True)
class _Fingerprinted:
    """A notebook's student code, its fingerprint, and where each fingerprint lies in the code:
    {hash: ((cell, start, end), ...)} in characters of the original text."""
    code: _Code
    fingerprint: Fingerprint
    places: dict[int, tuple[tuple[int, int, int], ...]]


# ---------------------------------------------------------------- what is student code

def _is_code(cell: Mapping[str, Any]) -> bool:
    return bool(cell.get("cell_type") == "code")


def _source(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string (a notebook file may hold it as a list of lines)."""
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(line for line in source if isinstance(line, str))
    return source if isinstance(source, str) else ""


def _nbgrader(cell: Mapping[str, Any]) -> dict[str, Any]:
    metadata = cell.get("metadata", {}).get("nbgrader", {})
    return metadata if isinstance(metadata, dict) else {}


def pasted_helpers(source_notebook: NotebookNode) -> set[str | None]:
    """grade_ids of the solution cells that no graded test cell follows before the next solution cell:
    helpers pasted from another assignment, graded there."""
    solutions = {_nbgrader(cell).get("grade_id") for cell in source_notebook.cells if _nbgrader(cell).get("solution")}
    return solutions - set(components(source_notebook).values())


def student_cells(notebook: NotebookNode, helpers: Collection[str | None] = (),
                  released: Collection[str] = ()) -> list[str]:
    """The sources of the solution cells and of the cells the student added, in notebook order; pasted
    helpers (by grade_id) and cells left exactly as released are left out."""
    cells = []
    for cell in notebook.cells:
        if not _is_code(cell):
            continue
        metadata = _nbgrader(cell)
        if metadata and not metadata.get("solution"):
            continue
        source = _source(cell)
        if metadata.get("grade_id") in helpers or source.strip() in released:
            continue
        cells.append(source)
    return cells


def book_code(book: str | os.PathLike[str] = REPO / "book") -> list[str]:
    """The sources of the book's code cells (MyST ```{code-cell} blocks of book/*.md), options left out."""
    sources = []
    for path in sorted(Path(book).glob("*.md")):
        fence: str | None = None
        lines: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if fence is None:
                stripped = line.lstrip()
                if stripped.startswith("```") and "{code-cell}" in stripped:
                    fence, lines = stripped[:len(stripped) - len(stripped.lstrip("`"))], []
            elif line.strip() == fence:
                sources.append(_without_options(lines))
                fence = None
            else:
                lines.append(line)
    return sources


def _without_options(lines: list[str]) -> str:
    """A code cell's code without its `:key: value` lines or its --- YAML block."""
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        lines = lines[end + 1:]
    while lines and lines[0].startswith(":"):
        lines = lines[1:]
    return "\n".join(lines)


# ---------------------------------------------------------------- fingerprints

def _copydetect() -> Any:   # the copydetect module, which has no type information
    import matplotlib
    matplotlib.use("Agg")  # copydetect imports pyplot (for its own reports, unused here)
    import copydetect
    return copydetect


def _kgram_hashes(code: str) -> npt.NDArray[np.int64]:
    """A 64-bit hash of each k-gram (NOISE characters) of `code`, the same in every process (BLAKE2b: Python's
    hash() of a string, which copydetect uses, is salted per process)."""
    import numpy as np
    return np.array([int.from_bytes(hashlib.blake2b(code[i:i + NOISE].encode("utf-8", "surrogatepass"),
                                                    digest_size=8).digest(), "little", signed=True)
                     for i in range(len(code) - NOISE + 1)], dtype=np.int64)


def _fingerprint(text: str, boilerplate: Set[int] = frozenset(), window: int = GUARANTEE - NOISE + 1) -> Fingerprint:
    """The fingerprint of `text` as copydetect's CodeFingerprint makes it (its tokeniser and its winnowing),
    with stable hashes, and without the k-grams across two cells or in `boilerplate`.

    The boilerplate is removed here rather than by CodeFingerprint(boilerplate=...): copydetect 0.5.0
    removes it with np.intersect1d(assume_unique=True) from a list that repeats hashes, which keeps
    some copies of a repeated boilerplate k-gram.
    """
    utils = _copydetect().utils
    code, offsets = utils.filter_code(text, "student.py", language="python")
    hashes, indexes = utils.winnow(_kgram_hashes(code), window, remove_duplicates=False)
    kept: dict[int, list[int]] = {}
    for value, i in zip(hashes.tolist(), indexes.tolist()):
        if value not in boilerplate and SEPARATOR not in code[i:i + NOISE]:
            kept.setdefault(value, []).append(i)
    return Fingerprint(code, offsets, frozenset(kept), kept, float(utils.get_token_coverage(kept, NOISE, len(code))))


def boilerplate_hashes(sources: Iterable[str]) -> frozenset[int]:
    """Every k-gram hash of `sources` (stubs, helpers, book code): removed from the students' fingerprints."""
    hashes: set[int] = set()
    for source in sources:
        hashes |= _fingerprint(source, window=1).hashes
    return frozenset(hashes)


BOOK_HASHES_CACHE = REPO / "_build" / "similarity"   # the book's boilerplate hashes, by what they are made of


@functools.lru_cache(maxsize=1)
def _book_hashes() -> frozenset[int]:
    """The book's boilerplate hashes, once per process, and kept in BOOK_HASHES_CACHE under a digest of all that
    makes them (the book's code, this module, copydetect's version): pygments' tokeniser takes a second and a half
    over the whole book, and every grading would pay it again. A cache that cannot be read or written is passed by."""
    import numpy as np
    sources = book_code()
    key = hashlib.sha256("\0".join([Path(__file__).read_text(encoding="utf-8"), metadata.version("copydetect"), *sources])
                         .encode("utf-8", "surrogatepass")).hexdigest()[:32]
    path = BOOK_HASHES_CACHE / f"{key}.npy"
    try:
        return frozenset(np.load(path, allow_pickle=False).tolist())
    except (OSError, ValueError):
        pass
    hashes = boilerplate_hashes(sources)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(partial, "wb") as out:
            np.save(out, np.array(sorted(hashes), dtype=np.int64), allow_pickle=False)
        os.replace(partial, path)
    except OSError:
        pass
    return hashes


def _assignment_context(course_dir: str | os.PathLike[str], assignment: str,
                        book_hashes: frozenset[int]) -> tuple[set[str | None], set[str], frozenset[int]]:
    """(pasted helper grade_ids, released cell sources, boilerplate hashes) of one assignment."""
    release, _ = read_notebook(course.release_notebook(course_dir, assignment))
    source, _ = read_notebook(course.source_notebook(course_dir, assignment))
    helpers = pasted_helpers(source) if source is not None else set()
    released = [_source(c) for c in release.cells if _is_code(c)] if release is not None else []
    pasted = [_source(c) for c in source.cells if _is_code(c) and _nbgrader(c).get("grade_id") in helpers] \
        if source is not None else []
    return helpers, {s.strip() for s in released}, boilerplate_hashes(released + pasted) | book_hashes


def _student_code(submission: Submission, helpers: Collection[str | None], released: Collection[str]) -> _Code | None:
    notebook, _ = read_notebook(Path(submission.notebook), submission.file_id)
    if notebook is None:
        return None
    text = ""
    starts: list[int] = []
    for source in student_cells(notebook, helpers, released):
        starts.append(len(text))
        text += source.replace(SEPARATOR, " ") + CELL_SEPARATOR
    return _Code(submission.student_id, text[:MAX_CODE_CHARS], tuple(starts))


# ---------------------------------------------------------------- comparison

def _raw_positions(fingerprint: Fingerprint, offsets_in_normalised: Sequence[int]) -> npt.NDArray[np.int64]:
    """Offsets in the original text of offsets in the normalised text (copydetect's own mapping)."""
    import numpy as np
    positions = np.asarray(offsets_in_normalised, dtype=np.int64)
    offsets: npt.NDArray[np.int64] = fingerprint.offsets   # N x 2: (offset in the normalised text, shift)
    if len(offsets) == 0 or len(positions) == 0:
        return positions
    where = np.clip(np.searchsorted(offsets[:, 0], positions), 0, offsets.shape[0] - 1)
    return positions + offsets[:, 1][where]


def _places(code: _Code, fingerprint: Fingerprint) -> dict[int, tuple[tuple[int, int, int], ...]]:
    """{hash: ((cell, start, end), ...)}: where each kept k-gram lies in the original text."""
    hashes = [(value, i) for value, indexes in fingerprint.hash_idx.items() for i in indexes]
    starts = _raw_positions(fingerprint, [i for _, i in hashes])
    ends = _raw_positions(fingerprint, [i + NOISE - 1 for _, i in hashes]) + 1
    places: dict[int, list[tuple[int, int, int]]] = {}
    for (value, _), start, end in zip(hashes, starts.tolist(), ends.tolist()):
        cell = bisect_right(code.starts, start) - 1
        places.setdefault(value, []).append((cell, start, end))
    return {value: tuple(spots) for value, spots in places.items()}


def _line_span(text: str, start: int, end: int) -> str:
    """Whole lines of text[start:end], capped to MAX_REGION_LINES lines and MAX_REGION_CHARS characters."""
    start = text.rfind("\n", 0, max(start, 0)) + 1
    stop = text.find("\n", max(end - 1, start))
    lines = text[start:len(text) if stop < 0 else stop].strip("\n").splitlines()
    excerpt = "\n".join(lines[:MAX_REGION_LINES]).replace(SEPARATOR, "")
    if len(lines) > MAX_REGION_LINES or len(excerpt) > MAX_REGION_CHARS:
        excerpt = excerpt[:MAX_REGION_CHARS] + "\n[...]"
    return excerpt


def matching_regions(a: _Fingerprinted, b: _Fingerprinted) -> tuple[tuple[str, str], ...]:
    """Up to MAX_REGIONS (text of A, text of B): for the pairs of cells sharing the most fingerprints,
    the lines of each cell from its first to its last shared k-gram."""
    spans: dict[tuple[int, int], tuple[int, int, int, int, int]] = {}
    for value in a.fingerprint.hashes & b.fingerprint.hashes:
        for cell_a, start_a, end_a in a.places.get(value, ()):
            for cell_b, start_b, end_b in b.places.get(value, ()):
                count, a0, a1, b0, b1 = spans.get((cell_a, cell_b), (0, start_a, end_a, start_b, end_b))
                spans[(cell_a, cell_b)] = (count + 1, min(a0, start_a), max(a1, end_a),
                                           min(b0, start_b), max(b1, end_b))
    best = sorted(spans.items(), key=lambda item: (-item[1][0], item[0]))[:MAX_REGIONS]
    return tuple((_line_span(a.code.text, a0, a1), _line_span(b.code.text, b0, b1))
                 for _, (_, a0, a1, b0, b1) in sorted(best))


def compare(assignment: str, a: _Fingerprinted, b: _Fingerprinted, threshold: float = THRESHOLD) -> Pair | None:
    """The Pair of two fingerprinted notebooks if their score reaches `threshold`, else None."""
    if b.code.student_id < a.code.student_id:
        a, b = b, a
    if not a.fingerprint.hashes & b.fingerprint.hashes:
        return None
    _, (share_a, share_b), _ = _copydetect().compare_files(a.fingerprint, b.fingerprint)
    share_a, share_b = min(float(share_a), 1.0), min(float(share_b), 1.0)
    score = min(share_a, share_b)
    if score < threshold:
        return None
    return Pair(assignment, a.code.student_id, b.code.student_id, round(score, 3), round(share_a, 3),
                round(share_b, 3), matching_regions(a, b))


def _fingerprints(submissions: Iterable[Submission], course_dir: str | os.PathLike[str],
                  book_hashes: frozenset[int]) -> dict[str, list[_Fingerprinted]]:
    """{assignment: [_Fingerprinted]}; a notebook that cannot be read or parsed is left out."""
    contexts: dict[str, tuple[set[str | None], set[str], frozenset[int]]] = {}
    found: dict[str, list[_Fingerprinted]] = {}
    for submission in submissions:
        try:
            assignment = submission.assignment
            if assignment not in contexts:
                contexts[assignment] = _assignment_context(course_dir, assignment, book_hashes)
            helpers, released, boilerplate = contexts[assignment]
            code = _student_code(submission, helpers, released)
            if code is None:
                continue
            fingerprint = _fingerprint(code.text, boilerplate)
            if fingerprint.hashes:
                found.setdefault(assignment, []).append(_Fingerprinted(code, fingerprint, _places(code, fingerprint)))
        except Exception:  # one weird notebook must not stop the report  # noqa: BLE001
            continue
    return found


def find_pairs(submissions: Iterable[Submission], course_dir: str | os.PathLike[str],
               threshold: float = THRESHOLD) -> list[Pair]:
    """Pairs of submissions of the same assignment scoring at least `threshold`, highest score first.
    Never raises for a notebook: one that cannot be read or fingerprinted is left out."""
    submissions = list(submissions)
    if all(n < 2 for n in Counter(s.assignment for s in submissions).values()):
        return []   # no two notebooks of one assignment: no pair to look for
    try:
        book_hashes = _book_hashes()
    except Exception:  # noqa: BLE001  (no book: nothing of it to remove)
        book_hashes = frozenset()
    pairs: list[Pair] = []
    for assignment, notebooks in sorted(_fingerprints(submissions, course_dir, book_hashes).items()):
        for a, b in combinations(notebooks, 2):
            try:
                pair = compare(assignment, a, b, threshold)
            except Exception:  # noqa: BLE001
                continue
            if pair is not None:
                pairs.append(pair)
    return sorted(pairs, key=lambda p: (-p.score, p.assignment, p.student_a, p.student_b))
