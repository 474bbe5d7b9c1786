"""Repair what students and their editors do to a notebook by accident, before nbgrader sees it.

JupyterLab makes some accidents easy: copying a solution cell copies its nbgrader metadata (two cells,
one grade_id: nbgrader's DeduplicateIds then empties one copy's metadata and CheckCellMetadata fails the
whole notebook), pressing M turns a code cell into Markdown, an old Jupyter saves an older nbformat
without cell ids or with an older nbgrader schema. Other editors lose the nbgrader metadata altogether
(Google Colab keeps only the cell metadata it knows; a student may paste the cells into a new notebook).
None of these is the student's code being wrong, so none may cost points.

The released notebook is the truth; the nbgrader metadata of the submission is not trusted at all. Every
cell that carries a grade_id of the assignment gets the released notebook's metadata for it; every other
cell loses its nbgrader metadata and is the student's own. A released cell that no cell carries is looked
for among the cells without nbgrader metadata (`restore_metadata`), in this order:
1. the cell with the released cell's id (editors that keep cell ids);
2. a locked cell (instructions, setup, tests) by its text, whitespace aside, in the released order;
3. a solution cell, between the cells matched around it, by the function or class its stub defines
   (the last cell there that defines it: the definition the tests use);
4. a locked cell between the cells matched around it, by a text at least 60% alike, word by word (an
   edited test); the likeness of two cells is read on their first LIKENESS_WORDS words, and a notebook gets
   at most LIKENESS_BUDGET comparisons: what is left is not found (a flag), so that no notebook, however long
   its cells, holds up its worker (the characters of a 06 notebook took 7 s, 20 kB cells of 01 took 27 s);
5. what is left, by position: where a stretch between matched cells holds as many unmatched released
   cells as cells of the student's, one for one, in order;
6. a solution cell whose stub defines nothing, alone in its stretch with cells the student added: the
   stretch's first code cell.
A cell that matches nothing stays the student's own; the released graded and solution cells that were
not found are returned (`Repaired.unmatched`) for flags.csv. nbgrader restores every locked cell's source
from its gradebook, so a cell wrongly taken for a test cell gains nothing.
"""
import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder.collect import give_cell_ids

DEFINES = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)
ALIKE = 0.6   # how alike an edited locked cell must stay to its released text (the share of words in common)
LIKENESS_WORDS = 400     # the words of a cell compared, at most (half a millisecond for two such cells)
LIKENESS_BUDGET = 5000   # comparisons of two cells per notebook, at most


@dataclass(frozen=True)
class Restoration:
    """The submission with nbgrader metadata put back on the cells that had lost it."""
    notebook: nbformat.NotebookNode
    restored: tuple[str, ...]   # grade_ids whose metadata was put back on a cell without any
    unmatched: tuple[str, ...]  # grade_ids of released graded and solution cells that no cell carries or matched


@dataclass(frozen=True)
class Repaired:
    notebook: nbformat.NotebookNode
    notes: tuple[str, ...]      # what was repaired, in words
    restored: tuple[str, ...]   # as in Restoration
    unmatched: tuple[str, ...]


def _grade_id(cell: Mapping[str, Any]) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str) else None


def _meta(cell: Mapping[str, Any]) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def _text(cell: Mapping[str, Any]) -> str:
    return " ".join(cell.get("source", "").split())


def _defines(cell: Mapping[str, Any]) -> list[str]:
    return DEFINES.findall(cell.get("source", ""))


