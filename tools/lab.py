"""JupyterLab for one of the course's two views, each with its own Jupyter configuration.

    python -m tools.lab student [--work DIR] [-- JUPYTERLAB_ARGS...]    (make lab)
    python -m tools.lab instructor [-- JUPYTERLAB_ARGS...]             (make lab-instructor)

student: syncs the workspace (tools/workspace.py: work/ gets the released notebooks it lacks), then
opens JupyterLab on it with jupyter/student/ as its configuration: Validate, and none of nbgrader's
instructor tools. instructor: JupyterLab at the repository root, opened on solutions/, with
jupyter/instructor/ (every nbgrader tool: Create Assignment, Formgrader). jupyter/README.md says
what each file of the two configurations does.

Jupyter reads JUPYTER_PORT, JUPYTER_TOKEN and JUPYTER_PORT_RETRIES from the environment as usual.
As root (many containers) JupyterLab refuses to start without --allow-root: it is passed then, and only then.
"""
import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from tools import workspace

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "jupyter"


def environment(view: str, state: Path) -> dict[str, str]:
    """The environment of JupyterLab for `view`: its configuration folder, and `state` (a git-ignored
    folder) for what JupyterLab writes (settings the user changes, the layout of open tabs)."""
    env = dict(os.environ)
    env["JUPYTER_CONFIG_DIR"] = str(CONFIG / view)
    env["JUPYTERLAB_SETTINGS_DIR"] = str(state / "user-settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(state / "workspaces")
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` and `jupyter` from PATH
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def command(view: str, work: Path, extra: Iterable[str]) -> list[str]:
    """The `jupyter lab` command line for `view`."""
    argv = [str(Path(sys.executable).parent / "jupyter"), "lab"]
    if view == "student":
        argv.append(f"--ServerApp.root_dir={work}")
    else:  # formgrader needs the course (the repository) inside the server's root; open on solutions/
        argv += [f"--ServerApp.root_dir={REPO}", "--LabApp.default_url=/lab/tree/solutions"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    return argv + list(extra)


def connect_exchange() -> None:
    """The Formgrader shares the class hub's exchange (nbgrader_config.py: COURSE_EXCHANGE, else nbgrader's
    /srv/nbgrader/exchange); make it where it is missing and this user may, else say why the Formgrader lacks it."""
    exchange = Path(os.environ.get("COURSE_EXCHANGE") or "/srv/nbgrader/exchange")
    if exchange.is_dir():
        return
    try:
        exchange.mkdir(parents=True)
        exchange.chmod(0o1777)  # as tools/hub.py makes it: every user writes, each keeps their own entries
    except OSError as error:
        print(f"tools.lab: the exchange {exchange} does not exist and could not be made ({error}): the Formgrader's "
              f"release and collect need it (sudo make hub makes it)", file=sys.stderr)


def main(argv: list[str] | None = None) -> NoReturn:
    assert __doc__ is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m tools.lab", description=__doc__.splitlines()[0])
    parser.add_argument("view", choices=["student", "instructor"])
    parser.add_argument("--edition", choices=sorted(workspace.RELEASES), default="en",
                        help="the notebooks' language: en, or zh (the Chinese edition, in work/zh/); student view only")
    parser.add_argument("--work", type=Path, default=None,
                        help="the student's folder (default: work/, or work/zh/); student view only")
    args = parser.parse_args(argv)
    work = (args.work or workspace.WORKSPACES[args.edition]).resolve()
    if args.view == "student":
        workspace.main(["--work", str(work), "--edition", args.edition])
        state = work / ".jupyter"
    else:
        (REPO / "_build" / "nbgrader").mkdir(parents=True, exist_ok=True)  # the gradebook's folder
        connect_exchange()
        state = REPO / "_build" / "jupyter-instructor"
    os.chdir(REPO)  # nbgrader (Validate, formgrader) reads nbgrader_config.py from the working directory
    full = command(args.view, work, extra)
    os.execve(full[0], full, environment(args.view, state))


if __name__ == "__main__":
    main()
