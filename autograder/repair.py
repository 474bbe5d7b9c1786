"""Repair what students do to a notebook by accident, before nbgrader sees it.

JupyterLab makes some accidents easy: copying a solution cell copies its nbgrader metadata (two cells,
one grade_id: nbgrader's DeduplicateIds then empties one copy's metadata and CheckCellMetadata fails the
whole notebook), pressing M turns a code cell into Markdown, an old Jupyter saves an older nbformat
without cell ids or with an older nbgrader schema. None of these is the student's code being wrong, so
none may cost points. The nbgrader metadata of the submission is not trusted at all: every cell that
carries a grade_id of the assignment gets the released notebook's metadata for it; every other cell
loses its nbgrader metadata and is the student's own.
"""
import copy
import re

import nbformat

CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _grade_id(cell):
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str) else None


def _at_released_position(indices, cells, order, grade_id):
    """Of several cells carrying `grade_id`, the one whose neighbours (the nearest cells with other
    known grade_ids) are the released ones; the first of them on a tie."""
    position = order.index(grade_id)
    before, after = order[:position], order[position + 1:]

    def fits(i):
        previous = next((g for g in map(_grade_id, reversed(cells[:i])) if g in order and g != grade_id), None)
        following = next((g for g in map(_grade_id, cells[i + 1:]) if g in order and g != grade_id), None)
        return (previous == (before[-1] if before else None)) + (following == (after[0] if after else None))
    return max(indices, key=lambda i: (fits(i), -i))


def _set_type(cell, cell_type):
    cell.cell_type = cell_type
    if cell_type == "code":
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def repair(notebook, release):
    """(repaired copy of `notebook`, [what was repaired]) against the released notebook `release`."""
    notebook = copy.deepcopy(notebook)
    released = {g: c for c in release.cells for g in [_grade_id(c)] if g}
    order = [g for g in map(_grade_id, release.cells) if g]
    notes = []

    carriers = {}
    for i, cell in enumerate(notebook.cells):
        grade_id = _grade_id(cell)
        if "nbgrader" in cell.get("metadata", {}) and grade_id not in released:
            del cell.metadata["nbgrader"]  # not a cell of this assignment: the student's own
            notes.append(f"removed nbgrader metadata that names no cell of this assignment ({grade_id!r})")
        elif grade_id:
            carriers.setdefault(grade_id, []).append(i)
    for grade_id, indices in carriers.items():
        keep = _at_released_position(indices, notebook.cells, order, grade_id)
        for i in indices:
            if i != keep:
                del notebook.cells[i].metadata["nbgrader"]
        if len(indices) > 1:
            notes.append(f"{len(indices)} cells carried grade_id {grade_id!r} (a copied cell): kept the one in its "
                         f"released place, the others count as the student's own cells")
        cell, original = notebook.cells[keep], released[grade_id]
        cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
        for key in ("editable", "deletable"):
            cell.metadata.pop(key, None)
            if key in original.metadata:
                cell.metadata[key] = original.metadata[key]
        if cell.cell_type != original.cell_type:
            notes.append(f"cell {grade_id!r} had been turned into a {cell.cell_type} cell: turned back into {original.cell_type}")
            _set_type(cell, original.cell_type)

    # cell ids: nbformat 4.5 wants one per cell, unique; older notebooks have none
    notebook.nbformat, notebook.nbformat_minor = 4, max(5, int(notebook.get("nbformat_minor", 5) or 0))
    seen = set()
    for i, cell in enumerate(notebook.cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id) or cell_id in seen:
            cell_id = f"cell-{i}"
        while cell_id in seen:
            cell_id += "-"
        cell.id = cell_id
        seen.add(cell_id)
    nbformat.validate(notebook)
    return notebook, notes