# --- finding the cells that lost their metadata ----------------------------------------------------------
class _Matching:
    """Released cells (by index in the release) matched to cells of the submission (by index)."""

    def __init__(self, release_cells: list[NotebookNode], cells: list[NotebookNode],
                 carried: Mapping[str | None, int]) -> None:
        self.release_cells, self.cells = release_cells, cells
        self.at: dict[int, int] = {}      # release index -> submission index
        for r, cell in enumerate(release_cells):
            if _grade_id(cell) in carried:
                self.at[r] = carried[_grade_id(cell)]
        self.free = {i for i, cell in enumerate(cells) if _grade_id(cell) is None}

    def take(self, r: int, i: int) -> None:
        self.at[r] = i
        self.free.discard(i)

    def open(self) -> list[int]:
        """Released cells with a grade_id that nothing matched yet, in order."""
        return [r for r, cell in enumerate(self.release_cells) if r not in self.at and _grade_id(cell)]

    def gap(self, r: int) -> tuple[list[int], list[int]]:
        """(released cells, free cells of the submission) between the matched cells around released cell r."""
        before = [r2 for r2 in self.at if r2 < r]
        after = [r2 for r2 in self.at if r2 > r]
        low = max(before) if before else -1
        high = min(after) if after else len(self.release_cells)
        start = self.at[low] if before else -1
        end = self.at[high] if after else len(self.cells)
        released = [r2 for r2 in self.open() if low < r2 < high]
        return released, [i for i in sorted(self.free) if start < i < end]


def _by_id(matching: _Matching) -> None:
    ids = [cell.get("id") for cell in matching.cells]
    for r in matching.open():
        wanted = matching.release_cells[r].get("id")
        hits = [i for i in matching.free if wanted and ids[i] == wanted]
        if len(hits) == 1 and ids.count(wanted) == 1:
            matching.take(r, hits[0])


def _by_text(matching: _Matching) -> None:
    """Locked cells by their exact text (whitespace aside), aligned in order with the submission's cells."""
    def released_key(r: int) -> tuple[str, int | str]:
        cell = matching.release_cells[r]
        if r in matching.at:
            return ("matched", r)
        if _meta(cell).get("locked") and _text(cell):
            return ("text", _text(cell))
        return ("open", r)
    at = {i: r for r, i in matching.at.items()}

    def key(i: int) -> tuple[str, int | str]:
        cell = matching.cells[i]
        if i in at:
            return ("matched", at[i])
        return ("text", _text(cell)) if i in matching.free else ("other", i)
    released = [released_key(r) for r in range(len(matching.release_cells))]
    theirs = [key(i) for i in range(len(matching.cells))]
    blocks = difflib.SequenceMatcher(None, released, theirs, autojunk=False).get_matching_blocks()
    for a, b, size in blocks:
        for k in range(size):
            if released[a + k][0] == "text" and b + k in matching.free:
                matching.take(a + k, b + k)


def _stub_names(release_cells: Iterable[NotebookNode]) -> set[str]:
    return {name for cell in release_cells if _meta(cell).get("solution") for name in _defines(cell)[:1]}


def _by_definition(matching: _Matching) -> None:
    """Solution cells by the function or class their stub defines: the last free cell of the gap defining it."""
    for r in matching.open():
        cell = matching.release_cells[r]
        names = _defines(cell)[:1]
        if not _meta(cell).get("solution") or not names:
            continue
        _, free = matching.gap(r)
        defining = [i for i in free if names[0] in _defines(matching.cells[i])]
        if defining:
            matching.take(r, defining[-1])


