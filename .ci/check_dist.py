"""Checks what the built sdist and wheel hold (run by .ci/run after the build).

Usage: python .ci/check_dist.py DIST_DIR

The wheel must hold every module git tracks under keras_conductance/, the
command's launcher (keras_conductance_cli.py) and nothing else but its
metadata: no paper studies (studies/ is its own package), no data, photos or weights (the staged data's
photos must never ship, see ../shared/data/README.md). The sdist holds the
same modules plus the project's metadata files.
"""

import pathlib
import subprocess
import sys
import tarfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SDIST_EXTRA = {"PKG-INFO", "README.md", "setup.cfg", "pyproject.toml", "MANIFEST.in"}
LAUNCHER = "keras_conductance_cli.py"


def tracked_modules():
    out = subprocess.run(["git", "ls-files", "keras_conductance"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    return {p for p in out if p.endswith(".py")}


def check_wheel(path: pathlib.Path, modules):
    names = [n for n in zipfile.ZipFile(path).namelist() if not n.endswith("/")]
    package = {n for n in names if n.startswith("keras_conductance/")}
    metadata = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    problems = [f"not a package module or metadata: {n}"
                for n in set(names) - package - metadata - {LAUNCHER}]
    problems += [f"the studies must not ship: {n}" for n in names if "studies" in n]
    problems += [] if LAUNCHER in names else [f"missing from the wheel: {LAUNCHER}"]
    problems += [f"not a Python module: {n}" for n in package if not n.endswith(".py")]
    problems += [f"missing from the wheel: {m}" for m in sorted(modules - package)]
    return problems


def check_sdist(path: pathlib.Path, modules):
    with tarfile.open(path) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()]
    package = {n for n in names if n.startswith("keras_conductance/")}
    egg_info = {n for n in names if n.startswith("keras_conductance.egg-info/")}
    problems = [f"unexpected in the sdist: {n}"
                for n in set(names) - package - egg_info - SDIST_EXTRA - {LAUNCHER}]
    problems += [f"not a Python module: {n}" for n in package if not n.endswith(".py")]
    problems += [f"missing from the sdist: {m}" for m in sorted(modules - package)]
    return problems


def main(argv):
    dist = pathlib.Path(argv[1])
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
        return 1
    modules = tracked_modules()
    problems = check_wheel(wheels[0], modules) + check_sdist(sdists[0], modules)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{wheels[0].name}: {len(modules)} modules, no data; {sdists[0].name}: the same")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
