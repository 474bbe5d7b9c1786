"""The student's workspace: work/ holds their copies of the released notebooks (notebooks/); work/zh/ their
copies of the Chinese edition's (zh/notebooks/), with `--edition zh` (`make lab EDITION=zh`).

`make lab` calls `sync` first. It copies every released file that the workspace lacks, and never
overwrites or deletes a file there. When a released notebook changes after the student got it (the
course fixed a typo, say), the new version goes beside theirs as `<id>.new.ipynb`, and they are told.

What the workspace was given is recorded in `work/.release.json` (file -> fingerprint of the released
version copied or announced last), so that each change is announced once and an untouched workspace
stays quiet. A notebook's fingerprint covers its cells' types and sources only: running a notebook or
saving it in JupyterLab does not change it. Each released notebook it was given is kept, unchanged, in
`work/.releases/<id>/<id>.<fingerprint>.ipynb`: `make check-submission` compares a notebook with the release it
came from, so that a cell the course changed since is never taken for one the student edited.

    python -m tools.workspace [--work DIR] [--edition en|zh]
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "notebooks"
WORK = REPO / "work"
RELEASES = {"en": RELEASE, "zh": REPO / "zh" / "notebooks"}     # each edition's released notebooks
WORKSPACES = {"en": WORK, "zh": WORK / "zh"}                     # and where its student works on them
RECORD = ".release.json"
GIVEN = ".releases"     # every released notebook the workspace was given, as it was given


@dataclass(frozen=True)
class Change:
    """What `sync` did to one released file: copied, unchanged, new_version (beside theirs), or pending."""
    release: Path   # the released file, under notebooks/
    target: Path    # the student's file, under the workspace
    action: str
    written: Path | None = None  # the file written: the copy, or the new version beside theirs

    def message(self, work: Path) -> str | None:
        relative = self.target.relative_to(work)
        if self.action == "copied":
            return f"copied {relative} (new assignment)"
        if self.action == "new_version":
            assert self.written is not None   # sync gives a new version the file it wrote
            return (f"the course changed {relative} since you got it: the new version is "
                    f"{self.written.relative_to(work)}, beside yours (yours is untouched; copy your answers over)")
        if self.action == "pending":
            assert self.written is not None   # and a pending one the version that waits
            return f"reminder: a newer version of {relative} waits beside it, as {self.written.relative_to(work)}"
        return None


def fingerprint(path: str | os.PathLike[str]) -> str:
    """A digest of what the course gives in a file: a notebook's cell types and sources, else its bytes."""
    data = Path(path).read_bytes()
    if Path(path).suffix == ".ipynb":
        try:
            cells = json.loads(data)["cells"]
            data = json.dumps([[c.get("cell_type"), "".join(c.get("source", ""))] for c in cells]).encode()
        except (ValueError, KeyError, TypeError):
            pass  # not a readable notebook: its bytes stand for it
    return hashlib.sha256(data).hexdigest()


def released_files(release: str | os.PathLike[str]) -> list[Path]:
    """Every file of every assignment folder of the release, sorted."""
    return sorted(p for p in Path(release).rglob("*")
                  if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts)


def given_path(work: Path, key: str, fingerprint_: str) -> Path:
    """Where the workspace keeps the released version `fingerprint_` of the file `key` (<id>/<id>.ipynb)."""
    relative = Path(key)
    return work / GIVEN / relative.parent / f"{relative.stem}.{fingerprint_[:16]}{relative.suffix}"


def keep_given(source: Path, work: Path, key: str, fingerprint_: str) -> None:
    """Keep a copy of a released notebook as the workspace was given it (once; never for other files)."""
    kept = given_path(work, key, fingerprint_)
    if source.suffix == ".ipynb" and not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, kept)


def given_versions(work: str | os.PathLike[str], assignment: str) -> list[Path]:
    """Every released version of an assignment's notebook that the workspace `work` was given and kept."""
    return sorted((Path(work) / GIVEN / assignment).glob(f"{assignment}.*.ipynb"))


def beside(target: Path) -> Path:
    """A free name for the new version of `target`: <stem>.new<suffix>, else <stem>.new-2<suffix>, ..."""
    candidate, n = target.with_name(f"{target.stem}.new{target.suffix}"), 2
    while candidate.exists():
        candidate, n = target.with_name(f"{target.stem}.new-{n}{target.suffix}"), n + 1
    return candidate


def sync(release: str | os.PathLike[str] = RELEASE, work: str | os.PathLike[str] = WORK) -> list[Change]:
    """Bring the released files into `work`; returns a Change per released file."""
    release, work = Path(release), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    record_path = work / RECORD
    record: dict[str, str] = json.loads(record_path.read_text()) if record_path.is_file() else {}
    changes = []
    for source in released_files(release):
        key = source.relative_to(release).as_posix()
        target = work / key
        new = fingerprint(source)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            record[key] = new
            keep_given(source, work, key, new)
            changes.append(Change(source, target, "copied", target))
            continue
        given = record.get(key)
        if given is None and fingerprint(target) == new:
            given = new  # a workspace from before the record: theirs is the release as it is now
        if given == new:
            keep_given(source, work, key, new)   # (a workspace from before the kept versions gets it now)
            waiting = [p for p in sorted(target.parent.glob(f"{target.stem}.new*{target.suffix}"))
                       if fingerprint(p) == new]
            changes.append(Change(source, target, "pending", waiting[0]) if waiting
                           else Change(source, target, "unchanged"))
            continue
        written = beside(target)
        shutil.copyfile(source, written)
        record[key] = new
        keep_given(source, work, key, new)
        changes.append(Change(source, target, "new_version", written))
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return changes


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m tools.workspace", description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=sorted(RELEASES), default="en",
                        help="the notebooks' language: en (notebooks/) or zh (zh/notebooks/)")
    parser.add_argument("--work", type=Path, default=None,
                        help="the student's folder (default: work/, and work/zh/ for the Chinese edition)")
    args = parser.parse_args(argv)
    work = (args.work or WORKSPACES[args.edition]).resolve()
    changes = sync(RELEASES[args.edition], work)
    for change in changes:
        message = change.message(work)
        if message:
            print(f"workspace: {message}")
    print(f"workspace: {work} holds your notebooks ({len(changes)} released files; yours are never overwritten)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
