"""The course's autograder: grades a class of nbgrader submissions with one command.

    python -m autograder grade SUBMISSIONS --out OUT [--workers N]

The data path reads top to bottom, one module per step: collect (find the submissions) ->
course (a scratch nbgrader course built from solutions/) -> grade (one submission) ->
pipeline (all of them, in parallel) -> report (the CSV files).
"""
