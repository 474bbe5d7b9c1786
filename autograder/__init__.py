"""The course's autograder: grades a class of nbgrader submissions with one command.

    python -m autograder grade SUBMISSIONS --out OUT [--workers N]

The data path reads top to bottom, one module per step: collect (find the submissions) ->
course (a scratch nbgrader course built from solutions/) -> grade (one submission) ->
pipeline (all of them, in parallel) -> report (the CSV files).
"""
import sys

# jsonschema (imported by nbformat) registers an optional checker of the "iri" format when rfc3987_syntax can
# be imported, and rfc3987_syntax compiles 38 grammars when imported: 1.2 s in every process that reads a
# notebook. Nothing here validates IRIs, so the grader's processes go without it (it stays installed for
# JupyterLab, which may).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