def _by_likeness(matching: _Matching) -> None:
    """Locked cells by a text at least ALIKE to the released one, word by word, within their gap (an edited test
    cell): the most alike, the first of equals. A candidate whose length alone keeps it under ALIKE (or under the
    best one found) is not compared; past LIKENESS_BUDGET comparisons, nothing more is."""
    stubs = _stub_names(matching.release_cells)
    budget = LIKENESS_BUDGET
    words_of: dict[int, list[str]] = {}   # a cell of the student's, read once for every released cell
    for r in matching.open():
        cell = matching.release_cells[r]
        if not _meta(cell).get("locked"):
            continue
        _, free = matching.gap(r)
        words = _text(cell).split()[:LIKENESS_WORDS]
        compare = difflib.SequenceMatcher(None, autojunk=False)
        compare.set_seq2(words)   # the released text: SequenceMatcher indexes its second sequence once
        best, which = ALIKE, None
        for i in free:
            if matching.cells[i].get("cell_type") != cell.get("cell_type") or stubs & set(_defines(matching.cells[i])):
                continue
            if i not in words_of:
                words_of[i] = _text(matching.cells[i]).split()[:LIKENESS_WORDS]
            theirs = words_of[i]
            if 2 * min(len(words), len(theirs)) < best * (len(words) + len(theirs)) or budget <= 0:
                continue   # the share of words in common cannot reach `best`
            budget -= 1
            compare.set_seq1(theirs)
            ratio = compare.ratio()
            if ratio > best or (ratio == best and which is None):
                best, which = ratio, i
        if which is not None:
            matching.take(r, which)


def _by_position(matching: _Matching) -> None:
    """Where a gap holds as many open released cells as free cells, one for one, in order (types agreeing;
    a solution cell may have been turned into Markdown)."""
    for r in matching.open():
        if r in matching.at:
            continue
        released, free = matching.gap(r)
        if len(released) != len(free):
            continue
        pairs = list(zip(released, free))
        if all(_compatible(matching.release_cells[r2], matching.cells[i]) for r2, i in pairs):
            for r2, i in pairs:
                matching.take(r2, i)


def _nameless_stubs(matching: _Matching) -> None:
    """A solution cell whose stub defines nothing (02's `attention_helpers`: paste your code of 01) in a gap
    that holds more cells of the student's (a cell of their own added below it): the gap's first code cell.
    Taking the wrong one costs nothing (a solution cell is the student's own code either way); leaving it
    unmatched would flag an honest notebook."""
    for r in matching.open():
        cell = matching.release_cells[r]
        if not _meta(cell).get("solution") or _meta(cell).get("grade") or _defines(cell):
            continue
        released, free = matching.gap(r)
        code = [i for i in free if matching.cells[i].get("cell_type") == "code"]
        if released == [r] and code:
            matching.take(r, code[0])


def _compatible(released: NotebookNode, cell: NotebookNode) -> bool:
    return released.get("cell_type") == cell.get("cell_type") or bool(_meta(released).get("solution"))


def _graded_or_solution(cell: NotebookNode) -> bool:
    return bool(_meta(cell).get("grade") or _meta(cell).get("solution"))


def restore_metadata(notebook: NotebookNode, release: NotebookNode) -> Restoration:
    """A copy of `notebook` whose cells without nbgrader metadata got the released metadata of the cell they
    match (see the module's docstring); nbgrader metadata naming no cell of the release is removed first."""
    notebook = copy.deepcopy(notebook)
    released_ids = {_grade_id(c) for c in release.cells if _grade_id(c)}
    for cell in notebook.cells:
        if "nbgrader" in cell.get("metadata", {}) and _grade_id(cell) not in released_ids:
            del cell.metadata["nbgrader"]   # not a cell of this assignment: the student's own
    carried: dict[str | None, int] = {}
    for i, cell in enumerate(notebook.cells):
        carried.setdefault(_grade_id(cell), i)
    carried.pop(None, None)
    matching = _Matching(release.cells, notebook.cells, carried)
    for step in (_by_id, _by_text, _by_definition, _by_likeness, _by_position, _nameless_stubs):
        if not matching.open():
            break
        step(matching)
    restored: list[str] = []
    for r, i in sorted(matching.at.items()):
        if _grade_id(notebook.cells[i]) is None:
            notebook.cells[i].metadata["nbgrader"] = copy.deepcopy(release.cells[r].metadata["nbgrader"])
            grade_id = _grade_id(release.cells[r])
            assert grade_id is not None   # a matched released cell carries a grade_id (open() and carried)
            restored.append(grade_id)
    unmatched = tuple(grade_id for r in matching.open() if _graded_or_solution(release.cells[r])
                      for grade_id in [_grade_id(release.cells[r])] if grade_id is not None)   # all of them: open()
    return Restoration(notebook, tuple(restored), unmatched)


