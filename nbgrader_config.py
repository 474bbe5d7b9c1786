"""nbgrader configuration of the course: solutions/ is the source directory, notebooks/ the release.

Read by every nbgrader command run from the repository root (`make notebooks` runs
`nbgrader generate_assignment`; `make lab` starts JupyterLab here). The grader (autograder/course.py)
loads this file too, then points the course root at a scratch directory.
"""
import os

c = get_config()  # noqa: F821 (provided by traitlets when this file is loaded)

REPO = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "attention-course"
c.CourseDirectory.root = REPO
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# The gradebook of `make notebooks` is a by-product: keep it out of the repository's tracked files.
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(REPO, "_build", "nbgrader", "gradebook.db")
# Only notebooks are released (no stray files from a maintainer's JupyterLab session, and never the
# diagnostics and mistakes beside a source notebook: they hold reference implementations and wrong code).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "diagnostics.py", "mistakes.py",
                            "*.english.json"]   # a Chinese scratch course's English source (autograder/course.py)

# Released stubs raise NotImplementedError (nbgrader's default stub, stated here on purpose).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Grading: a cell that runs longer than this is stopped and scores 0.
c.Execute.timeout = 120

# The class hub's exchange (tools/hub.py, `make hub`): nbgrader's default folder, or COURSE_EXCHANGE's.
c.Exchange.root = os.environ.get("COURSE_EXCHANGE") or "/srv/nbgrader/exchange"
