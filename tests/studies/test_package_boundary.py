"""infntk is one installable package: nothing under infntk/ imports the repository's ``validation/``
(validation depends on infntk, never the reverse), and every submodule imports without it."""
import ast
import json
import pathlib
import subprocess
import sys
import warnings

import infntk

PACKAGE = pathlib.Path(infntk.__file__).parent


def _imported_modules(path: pathlib.Path):
    with warnings.catch_warnings():  # a module's own warnings (invalid escapes) are not ours
        warnings.simplefilter("ignore")
        tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_module_imports_validation():
    offenders = [f"{p.relative_to(PACKAGE.parent)}: import {m}"
                 for p in sorted(PACKAGE.rglob("*.py"))
                 for m in _imported_modules(p) if m == "validation" or m.startswith("validation.")]
    assert not offenders, offenders


# Run in a fresh interpreter: the repository root leaves sys.path and a finder refuses
# `validation`, so an import of it anywhere (even a guarded one) is recorded, not silently found.
_SCRIPT = r"""
import importlib, importlib.abc, json, os, pkgutil, sys

repo = sys.argv[1]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != repo]
attempts = []

class RefuseValidation(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "validation" or name.startswith("validation."):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (refused)", name=name)
        return None

sys.meta_path.insert(0, RefuseValidation())
import infntk
failed, skipped, imported = {}, {}, []
for info in pkgutil.walk_packages(infntk.__path__, "infntk."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # running a command is not importing a module
    try:
        importlib.import_module(info.name)
        imported.append(info.name)
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        (failed if top in ("infntk", "validation", "") else skipped)[info.name] = repr(e)
    except Exception as e:
        failed[info.name] = repr(e)
print(json.dumps({"imported": imported, "failed": failed, "skipped": skipped,
                  "attempts": attempts, "validation_loaded": "validation" in sys.modules}))
"""


def test_every_submodule_imports_without_validation(tmp_path):
    repo = str(PACKAGE.parent.resolve())
    res = subprocess.run([sys.executable, "-c", _SCRIPT, repo], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert not out["failed"], out["failed"]
    assert not out["attempts"] and not out["validation_loaded"], out["attempts"]
    assert "infntk.studies.convergence" in out["imported"]
    assert "infntk.empirical.kernels" in out["imported"]
