"""A class hub on one machine: JupyterHub for the course, with nbgrader's exchange between students and instructor.

    python -m tools.hub proxy                                    (make proxy: configurable-http-proxy from npm)
    python -m tools.hub serve [--port 8000] [--group G] [--exchange DIR] [--config EXTRA.py]     (make hub)
    python -m tools.hub feedback ASSIGNMENT --out OUT [--course DIR] [--exchange DIR]

serve starts JupyterHub (as root: each student's server runs as that student's Linux account, which the hub's PAM
authenticator logs in; members of the group G may log in). A student's JupyterLab has nbgrader's student tools only
(jupyter/hub-student/: the Assignments list, Validate). Before it starts, the hub makes the repository readable by
its owner alone (solutions, the gradebook, collected submissions), except `.venv` and `jupyter/`, which the students'
servers run from, and each student's home folder private when their server starts. The exchange is nbgrader's
folder (default /srv/nbgrader/exchange, mode 1777 as nbgrader documents, with the sticky bit).

The instructor's loop is nbgrader's own commands, run at the repository root (nbgrader_config.py: the course is the
repository): `nbgrader release_assignment ID`, `nbgrader collect ID`, then our grader on `submitted/`, then
`feedback` below, which puts each student's page from OUT into nbgrader's feedback/ and runs its release_feedback.
"""
import argparse
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from autograder import outputs

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROXY_VERSION = "5.3.0"  # configurable-http-proxy, JupyterHub's proxy, from npm
PROXY_FOLDER = REPO / "_build" / "configurable-http-proxy"
PROXY = PROXY_FOLDER / "node_modules" / ".bin" / "configurable-http-proxy"
STUDENT_CONFIG = REPO / "jupyter" / "hub-student"
COURSE_ID = "attention-course"  # nbgrader_config.py's course id
EXCHANGE = Path("/srv/nbgrader/exchange")  # nbgrader's default exchange
# What a student's server needs of the repository: the environment it runs from and its Jupyter configuration.
SHARED = (".venv", "jupyter")


class HubError(Exception):
    """Something the hub cannot work with; its message says what to do."""


@dataclass(frozen=True)
class HubSettings:
    ip: str
    port: int
    hub_port: int
    proxy_api_port: int
    group: str
    exchange: Path
    state: Path
    extra_config: Path | None
    python: Path  # the interpreter of the students' servers


class Released(Enum):
    RELEASED = "released"
    NO_SUBMISSION = "no collected submission"  # a page in OUT of a student whose submission is not in submitted/


@dataclass(frozen=True)
class FeedbackPage:
    student: str
    outcome: Released


def install_proxy() -> Path:
    """configurable-http-proxy PROXY_VERSION from npm into _build/ (once); its path."""
    package = PROXY_FOLDER / "node_modules" / "configurable-http-proxy" / "package.json"
    if PROXY.exists() and package.is_file() and json.loads(package.read_text()).get("version") == PROXY_VERSION:
        return PROXY
    if shutil.which("npm") is None:
        raise HubError("npm is not installed: install Node.js (apt-get install nodejs npm), then `make proxy`")
    PROXY_FOLDER.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "install", "--prefix", str(PROXY_FOLDER), "--no-audit", "--no-fund",
                           "--loglevel=error", f"configurable-http-proxy@{PROXY_VERSION}"])
    if done.returncode != 0 or not PROXY.exists():
        raise HubError(f"npm could not install configurable-http-proxy@{PROXY_VERSION} (exit {done.returncode})")
    return PROXY


def lock_repository(repo: Path = REPO) -> list[Path]:
    """Make the repository its owner's alone, but for SHARED: the root can be passed through (0711), every other
    entry at the top loses its group and others' permissions (a folder closed closes what is inside). The paths
    changed. A path of SHARED that others cannot read is an error: the students' servers could not start."""
    changed = []
    root_mode = stat.S_IMODE(repo.stat().st_mode)
    if root_mode != 0o711:
        repo.chmod(0o711)
        changed.append(repo)
    for entry in sorted(repo.iterdir()):
        if entry.name in SHARED or entry.is_symlink():
            continue
        mode = stat.S_IMODE(entry.lstat().st_mode)
        if mode & 0o077:
            entry.chmod(mode & 0o700)
            changed.append(entry)
    for name in SHARED:
        target = (repo / name).resolve()
        for folder in [target, *target.parents]:
            if folder == repo:
                continue
            if not stat.S_IMODE(folder.stat().st_mode) & 0o001:
                raise HubError(f"{folder} cannot be passed through by other users, and the students' servers run "
                               f"from {target}: chmod o+x {folder}")
        if not stat.S_IMODE(target.stat().st_mode) & 0o004:
            raise HubError(f"{target} cannot be read by other users, and the students' servers run from it: "
                           f"chmod -R o+rX {target}")
    return changed