# --- the repair -----------------------------------------------------------------------------------------
def _at_released_position(indices: list[int], cells: list[NotebookNode], order: list[str], grade_id: str) -> int:
    """Of several cells carrying `grade_id`, the one whose neighbours (the nearest cells with other
    known grade_ids) are the released ones; the first of them on a tie."""
    position = order.index(grade_id)
    before, after = order[:position], order[position + 1:]

    def fits(i: int) -> int:
        previous = next((g for g in map(_grade_id, reversed(cells[:i])) if g in order and g != grade_id), None)
        following = next((g for g in map(_grade_id, cells[i + 1:]) if g in order and g != grade_id), None)
        return (previous == (before[-1] if before else None)) + (following == (after[0] if after else None))
    return max(indices, key=lambda i: (fits(i), -i))


def _set_type(cell: NotebookNode, cell_type: str) -> None:
    cell.cell_type = cell_type
    if cell_type == "code":
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def _keep_one_carrier(notebook: NotebookNode, order: list[str], notes: list[str]) -> dict[str, int]:
    """{grade_id: the index of the one cell that keeps it}: of copies, the one in the released place."""
    carriers: dict[str, list[int]] = {}
    for i, cell in enumerate(notebook.cells):
        grade_id = _grade_id(cell)
        if grade_id:
            carriers.setdefault(grade_id, []).append(i)
    kept: dict[str, int] = {}
    for grade_id, indices in carriers.items():
        kept[grade_id] = _at_released_position(indices, notebook.cells, order, grade_id)
        for i in indices:
            if i != kept[grade_id]:
                del notebook.cells[i].metadata["nbgrader"]
        if len(indices) > 1:
            notes.append(f"{len(indices)} cells carried grade_id {grade_id!r} (a copied cell): kept the one in its "
                         f"released place, the others count as the student's own cells")
    return kept


def _as_released(cell: NotebookNode, original: NotebookNode, grade_id: str, notes: list[str]) -> None:
    """The released cell's nbgrader metadata, lock flags and cell type on `cell`."""
    cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
    for key in ("editable", "deletable"):
        cell.metadata.pop(key, None)
        if key in original.metadata:
            cell.metadata[key] = original.metadata[key]
    if cell.cell_type != original.cell_type:
        notes.append(f"cell {grade_id!r} had been turned into a {cell.cell_type} cell: turned back into {original.cell_type}")
        _set_type(cell, original.cell_type)


def repair(notebook: NotebookNode, release: NotebookNode) -> Repaired:
    """The repaired copy of `notebook` against the released notebook `release`, and what was repaired."""
    restoration = restore_metadata(notebook, release)
    notebook = restoration.notebook
    released = {g: c for c in release.cells for g in [_grade_id(c)] if g}
    order = [g for g in map(_grade_id, release.cells) if g]
    notes: list[str] = []
    if restoration.restored:
        notes.append(f"nbgrader metadata put back on {len(restoration.restored)} cells that had none "
                     f"(matched to the release): {', '.join(restoration.restored)}")
    for grade_id, i in _keep_one_carrier(notebook, order, notes).items():
        _as_released(notebook.cells[i], released[grade_id], grade_id, notes)

    # the format: nbformat 4.5 wants one id per cell, unique; the kernel is the release's
    notebook.nbformat, notebook.nbformat_minor = 4, max(5, int(notebook.get("nbformat_minor", 5) or 0))
    give_cell_ids(notebook.cells)
    if "kernelspec" in release.metadata:
        notebook.metadata["kernelspec"] = copy.deepcopy(release.metadata["kernelspec"])
    nbformat.validate(notebook)
    return Repaired(notebook, tuple(notes), restoration.restored, restoration.unmatched)
