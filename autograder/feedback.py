"""Feedback for one graded submission: a short message per failed test cell, and an HTML page.

The page shows, per graded cell, the points and the message of the assertion that failed (which
names the likely mistake), the student's own code and outputs, and the test cells as released (the
hidden tests removed). No output that contains a line of a hidden test reaches the page, whatever
printed it (a spy hook, or the student's code reading IPython's input history), and neither do
tracebacks, which quote hidden-test source.
"""
import functools
import html
import re
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

SECRET_REGIONS = [("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")]
MIN_SECRET_LINE = 24  # shorter lines ("return weights", "else:") are too generic to identify anything
SIGNATURE = re.compile(r"\s*(def|class) \w+")  # signatures are the public API, given in every stub
MESSAGE_LIMIT = 300
REMOVED = "[output removed by the grader: it contained grading code]"
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")  # `<object at 0x7f3a...>`: differs at every run


def _steady(value):
    """Text of an output with memory addresses masked, so that the same notebook gives the same page."""
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return ADDRESS.sub("0x…", value) if isinstance(value, str) else value


def _steady_output(output):
    output = nbformat.from_dict(output)
    if "text" in output:
        output["text"] = _steady(output["text"])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/"):
            output["data"][mime] = _steady(value)
    return output


def normalise(text):
    return " ".join(text.split())


def secret_lines(notebook, regions=SECRET_REGIONS):
    """Lines of the given regions (solutions, hidden tests), whitespace-normalised, long enough to identify them."""
    found = set()
    for cell in notebook.cells:
        inside = False
        for line in cell.source.splitlines():
            if any(begin in line for begin, _ in regions):
                inside = True
            elif any(end in line for _, end in regions):
                inside = False
            elif inside and len(normalise(line)) >= MIN_SECRET_LINE and not SIGNATURE.match(line):
                found.add(normalise(line))
    return found


def _hidden_lines(course_dir, assignment):
    source = nbformat.read(Path(course_dir) / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    return secret_lines(source, [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])


def _output_text(output):
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
    parts += ["\n".join(output.get("traceback", []))]
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else "\n".join(value) if isinstance(value, list) else "")
    return normalise("\n".join(str(p) for p in parts))


def _leaks(output, hidden):
    text = _output_text(output)
    return any(line in text for line in hidden)


def messages(graded, course_dir, assignment):
    """{grade_id: "AssertionError: message"} for the graded cells that raised."""
    hidden = _hidden_lines(course_dir, assignment)
    found = {}
    for cell in graded.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if errors:
            error = errors[0]
            message = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip().rstrip(":")
            if _leaks(error | {"traceback": []}, hidden) or any(line in normalise(message) for line in hidden):
                message = f"{error.get('ename', 'Error')} (its message quoted grading code and was removed)"
            found[meta["grade_id"]] = message[:MESSAGE_LIMIT]
    return found


def feedback_notebook(graded, course_dir, assignment, scores, messages):
    """The notebook the student sees: released test cells, results instead of test outputs, filtered outputs."""
    hidden = _hidden_lines(course_dir, assignment)
    release = nbformat.read(Path(course_dir) / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    released = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells if "nbgrader" in c.metadata}
    total, best = sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())
    rows = "\n".join(f"| `{gid}` | {s:g} / {m:g} | {html.escape(messages.get(gid, 'passed' if s >= m else ''))} |"
                     for gid, (s, m) in scores.items())
    summary = nbformat.v4.new_markdown_cell(
        f"# Feedback: {assignment}\n\n**Score: {total:g} / {best:g}**\n\n| test cell | points | result |\n"
        f"| --- | --- | --- |\n{rows}\n\nEach failed test says what looks wrong. Hidden tests are not shown.")
    cells = [summary]
    for cell in graded.cells:
        cell = nbformat.from_dict(cell)
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if cell.cell_type == "code" and meta.get("grade"):
            cell.source = released.get(gid, "")
            score, top = scores.get(gid, (0.0, float(meta.get("points", 0))))
            verdict = f"✔ passed: {score:g} / {top:g} points" if score >= top else \
                f"✘ {score:g} / {top:g} points. {messages.get(gid, 'This test failed.')}"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=verdict + "\n")]
        elif cell.cell_type == "code":
            kept = []
            for output in cell.outputs:
                if _leaks(output, hidden):
                    kept.append(nbformat.v4.new_output("stream", name="stdout", text=REMOVED + "\n"))
                elif output.get("output_type") == "error":
                    kept.append(nbformat.v4.new_output("stream", name="stderr",
                                                       text=f"{output.get('ename')}: {output.get('evalue')}\n"[:1000]))
                else:
                    kept.append(_steady_output(output))
            cell.outputs = kept
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"  # not random ids: the same submission gives the same page
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})
    return notebook


@functools.cache
def _exporter():
    return HTMLExporter(template_name="lab")  # loading the template takes a second: once per worker


def write_html(graded, course_dir, assignment, scores, messages, path):
    notebook = feedback_notebook(graded, course_dir, assignment, scores, messages)
    body, _ = _exporter().from_notebook_node(notebook)
    Path(path).write_text(body, encoding="utf-8")