def prepare_exchange(exchange: Path) -> None:
    """nbgrader's exchange folder: every user may write (students submit), the sticky bit keeps each user's entries
    (the instructor's course folder) theirs. Its parents must be passable by the students."""
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o1777)
    for folder in exchange.parents:
        if not stat.S_IMODE(folder.stat().st_mode) & 0o001:
            raise HubError(f"students cannot reach the exchange {exchange}: {folder} is closed to other users "
                           f"(chmod o+x {folder}, or choose another --exchange)")


def check_runnable(python: Path) -> None:
    """The students' servers run as the students: `python` and every folder above it must be open to them."""
    target = python.resolve()
    for folder in target.parents:
        if not stat.S_IMODE(folder.stat().st_mode) & 0o001:
            raise HubError(f"the students cannot run the course's Python {python}: it is {target}, inside {folder}, "
                           f"which is closed to other users. Give the hub a Python 3.{sys.version_info.minor} they "
                           f"can run (--python /usr/bin/python3.{sys.version_info.minor}; "
                           f"make hub HUB_ARGS=\"--python ...\"), or make the environment from one")
    if not stat.S_IMODE(target.stat().st_mode) & 0o001:
        raise HubError(f"the students cannot run {target}: chmod o+x {target}")


def hub_config(settings: HubSettings, proxy: Path) -> str:
    """The text of jupyterhub_config.py for `settings`."""
    environment = {
        "JUPYTER_CONFIG_DIR": str(STUDENT_CONFIG),  # nbgrader's student tools, its course id and exchange
        "COURSE_EXCHANGE": str(settings.exchange),
        "COURSE_ID": COURSE_ID,
        "PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
    }
    if settings.python != Path(sys.executable):
        # another interpreter of the same version runs the environment's packages, configuration and extensions
        environment["PYTHONPATH"] = sysconfig.get_path("purelib")
        environment["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
        environment["JUPYTER_CONFIG_PATH"] = str(Path(sys.prefix) / "etc" / "jupyter")
    state = settings.state
    lines = [
        f'"""JupyterHub configuration written by tools/hub.py: every start writes it again."""',
        "import os, pwd, stat",
        "c = get_config()  # noqa: F821",
        f"c.JupyterHub.ip = {settings.ip!r}",
        f"c.JupyterHub.port = {settings.port}",
        f"c.JupyterHub.hub_ip = '127.0.0.1'",
        f"c.JupyterHub.hub_port = {settings.hub_port}",
        f"c.JupyterHub.db_url = {'sqlite:///' + str(state / 'jupyterhub.sqlite')!r}",
        f"c.JupyterHub.cookie_secret_file = {str(state / 'jupyterhub_cookie_secret')!r}",
        "c.JupyterHub.cleanup_servers = True  # the students' servers stop with the hub",
        f"c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]",
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{settings.proxy_api_port}'",
        f"c.ConfigurableHTTPProxy.pid_file = {str(state / 'proxy.pid')!r}",
        "c.JupyterHub.authenticator_class = 'pam'  # the machine's Linux accounts and passwords",
        f"c.LocalAuthenticator.allowed_groups = {{{settings.group!r}}}",
        "c.JupyterHub.spawner_class = 'localprocess'  # each student's server runs as that student",
        f"c.Spawner.cmd = [{str(settings.python)!r}, '-m', 'jupyterhub.singleuser']",
        "c.Spawner.default_url = '/lab'",
        f"c.Spawner.environment = {json.dumps(environment)}",
        "c.Spawner.http_timeout = 120",
        "c.Spawner.start_timeout = 120",
        "",
        "def private_home(spawner):",
        '    """A student\'s home is theirs alone (useradd may make it readable by all)."""',
        "    home = pwd.getpwnam(spawner.user.name).pw_dir",
        "    if os.path.isdir(home) and stat.S_IMODE(os.stat(home).st_mode) & 0o077:",
        "        os.chmod(home, 0o700)",
        "",
        "c.Spawner.pre_spawn_hook = private_home",
    ]
    if settings.extra_config is not None:
        lines.append(f"load_subconfig({str(settings.extra_config.resolve())!r})  # --config: the instructor's own")
    return "\n".join(lines) + "\n"


def serve(settings: HubSettings) -> int:
    """Prepare (proxy, repository, exchange, state) and run JupyterHub until it stops; its exit status."""
    if os.geteuid() != 0:
        raise HubError("the hub starts each student's server as that student's Linux account: run it as root "
                       "(sudo make hub)")
    if settings.extra_config is not None and not settings.extra_config.is_file():
        raise HubError(f"--config {settings.extra_config}: no such file")
    check_runnable(settings.python)
    proxy = install_proxy()
    changed = lock_repository()
    if changed:
        print(f"tools.hub: made {len(changed)} paths of the repository readable by their owner alone "
              f"(all but {', '.join(SHARED)})", file=sys.stderr)
    prepare_exchange(settings.exchange)
    settings.state.mkdir(parents=True, exist_ok=True)
    settings.state.chmod(0o700)
    config = settings.state / "jupyterhub_config.py"
    config.write_text(hub_config(settings, proxy))
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")]))
    print(f"tools.hub: JupyterHub for {COURSE_ID} at http://{settings.ip}:{settings.port}/ "
          f"(students: the group {settings.group}; exchange {settings.exchange})", file=sys.stderr, flush=True)
    hub = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(config)], cwd=settings.state, env=env)
    # Ctrl-C or SIGTERM: JupyterHub stops the students' servers and its proxy, then itself
    signal.signal(signal.SIGTERM, lambda number, frame: hub.terminate())
    while True:
        try:
            return hub.wait()
        except KeyboardInterrupt:
            hub.terminate()


