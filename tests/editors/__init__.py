"""Notebooks as other editors save them: each builder takes a student's notebook (a NotebookNode: the
release with the work done) and returns the text of the file that editor would save, following the
editor's documented or published save format (cited with each builder). They are honest submissions:
the grader must give each the marks of its code (tests/test_grader.py's class, tests/test_inputs.py).

What the grader has to cope with, by editor:
- VS Code keeps the metadata but sorts every key, and a notebook it creates has nbformat 4.2 and no ids;
- Google Colab keeps only the cell metadata it knows (no nbgrader metadata) and saves nbformat 4.0;
- JupyterLite saves nbformat 4.5 with ids, sources as single strings, and its Pyodide kernel;
- a tool or editor may drop every nbgrader metadata, the ids, even `execution_count` and `outputs`.
"""
import copy
import json
import random

import nbformat



def _content(notebook) -> dict:
    """The notebook as plain JSON data (sources as single strings, as in memory)."""
    return json.loads(json.dumps(copy.deepcopy(notebook)))


def _lines(text: str) -> list:
    """A multi-line string split as Jupyter front ends write it: every line but the last ends with \\n."""
    return text.splitlines(keepends=True)


def _ran(content: dict) -> None:
    """Every code cell as after "Run All": numbered, the setup cell with a line of output."""
    count = 0
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            count += 1
            cell["execution_count"] = count
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": "ran\n"}] if count == 1 else []


def vscode(notebook) -> str:
    """VS Code's own .ipynb serializer (microsoft/vscode, extensions/ipynb/src/serializers.ts and
    notebookSerializer.ts): `sortObjectPropertiesRecursively` sorts every key of the notebook; the
    indentation read from the file is kept (`detectIndent`; nbformat writes 1 space); a cell's metadata
    (`cellMetadata?.metadata || {}`) and its id (`if (cellMetadata?.id)`) are written back as read; a code
    cell's `execution_count` is its execution order or null; sources and stream texts are split into lines
    (`splitMultilineString`); `pruneCell` removes outputs and execution_count from non-code cells; a
    newline ends the file."""
    content = _content(notebook)
    _ran(content)
    for cell in content["cells"]:
        cell["source"] = _lines(cell["source"])
        for output in cell.get("outputs", []):
            output["text"] = _lines(output["text"])
    return json.dumps(content, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def vscode_new_notebook(notebook) -> str:
    """The student made a new notebook in VS Code ("Create: New Jupyter Notebook") and pasted the text of
    each cell into it. notebookSerializer.ts's `getNotebookMetadata` gives a new notebook nbformat 4,
    `nbformat_minor ?? 2` and metadata `{orig_nbformat: 4}` (`deserializeNotebook` adds `language_info`
    `{name: python}`); serializers.ts writes no id for a cell that had none and `metadata: {}` for a cell
    without metadata: no nbgrader metadata, no locks, no ids. Keys sorted, as above."""
    content = _content(notebook)
    _ran(content)
    cells = []
    for cell in content["cells"]:
        new = {"cell_type": cell["cell_type"], "metadata": {}, "source": _lines(cell["source"])}
        if cell["cell_type"] == "code":
            new.update(execution_count=cell["execution_count"], outputs=cell["outputs"])
        cells.append(new)
    saved = {"cells": cells, "metadata": {"orig_nbformat": 4, "language_info": {"name": "python"}},
             "nbformat": 4, "nbformat_minor": 2}
    return json.dumps(saved, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def colab(notebook, seed=0) -> str:
    """Google Colab's "Download .ipynb", as the notebooks Colab saves (to Drive or GitHub) show: nbformat 4,
    nbformat_minor 0 (no cell ids), 2-space indentation, keys in the order nbformat, nbformat_minor,
    metadata, cells; notebook metadata `colab` `{provenance: []}`, kernelspec `{name: python3, display_name:
    Python 3}`, language_info `{name: python}`; each cell's metadata holds Colab's own `id` (12 random
    characters; googlecolab/colabtools issue #581 is about that field) and, for an executed code cell,
    `colab` `{base_uri: ...}` and `outputId`. Cell metadata Colab does not know, nbgrader's, deletable and
    editable, is gone (what issue 21 of this course reports; nbgrader's extensions do not run in Colab,
    jupyter/nbgrader issue #1273). Cell keys in the order cell_type, metadata, source, execution_count,
    outputs."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    content = _content(notebook)
    _ran(content)
    cells = []
    for cell in content["cells"]:
        metadata = {"id": "".join(rng.choice(alphabet) for _ in range(12))}
        new = {"cell_type": cell["cell_type"], "metadata": metadata, "source": _lines(cell["source"])}
        if cell["cell_type"] == "code":
            if cell["outputs"]:
                metadata.update(colab={"base_uri": "https://localhost:8080/"},
                                outputId="".join(rng.choice("0123456789abcdef") for _ in range(36)))
            new.update(execution_count=cell["execution_count"], outputs=[
                {"output_type": o["output_type"], "name": o["name"], "text": _lines(o["text"])} for o in cell["outputs"]])
        cells.append(new)
    saved = {"nbformat": 4, "nbformat_minor": 0,
             "metadata": {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"},
                          "language_info": {"name": "python"}},
             "cells": cells}
    return json.dumps(saved, indent=2, ensure_ascii=False) + "\n"


def jupyterlite(notebook) -> str:
    """JupyterLite's Download (jupyterlite/jupyterlite, the application extension's `downloadContent`):
    `JSON.stringify(model.content, null, 2)` of the notebook as its contents API stores it, that is
    JupyterLab's notebook model: nbformat 4.5 with cell ids, every cell metadata kept, sources and outputs
    as single strings (not split into lines), no newline at the end; run on the Pyodide kernel, whose
    kernelspec is `{name: python, display_name: Python (Pyodide), language: python}`."""
    content = _content(notebook)
    _ran(content)
    content["nbformat_minor"] = 5
    content["metadata"]["kernelspec"] = {"name": "python", "display_name": "Python (Pyodide)", "language": "python"}
    content["metadata"]["language_info"] = {"codemirror_mode": {"name": "python", "version": 3},
                                            "file_extension": ".py", "mimetype": "text/x-python", "name": "python",
                                            "nbconvert_exporter": "python", "pygments_lexer": "ipython3",
                                            "version": "3.11"}
    return json.dumps(content, indent=2, ensure_ascii=False)


def metadata_stripped(notebook) -> str:
    """What an editor or a cleaning tool may leave (issue 21): no nbgrader metadata on any cell, no cell ids
    (nbformat 4.4), and code cells without `execution_count` and `outputs`, which nbformat requires."""
    content = _content(notebook)
    content["nbformat_minor"] = 4
    for cell in content["cells"]:
        cell["metadata"] = {}
        cell.pop("id", None)
        cell.pop("execution_count", None)
        cell.pop("outputs", None)
    return json.dumps(content, indent=1, ensure_ascii=False) + "\n"


SAVE = {"VS Code": vscode, "VS Code new notebook": vscode_new_notebook, "Colab": colab,
        "JupyterLite": jupyterlite, "metadata stripped": metadata_stripped}
EDITORS = tuple(SAVE)


def saved(editor: str, notebook: nbformat.NotebookNode) -> str:
    return SAVE[editor](notebook)
