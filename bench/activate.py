"""What a ``with isoenv.activate():`` block costs, for ``bench/run.py`` to call (or alone).

``measure_activate()`` runs one pytest session (offline, from the suite's real wheelhouse) whose
single test, marked ``requires=[package]``, times in-process, ``rounds`` times each:

- ``block_import``: a block that imports ``package`` (a small pure one: ``attrs`` by default)
  from the env's layer, everything undone at its end;
- ``block_empty``: a block that imports nothing (the set-up and undoing alone);
- ``import_alone``: the same import inside one open block, its modules dropped after each (what
  the import itself costs, for comparison);
- ``run_import``: ``isoenv.run("python", "-c", "import <package>")``, the subprocess way.

It returns the median of each in seconds. ``python bench/activate.py`` prints them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from realwheels import ensure_wheelhouse

_TEST = """\
import json, os, statistics, sys, time
import pytest

ROUNDS = {rounds}

def median(action):
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)

@pytest.mark.isoenv(requires=[{package!r}])
def test_measure(isoenv):
    def block_import():
        with isoenv.activate():
            import {module}
        assert {module!r} not in sys.modules

    def block_empty():
        with isoenv.activate():
            pass

    def run_import():
        isoenv.run("python", "-c", "import {module}")

    block_import()  # warm: the bytecode is compiled once, in the store's pycache
    with isoenv.activate():  # the import alone, in one block, the env's modules dropped after

        def import_alone():
            import {module}
            for name in [n for n in sys.modules if n.partition(".")[0] in {tops!r}]:
                del sys.modules[name]

        alone = median(import_alone)
    result = {{
        "import_alone": alone,
        "block_import": median(block_import),
        "block_empty": median(block_empty),
        "run_import": median(run_import) if ROUNDS else None,
        "modules": len(sys.modules),
    }}
    with open(os.environ["ISOENV_BENCH_OUT"], "w") as out:
        json.dump(result, out)
"""


def measure_activate(
    rounds: int = 200,
    package: str = "attrs",
    module: str = "attr",
    tops: tuple[str, ...] = ("attr", "attrs"),
) -> dict[str, float]:
    """Median seconds of an ``activate()`` block importing ``module``, and of the references.

    ``tops`` are the top-level modules ``package`` installs (dropped between plain imports).
    """
    wheelhouse = ensure_wheelhouse()
    with tempfile.TemporaryDirectory(prefix="isoenv-bench-activate-") as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        test = _TEST.format(rounds=rounds, package=package, module=module, tops=set(tops))
        (root / "test_activate_bench.py").write_text(textwrap.dedent(test))
        out = root / "result.json"
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("UV_", "PYTEST_ISOENV_", "PYTEST_ADDOPTS"))
        }
        environ.update(
            UV_FIND_LINKS=str(wheelhouse.path),
            UV_NO_INDEX="1",
            UV_CACHE_DIR=str(root / "uv-cache"),
            PYTEST_ISOENV_NO_INDEX="1",
            PYTEST_ISOENV_CACHE_DIR=str(root / "isoenv-cache"),
            ISOENV_BENCH_OUT=str(out),
        )
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
            cwd=root,
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the activate() benchmark session failed:\n{done.stdout}")
        result: dict[str, float] = json.loads(out.read_text())
        return result


def main() -> None:
    result = measure_activate(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    for name in ("import_alone", "block_import", "block_empty", "run_import"):
        print(f"{name:>13}: {result[name] * 1000:.2f} ms")
    print(f"{'modules':>13}: {result['modules']} in sys.modules")


if __name__ == "__main__":
    main()
