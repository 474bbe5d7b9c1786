"""The course's own command-line tools, run by the Makefile (see README.md).

    python -m tools.workspace       make lab's first step: the student's work/ folder, from notebooks/
    python -m tools.lab             make lab / make lab-instructor: JupyterLab with one view's configuration
    python -m tools.check_submission  make check-submission: a notebook checked as the grader will
    python -m tools.readme          make readme: the README's tables that are derived from the notebooks
    python -m tools.notebooks       make notebooks: notebooks/ regenerated from solutions/, safely
    python -m tools.student_edition  make student-edition: the book's HTML and the student repository, no solution in it
    tools.points                    what each assignment grades (the README's table, the book's boxes)
"""
import autograder  # noqa: E402,F401  (its start-up: no 1.2 s grammar compilation when nbformat is imported)