def release_feedback(assignment: str, out: Path, course: Path, exchange: Path) -> list[FeedbackPage]:
    """Copy each student's page OUT/feedback/<student>/<assignment>/<assignment>.html into nbgrader's
    feedback/<student>/<assignment>/ of `course`, with the submission's timestamp.txt and submission_secret.txt
    (what nbgrader names the released file by), then run nbgrader's release_feedback."""
    pages = outputs.pages_of(out, assignment)
    if not pages:
        raise HubError(f"{out / outputs.FEEDBACK} holds no feedback page of {assignment}: grade the collected "
                       f"submissions first (python -m autograder grade {course / 'submitted'} --out {out})")
    results = []
    for page in pages:
        student = page.parent.parent.name
        submitted = course / "submitted" / student / assignment
        if not (submitted / "timestamp.txt").is_file() or not (submitted / "submission_secret.txt").is_file():
            results.append(FeedbackPage(student, Released.NO_SUBMISSION))
            continue
        folder = course / "feedback" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("timestamp.txt", "submission_secret.txt"):
            shutil.copyfile(submitted / name, folder / name)
        shutil.copyfile(page, folder / f"{assignment}.html")
        results.append(FeedbackPage(student, Released.RELEASED))
    if any(r.outcome is Released.RELEASED for r in results):
        done = subprocess.run(
            [str(BIN / "nbgrader"), "release_feedback", assignment, f"--CourseDirectory.root={course}",
             f"--Exchange.root={exchange}"], cwd=REPO,
            env=dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")])))
        if done.returncode != 0:
            raise HubError(f"nbgrader release_feedback {assignment} failed (exit {done.returncode}); its messages "
                           f"are above")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m tools.hub", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("proxy", help=f"install configurable-http-proxy {PROXY_VERSION} into {PROXY_FOLDER}")
    run = commands.add_parser("serve", help="start the class's JupyterHub (as root)")
    run.add_argument("--ip", default="0.0.0.0", help="the address students connect to (default: every interface)")
    run.add_argument("--port", type=int, default=8000, help="the hub's public port (default 8000)")
    run.add_argument("--hub-port", type=int, default=8081, help="the hub's internal API port (default 8081)")
    run.add_argument("--proxy-api-port", type=int, default=8001, help="the proxy's API port (default 8001)")
    run.add_argument("--group", default="attention-students",
                     help="the Linux group whose members may log in (default attention-students)")
    run.add_argument("--exchange", type=Path, default=EXCHANGE, help=f"nbgrader's exchange (default {EXCHANGE})")
    run.add_argument("--state", type=Path, default=REPO / "_build" / "hub",
                     help="the hub's own files: database, cookie secret (default _build/hub)")
    run.add_argument("--python", type=Path, default=Path(sys.executable),
                     help="the Python 3.11 of the students' servers, when they cannot run the environment's own "
                          "(it runs the environment's packages; default: the environment's)")
    run.add_argument("--config", type=Path, default=None,
                     help="a JupyterHub configuration file loaded last (another authenticator: OAuth, native)")
    give = commands.add_parser("feedback", help="release each student's feedback page through the exchange")
    give.add_argument("assignment")
    give.add_argument("--out", type=Path, required=True, help="the grader's OUT folder")
    give.add_argument("--course", type=Path, default=REPO, help="nbgrader's course folder (default: the repository)")
    give.add_argument("--exchange", type=Path, default=EXCHANGE, help=f"nbgrader's exchange (default {EXCHANGE})")
    args = parser.parse_args(argv)
    try:
        if args.command == "proxy":
            print(install_proxy())
            return 0
        if args.command == "serve":
            return serve(HubSettings(args.ip, args.port, args.hub_port, args.proxy_api_port, args.group,
                                     args.exchange.resolve(), args.state.resolve(), args.config,
                                     args.python.absolute()))
        results = release_feedback(args.assignment, args.out.resolve(), args.course.resolve(),
                                   args.exchange.resolve())
        for result in results:
            print(f"{result.student}: {result.outcome.value}")
        return 0
    except HubError as error:
        print(f"tools.hub: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
