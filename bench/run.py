"""Benchmark pytest-isoenv against plain tests and the other ways of giving a test a venv.

Run it with ``python bench/run.py`` (``--quick`` for a smoke run, ``--rows a,d`` or
``--scenarios overhead`` for a part, ``--json PATH`` to keep the numbers). It needs pytest-isoenv
installed in the running interpreter; the alternatives (pytest-venv, pytest-virtualenv,
pytest-xdist) are measured when installed and reported as "n/a (not installed)" otherwise
(``pip install -e ".[bench]"``). It is not a test: nothing is asserted, it prints two tables of
medians: the issue targets (rows a-h, PASS/MISS) and the comparisons (scenarios).

Offline and deterministic: every package comes from the test suite's real wheelhouse
(``tests/realwheels.py``: numpy, pandas, six, attrs, ... downloaded once into a cache outside
the repository), uv and pip see nothing else (``UV_FIND_LINKS``/``UV_NO_INDEX``,
``PIP_FIND_LINKS``/``PIP_NO_INDEX``), and uv gets a cache of its own in the benchmark's
temporary directory, warmed by an untimed first run of every variant.

Issue targets (rows)
--------------------
Each row is measured against a reference measured in the same run, interleaved with it:

- **a** first test needing numpy: t(1-test session whose test is marked ``requires=["numpy"]``
  and imports numpy) - t(1 plain test), paired per round; reference: ``uv venv`` + ``uv pip
  install numpy`` + ``python -c "import numpy"``, run by hand (uv's default link mode). Target
  <= 1.5x. Bytecode writing on, as on users' machines.
- **b** the same with ``isoenv_requires = pandas`` and a test importing pandas, against
  ``uv venv`` + ``uv pip install pandas`` + ``import pandas``. Target <= 1.5x.
- **c** disk: one ``--isoenv-base=cache`` session of three tests marked ``numpy``+``attrs``,
  ``numpy``+``iniconfig`` and ``numpy``; ``du -sk`` of the isoenv cache dir (bases, layers and
  any store; hard links counted once; uv's cache is elsewhere) against ``du -sk`` of one venv
  made by ``uv venv`` + ``uv pip install numpy``. Target <= 1.3x.
- **d** the 2nd and later tests importing numpy: (t(N marked tests) - t(1 marked test)) /
  (N - 1), against ``python -c "import numpy"`` in a venv installed with ``uv pip install
  --compile-bytecode`` (the median of a few imports per round), once with
  ``PYTHONDONTWRITEBYTECODE=1`` and once without. Target <= 1.3x the reference + 10 ms.
- **e** bare test (``isoenv`` fixture, nothing else) and same-extras test (a numpy layer that
  exists): (t(N such tests) - t(N plain tests)) / N with ``--isoenv-base=cache`` warm, targets
  <= 2 ms and <= 3 ms; cached base reuse: a 1-test session with a cached pandas base, minus
  the same session whose test does not take ``isoenv``, target <= 150 ms.
- **f** a session that uses no env: 20 plain tests with the plugin loaded, minus the same with
  ``-p no:isoenv``. Target <= 10 ms (issue 11).
- **g** a test run inside its env (``inside=True``, a six layer that exists): (t(N such tests)
  - t(N plain tests)) / N, against one ``python -m pytest`` process running one plain test (a
  process per test, pytest-isolated's way). Target <= 1x (issue 10; the goal is well under).
- **h** the same for a test importing six in a ``with isoenv.activate():`` block.

Rows a, b, d, e, f, g and h are wall-clock differences of whole sessions (rows run as the scenarios
below do), so they include what the machine is doing: the output gives the 1-minute load
average beside each row.

Method
------
Every row and scenario writes a small project into a temporary directory and times whole pytest
sessions, each in a fresh process::

    python -m pytest -p no:cacheprovider -q --basetemp=<fresh dir> -p <plugins> <files>

with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, so a session loads exactly the plugins its scenario
names, whatever else is installed. The wall time of the process is the measure. Each variant is
run ``--repeat`` times (default 7; the slow alternatives at most 3 times), interleaved with the
others so a drift of the machine hits all of them alike, and the median is reported. Before
each timed session ``os.sync()`` flushes what earlier ones wrote (untimed), so their write-back
does not land in it. A session's ``--basetemp`` is deleted after the timing, so pytest never
spends a timed session cleaning earlier ones' ``tmp_path`` dirs (which favours the
alternatives that keep their venvs there).

Comparisons (scenarios). Per-test costs are differences of session times, so interpreter
start-up, pytest's own start-up and collection cancel out:

- **overhead** (no extras): a file of N tests taking the ``isoenv`` fixture and doing nothing
  else, against the same N tests without it; overhead = (t_isoenv - t_plain) / N, computed
  per repeat (the two sessions run back to back) and then the median taken.
- **one warm-cache extra** (``six``): cost per test = (t(trivial test + K tests) -
  t(trivial test alone)) / K, with the same plugins loaded in both sessions. Every such test
  imports six in its env with one subprocess; the reference row (K tests each running
  ``python -c pass`` in a subprocess, no env) is subtracted to give the "net" cost of getting
  the env. For the marker, each of the K tests asks for a different requirement set holding six
  (``six>=1.0``, ``six>=1.1``, ...), so each one is a first use: a layer built with uv, in
  every session. uv's cache is warmed by an untimed run of every variant first. These
  variants (and the session-start ones) get twice ``--repeat`` rounds: their differences are
  a few tens of ms between whole sessions.
- **repeated extras set** (50 tests marked ``requires=["numpy"]``): isoenv with the layer
  already in the persistent cache (``--isoenv-base=cache``, warmed by an untimed session), and
  with the layer built once inside the session; overhead = (t_marked - t_plain) / N as above,
  so the one-time reuse check (or build) of the layer is spread over the N tests. The
  alternatives install numpy in every test; the per-test cost is measured as for ``six``, with
  the number of pytest-venv tests capped and the cost for N tests extrapolated (said in the
  row). Timed runs do not import numpy (that costs the same in every env); the untimed warm-up
  run does, to check each variant really provides it.
- **session start** (``isoenv_requires = six attrs``): a 1-test session whose test takes
  ``isoenv``, with ``--isoenv-base=cache`` and a populated cache dir (the second session), with
  an empty cache dir (the first), in the default per-session mode, and with an empty cache dir
  and an empty ``UV_CACHE_DIR`` (unpacks the wheelhouse again). "Added" = t - t(the same session
  whose test does not take the fixture, so no base is built or checked).
- **xdist**: 100 tests each running ``isoenv.run("python", "-c", "pass")`` at ``-n 0`` and
  ``-n 2``; the throughput ratio is t(-n 0) / t(-n 2) of the whole session, and the
  steady-state ratio the same with a 2-test session's time subtracted from both (worker
  start-up left out). The same tests without isoenv (host ``python -c pass``) are the
  reference of what two cores allow.

The uv cache is the benchmark's own (see above) except in the rows marked cold, which get a
fresh empty one per session (uv then unpacks the wheelhouse again). ``PYTEST_ADDOPTS``,
``PYTEST_PLUGINS``, ``PYTEST_ISOENV_*``, ``UV_*`` and ``PIP_*`` from the environment are not
passed on.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The test suite's real wheelhouse (numpy, pandas, ...), downloaded once outside the repo.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from realwheels import ensure_wheelhouse

NOT_INSTALLED = "n/a (not installed)"
FAILED = "n/a (failed, see above)"
SLOW_REPEAT = 3  # the most sessions of a slow alternative per variant
BUSY = 1.0  # a 1-minute load average above this at the start: warn that timings will be noisy

# Plugin name for ``-p`` (entry-point name) -> module that must be importable.
PLUGINS = {
    "isoenv": "pytest_isoenv",
    "venv": "pytest_venv",
    "virtualenv": "pytest_virtualenv",
    "xdist": "xdist",
}
DISTRIBUTIONS = (
    "pytest",
    "pytest-isoenv",
    "pytest-venv",
    "pytest-virtualenv",
    "pytest-xdist",
    "virtualenv",
    "pip",
    "uv",
)
_DROPPED = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")

# -- the generated projects -------------------------------------------------------------------

PYTEST_INI = "[pytest]\n"

# A hand-written fixture: what a project without a plugin would write with uv.
UV_CONFTEST = """\
import shutil
import subprocess
import sys

import pytest


def _uv():
    try:
        from uv import find_uv_bin
    except ImportError:
        return shutil.which("uv") or "uv"
    return str(find_uv_bin())


UV = _uv()


class UvVenv:
    def __init__(self, path):
        self.path = path
        self.python = path / "bin" / "python"

    def install(self, *requirements):
        command = [UV, "pip", "install", "-q", "--python", str(self.python), *requirements]
        subprocess.run(command, check=True)


@pytest.fixture
def uv_venv(tmp_path):
    path = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(path)], check=True)
    return UvVenv(path)
"""

TRIVIAL = "def test_trivial():\n    pass\n"


def many(template: str, count: int, header: str = "") -> str:
    """A test module of ``count`` tests from ``template`` (``{i}`` is the test's number)."""
    body = "".join(textwrap.dedent(template).replace("{i}", str(i)) for i in range(count))
    return textwrap.dedent(header) + body


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    variant: str
    value: float | None  # seconds (unit "ms", "ms/test" or "s") or a ratio (unit "x")
    unit: str
    compare: str = ""  # how it compares with the scenario's pytest-isoenv row
    note: str = ""
    missing: str = ""  # why value is None


@dataclass
class Target:
    """One target of the issue and whether the measurement meets it."""

    name: str
    goal: str
    measured: str
    met: bool | None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def show(value: float | None, unit: str, missing: str = FAILED) -> str:
    if value is None:
        return missing
    small = abs(value) < 0.01
    formats: dict[str, Callable[[float], str]] = {
        "ms/test": lambda v: f"{v * 1000:.2f} ms/test" if small else f"{v * 1000:.0f} ms/test",
        "ms": lambda v: f"{v * 1000:.1f} ms" if small else f"{v * 1000:.0f} ms",
        "MiB": lambda v: f"{v / 2**20:.1f} MiB",
        "s": lambda v: f"{v:.2f} s",
        "x": lambda v: f"{v:.2f}x",
    }
    form = formats.get(unit)
    return form(value) if form else f"{value:.3g} {unit}"


def times(numerator: float | None, denominator: float | None) -> str:
    """``numerator / denominator`` as "12x" (or "" when either is missing)."""
    if numerator is None or denominator is None or denominator <= 0:
        return ""
    ratio = numerator / denominator
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def median(samples: Sequence[float]) -> float | None:
    return statistics.median(samples) if samples else None


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def per(total: float | None, count: int) -> float | None:
    return None if total is None else total / count


# -- running sessions ------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def installed(plugin: str) -> bool:
    return importlib.util.find_spec(PLUGINS[plugin]) is not None


def plugin_args(*plugins: str) -> list[str]:
    return [arg for plugin in plugins for arg in ("-p", plugin)]


class Bench:
    """Writes the scenario projects and times pytest sessions in them."""

    def __init__(self, root: Path, repeat: int, quick: bool, wheelhouse: Path) -> None:
        self.root = root
        self.repeat = repeat
        self.quick = quick
        self.wheelhouse = wheelhouse
        self.raw: dict[str, dict[str, list[float]]] = {}
        self.failures: list[str] = []
        self._sessions = 0
        (root / "tmp").mkdir()
        environ = {
            k: v
            for k, v in os.environ.items()
            if k not in _DROPPED and not k.startswith(("PYTEST_ISOENV_", "UV_", "PIP_"))
        }
        environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        environ["TMPDIR"] = str(root / "tmp")  # the plugins' temporary dirs stay in ours
        # Offline and deterministic: uv and pip see the real wheelhouse only, and uv a cache of
        # its own, warmed by the untimed first run of every variant.
        environ["UV_FIND_LINKS"] = str(wheelhouse)
        environ["UV_NO_INDEX"] = "1"
        environ["UV_CACHE_DIR"] = str(root / "uv-cache")
        environ["PIP_FIND_LINKS"] = str(wheelhouse)
        environ["PIP_NO_INDEX"] = "1"
        environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        self.environ = environ

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def project(self, name: str, files: Mapping[str, str]) -> Path:
        path = self.root / name
        path.mkdir()
        (path / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
        for filename, text in files.items():
            (path / filename).write_text(text, encoding="utf-8")
        return path

    def fresh_dir(self, prefix: str) -> Path:
        self._sessions += 1
        return self.root / f"{prefix}-{self._sessions}"

    def pytest(
        self,
        label: str,
        project: Path,
        args: Sequence[str],
        environ: Mapping[str, str | None] | None = None,
    ) -> float | None:
        """The wall time of one pytest session in ``project``, or None if it failed.

        A None value in ``environ`` removes that variable.
        """
        basetemp = self.fresh_dir("basetemp")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--basetemp={basetemp}",
            *args,
        ]
        env = dict(self.environ)
        for key, value in (environ or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        # Flush what earlier sessions wrote, so their write-back does not slow this one down.
        os.sync()
        start = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - start
        shutil.rmtree(basetemp, ignore_errors=True)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            tail = "\n    ".join(output[-25:])
            self.failures.append(f"{label}: exit {done.returncode}")
            log(f"  ! {label} failed (exit {done.returncode}): {' '.join(args)}\n    {tail}")
            return None
        return elapsed

    def command(
        self,
        label: str,
        argv: Sequence[str],
        environ: Mapping[str, str | None] | None = None,
    ) -> float | None:
        """The wall time of one command (not pytest), or None if it failed.

        A None value in ``environ`` removes that variable.
        """
        env = dict(self.environ)
        for key, value in (environ or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        os.sync()
        start = time.perf_counter()
        done = subprocess.run(
            list(argv),
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            output = "\n    ".join((done.stdout + done.stderr).strip().splitlines()[-25:])
            self.failures.append(f"{label}: exit {done.returncode}")
            log(f"  ! {label} failed (exit {done.returncode}): {' '.join(argv)}\n    {output}")
            return None
        return elapsed

    def measure(
        self,
        scenario: str,
        cases: Mapping[str, Callable[[], float | None]],
        slow: Sequence[str] = (),
        rounds: int | None = None,
    ) -> dict[str, list[float]]:
        """Run every case ``rounds`` times (``slow`` ones at most SLOW_REPEAT), interleaved.

        ``rounds`` defaults to ``--repeat``. A case that fails once is not run again and has
        no samples.
        """
        rounds = rounds or self.repeat
        samples: dict[str, list[float]] = {name: [] for name in cases}
        failed: set[str] = set()
        for round_ in range(rounds):
            for name, case in cases.items():
                if name in failed or (name in slow and round_ >= min(rounds, SLOW_REPEAT)):
                    continue
                seconds = case()
                if seconds is None:
                    failed.add(name)
                    samples[name] = []
                    continue
                samples[name].append(seconds)
            done = ", ".join(
                f"{name} {samples[name][-1]:.2f}s"
                for name in cases
                if samples[name] and len(samples[name]) == round_ + 1
            )
            log(f"  [{scenario}] round {round_ + 1}/{rounds}: {done}")
        self.raw[scenario] = samples
        return samples

    def warm(self, label: str, run: Callable[[], float | None]) -> bool:
        """One untimed run (fills uv's and pip's caches, checks the variant works)."""
        log(f"  [warm-up] {label}")
        return run() is not None


# -- scenario 1: per-test overhead without extras --------------------------------------------


def scenario_overhead(bench: Bench) -> Results:
    name = "no extras: per-test overhead"
    results = Results()
    n = bench.size(200, 40)
    if not installed("isoenv"):
        results.rows.append(Row(name, "pytest-isoenv", None, "ms/test", missing=NOT_INSTALLED))
        return results
    project = bench.project(
        "overhead",
        {
            "test_plain.py": many("def test_{i}():\n    pass\n", n),
            "test_isoenv.py": many("def test_{i}(isoenv):\n    pass\n", n),
        },
    )
    args = plugin_args("isoenv")
    cases: dict[str, Callable[[], float | None]] = {
        "plain": lambda: bench.pytest("overhead plain", project, [*args, "test_plain.py"]),
        "isoenv": lambda: bench.pytest("overhead isoenv", project, [*args, "test_isoenv.py"]),
    }
    for label, case in cases.items():
        bench.warm(f"overhead {label}", case)
    samples = bench.measure("overhead", cases)
    plain, iso = samples["plain"], samples["isoenv"]
    paired = [(i - p) / n for p, i in zip(plain, iso)] if plain and iso else []
    overhead = median(paired)
    results.rows += [
        Row(name, f"plain test ({n} tests, session)", median(plain), "s"),
        Row(name, f"`isoenv` fixture, nothing else ({n} tests, session)", median(iso), "s"),
        Row(name, "pytest-isoenv overhead per test", overhead, "ms/test", note=f"N = {n}"),
    ]
    results.targets.append(
        Target(
            "no extras: overhead over a plain test",
            "<= 2 ms",
            show(overhead, "ms/test"),
            None if overhead is None else overhead <= 0.002,
        )
    )
    return results


# -- scenario 2: one warm-cache extra --------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A way of running K tests that each need an env, in one file of the scenario's project."""

    label: str
    filename: str
    count: int
    plugins: tuple[str, ...]
    slow: bool = False

    @property
    def available(self) -> bool:
        return all(installed(plugin) for plugin in self.plugins)


def _variant_sessions(
    bench: Bench,
    scenario: str,
    project: Path,
    variants: Sequence[Variant],
    rounds: int | None = None,
) -> dict[str, float | None]:
    """Per-test cost of each variant: (t(trivial + K tests) - t(trivial)) / K, medians."""
    cases: dict[str, Callable[[], float | None]] = {}
    slow: list[str] = []
    baselines: dict[tuple[str, ...], str] = {}

    def session(label: str, args: list[str]) -> Callable[[], float | None]:
        return lambda: bench.pytest(f"{scenario} {label}", project, args)

    for variant in variants:
        if not variant.available:
            continue
        if variant.plugins not in baselines:
            key = "baseline " + "+".join(variant.plugins)
            baselines[variant.plugins] = key
            cases[key] = session(key, [*plugin_args(*variant.plugins), "test_base.py"])
            if variant.slow:
                slow.append(key)
        args = [*plugin_args(*variant.plugins), "test_base.py", variant.filename]
        cases[variant.label] = session(variant.label, args)
        if variant.slow:
            slow.append(variant.label)
        # One untimed test, checking the env really has the package: warms uv's and pip's caches.
        log(f"  [warm-up] {scenario} {variant.label}")
        check = [*plugin_args(*variant.plugins), f"{variant.filename}::test_0"]
        bench.pytest(f"{scenario} {variant.label} (warm-up)", project, check, {"BENCH_CHECK": "1"})
    samples = bench.measure(scenario, cases, slow, rounds)
    costs: dict[str, float | None] = {}
    for variant in variants:
        if not variant.available:
            continue
        total = minus(median(samples[variant.label]), median(samples[baselines[variant.plugins]]))
        costs[variant.label] = per(total, variant.count)
    return costs


def scenario_one_extra(bench: Bench) -> Results:
    name = "one warm-cache extra (six): per test"
    results = Results()
    k = bench.size(5, 2)
    k_ref = bench.size(20, 5)
    k_slow = bench.size(3, 1)
    files = {
        "conftest.py": UV_CONFTEST,
        "test_base.py": TRIVIAL,
        "test_reference.py": many(
            """\
            def test_{i}():
                subprocess.run([sys.executable, "-c", "pass"], check=True)
            """,
            k_ref,
            "import subprocess\nimport sys\n\n",
        ),
        "test_isoenv_marker.py": many(
            """\
            @pytest.mark.isoenv(requires=["six>=1.{i}"])
            def test_{i}(isoenv):
                isoenv.run("python", "-c", "import six")
            """,
            k,
            "import pytest\n\n",
        ),
        "test_isoenv_install.py": many(
            """\
            def test_{i}(isoenv):
                isoenv.install("six")
                isoenv.run("python", "-c", "import six")
            """,
            k,
        ),
        "test_uv.py": many(
            """\
            def test_{i}(uv_venv):
                uv_venv.install("six")
                subprocess.run([str(uv_venv.python), "-c", "import six"], check=True)
            """,
            k,
            "import subprocess\n\n",
        ),
        "test_pytest_venv.py": many(
            """\
            def test_{i}(venv):
                venv.install("six", extra_args=["-q"])
                subprocess.run([venv.python, "-c", "import six"], check=True)
            """,
            k_slow,
            "import subprocess\n\n",
        ),
        "test_pytest_virtualenv.py": many(
            """\
            def test_{i}(virtualenv):
                virtualenv.install_package("six")
                virtualenv.run([str(virtualenv.python), "-c", "import six"])
            """,
            k_slow,
        ),
    }
    project = bench.project("one-extra", files)
    iso = ("isoenv",)
    reference = Variant(
        "reference: `python -c pass` subprocess per test, no env", "test_reference.py", k_ref, iso
    )
    marker = Variant(
        "pytest-isoenv, marker requires=['six>=1.<i>'] (first use: a layer build per test)",
        "test_isoenv_marker.py",
        k,
        iso,
    )
    pytest_venv = Variant(
        "pytest-venv: venv.install('six')", "test_pytest_venv.py", k_slow, ("venv",), slow=True
    )
    variants = [
        reference,
        marker,
        Variant(
            "pytest-isoenv, isoenv.install('six') in the test", "test_isoenv_install.py", k, iso
        ),
        Variant("hand-written fixture: uv venv + uv pip install six", "test_uv.py", k, iso),
        pytest_venv,
        Variant(
            "pytest-virtualenv: virtualenv.install_package('six')",
            "test_pytest_virtualenv.py",
            k_slow,
            ("virtualenv",),
            slow=True,
        ),
    ]
    # Small differences of session times: twice the rounds (the slow ones stay capped).
    costs = _variant_sessions(bench, "one-extra", project, variants, 2 * bench.repeat)
    reference_cost = costs.get(reference.label)
    marker_cost = costs.get(marker.label)
    marker_net = minus(marker_cost, reference_cost)
    for variant in variants:
        cost = costs.get(variant.label)
        note = f"K = {variant.count}"
        compare = ""
        if variant is not reference:
            net = minus(cost, reference_cost)
            compare = times(net, marker_net)
            if net is not None:
                note += f"; net of the reference: {show(net, 'ms/test')}"
        results.rows.append(
            Row(
                name,
                variant.label,
                cost,
                "ms/test",
                compare=compare,
                note=note,
                missing="" if variant.available else NOT_INSTALLED,
            )
        )
    venv_net = minus(costs.get(pytest_venv.label), reference_cost)
    results.targets.append(
        Target(
            "one warm-cache extra, first use (net of the test's own subprocess)",
            "<= 50 ms",
            f"{show(marker_net, 'ms/test')} net ({show(marker_cost, 'ms/test')} with it)",
            None if marker_net is None else marker_net <= 0.050,
        )
    )
    speedup = None if venv_net is None or not marker_net else venv_net / marker_net
    missing = FAILED if pytest_venv.available else NOT_INSTALLED
    results.targets.append(
        Target(
            "one warm-cache extra, first use: faster than pytest-venv (net)",
            ">= 20x",
            times(venv_net, marker_net) or missing,
            None if speedup is None else speedup >= 20,
        )
    )
    return results


# -- scenario 3: repeated extras set ---------------------------------------------------------


def scenario_repeated(bench: Bench) -> Results:
    name = "repeated extras set (numpy)"
    results = Results()
    if not installed("isoenv"):
        results.rows.append(Row(name, "pytest-isoenv", None, "ms/test", missing=NOT_INSTALLED))
        return results
    n = bench.size(50, 10)
    k_uv = bench.size(20, 3)
    k_slow = bench.size(3, 1)
    header = (
        "import os\nimport subprocess\n\nimport pytest\n\n"
        'CHECK = bool(os.environ.get("BENCH_CHECK"))\n\n'
    )
    files = {
        "conftest.py": UV_CONFTEST,
        "test_base.py": TRIVIAL,
        "test_plain.py": many("def test_{i}():\n    pass\n", n),
        "test_isoenv.py": many(
            """\
            @pytest.mark.isoenv(requires=["numpy"])
            def test_{i}(isoenv):
                if CHECK:
                    isoenv.run("python", "-c", "import numpy")
            """,
            n,
            header,
        ),
        "test_uv.py": many(
            """\
            def test_{i}(uv_venv):
                uv_venv.install("numpy")
                if CHECK:
                    subprocess.run([str(uv_venv.python), "-c", "import numpy"], check=True)
            """,
            k_uv,
            header,
        ),
        "test_pytest_venv.py": many(
            """\
            def test_{i}(venv):
                venv.install("numpy", extra_args=["-q"])
                if CHECK:
                    subprocess.run([venv.python, "-c", "import numpy"], check=True)
            """,
            k_slow,
            header,
        ),
    }
    project = bench.project("repeated", files)
    iso = plugin_args("isoenv")
    cache = [f"--isoenv-cache-dir={bench.root / 'repeated-cache'}", "--isoenv-base=cache"]
    plain_args = [*iso, "test_base.py", "test_plain.py"]
    cached_args = [*iso, *cache, "test_base.py", "test_isoenv.py"]
    session_args = [*iso, "test_base.py", "test_isoenv.py"]
    check = {"BENCH_CHECK": "1"}
    bench.warm("repeated isoenv (cache)", lambda: bench.pytest("warm", project, cached_args, check))
    bench.warm("repeated isoenv (session)", lambda: bench.pytest("warm", project, session_args))
    cases: dict[str, Callable[[], float | None]] = {
        "plain": lambda: bench.pytest("repeated plain", project, plain_args),
        "cached": lambda: bench.pytest("repeated isoenv cache", project, cached_args),
        "session": lambda: bench.pytest("repeated isoenv session", project, session_args),
    }
    samples = bench.measure("repeated-isoenv", cases)
    plain = median(samples["plain"])
    cached = per(minus(median(samples["cached"]), plain), n)
    in_session = per(minus(median(samples["session"]), plain), n)
    variants = [
        Variant(
            "hand-written fixture: uv venv + uv pip install numpy",
            "test_uv.py",
            k_uv,
            ("isoenv",),
        ),
        Variant(
            "pytest-venv: venv.install('numpy')",
            "test_pytest_venv.py",
            k_slow,
            ("venv",),
            slow=True,
        ),
    ]
    costs = _variant_sessions(bench, "repeated", project, variants)
    results.rows += [
        Row(name, f"plain test ({n} tests, session)", plain, "s"),
        Row(
            name,
            "pytest-isoenv, layer exists (--isoenv-base=cache, 2nd session): overhead",
            cached,
            "ms/test",
            note=f"N = {n}; vs a plain test; the layer's reuse check is spread over the N",
        ),
        Row(
            name,
            "pytest-isoenv, layer built once in the session: overhead",
            in_session,
            "ms/test",
            compare=times(in_session, cached),
            note=f"N = {n}; the one layer build is spread over the N tests",
        ),
    ]
    for variant in variants:
        cost = costs.get(variant.label)
        note = f"installs in every test; measured on K = {variant.count}"
        if cost is not None:
            note += f"; {n} tests = {cost * n:.1f} s"
            if variant.count < n:
                note += " (extrapolated)"
        results.rows.append(
            Row(
                name,
                variant.label,
                cost,
                "ms/test",
                compare=times(cost, cached),
                note=note,
                missing="" if variant.available else NOT_INSTALLED,
            )
        )
    results.targets.append(
        Target(
            "repeated extras set, layer exists: overhead over a plain test",
            "<= 3 ms",
            show(cached, "ms/test"),
            None if cached is None else cached <= 0.003,
        )
    )
    return results


# -- scenario 4: session start with a cached base --------------------------------------------


def scenario_session_start(bench: Bench) -> Results:
    name = "session start (isoenv_requires = six, attrs), 1 test"
    results = Results()
    if not installed("isoenv"):
        results.rows.append(Row(name, "pytest-isoenv", None, "ms", missing=NOT_INSTALLED))
        return results
    project = bench.project(
        "session-start",
        {
            "test_plain.py": TRIVIAL,
            "test_isoenv.py": "def test_isoenv(isoenv):\n    pass\n",
        },
    )
    (project / "pytest.ini").write_text("[pytest]\nisoenv_requires =\n    six\n    attrs\n")
    iso = plugin_args("isoenv")
    warm_cache = bench.root / "session-start-cache"

    def cached(cache_dir: Path, environ: Mapping[str, str] | None = None) -> float | None:
        args = [*iso, "--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}", "test_isoenv.py"]
        return bench.pytest("session-start cache", project, args, environ)

    cases: dict[str, Callable[[], float | None]] = {
        "plain": lambda: bench.pytest("session-start plain", project, [*iso, "test_plain.py"]),
        "warm": lambda: cached(warm_cache),
        "cold": lambda: cached(bench.fresh_dir("isoenv-cache")),
        "session": lambda: bench.pytest("session-start session", project, [*iso, "test_isoenv.py"]),
        "cold-uv": lambda: cached(
            bench.fresh_dir("isoenv-cache"), {"UV_CACHE_DIR": str(bench.fresh_dir("uv-cache"))}
        ),
    }
    bench.warm("session-start plain", cases["plain"])
    bench.warm("session-start cache (fills the cache dir)", cases["warm"])
    # Differences of a few tens of ms between whole sessions: twice the rounds.
    samples = bench.measure("session-start", cases, rounds=2 * bench.repeat)
    plain = median(samples["plain"])
    added = {key: minus(median(values), plain) for key, values in samples.items()}
    warm = added["warm"]
    results.rows += [
        Row(name, "plain 1-test session (plugin loaded, no env)", plain, "ms"),
        Row(
            name,
            "--isoenv-base=cache, 2nd session (warm cache): added",
            warm,
            "ms",
            note="base found, verified, reused",
        ),
        Row(
            name,
            "--isoenv-base=cache, 1st session (empty cache dir): added",
            added["cold"],
            "ms",
            compare=times(added["cold"], warm),
            note="base built with uv (warm uv cache)",
        ),
        Row(
            name,
            "--isoenv-base=session (default): added",
            added["session"],
            "ms",
            compare=times(added["session"], warm),
            note="base built every session (warm uv cache)",
        ),
        Row(
            name,
            "--isoenv-base=cache, empty cache dir and empty UV_CACHE_DIR: added",
            added["cold-uv"],
            "ms",
            compare=times(added["cold-uv"], warm),
            note="uv unpacks the wheelhouse again",
        ),
    ]
    results.targets.append(
        Target(
            "second session with --isoenv-base=cache: added to session start",
            "<= 150 ms",
            show(warm, "ms"),
            None if warm is None else warm <= 0.150,
        )
    )
    return results


# -- scenario 5: xdist -----------------------------------------------------------------------


def scenario_xdist(bench: Bench) -> Results:
    n = bench.size(100, 20)
    name = f"{n} tests each running `python -c pass` in their env"
    results = Results()
    if not installed("isoenv"):
        results.rows.append(Row(name, "pytest-isoenv", None, "s", missing=NOT_INSTALLED))
        return results
    iso_test = 'def test_{i}(isoenv):\n    isoenv.run("python", "-c", "pass")\n'
    ref_test = 'def test_{i}():\n    subprocess.run([sys.executable, "-c", "pass"], check=True)\n'
    ref_header = "import subprocess\nimport sys\n\n"
    project = bench.project(
        "xdist",
        {
            "test_isoenv_many.py": many(iso_test, n),
            "test_isoenv_two.py": many(iso_test, 2),
            "test_reference_many.py": many(ref_test, n, ref_header),
            "test_reference_two.py": many(ref_test, 2, ref_header),
        },
    )
    has_xdist = installed("xdist")
    plugins = plugin_args("isoenv", "xdist") if has_xdist else plugin_args("isoenv")
    cases: dict[str, Callable[[], float | None]] = {}
    for kind in ("isoenv", "reference"):
        for workers in ("0", "2") if has_xdist else ("0",):
            for size in ("many", "two"):
                args = [*plugins, f"test_{kind}_{size}.py"]
                if has_xdist:
                    args += ["-n", workers]
                label = f"{kind} -n {workers} {size}"
                cases[label] = functools.partial(bench.pytest, f"xdist {label}", project, args)
    bench.warm("xdist isoenv -n 0", cases["isoenv -n 0 many"])
    samples = bench.measure("xdist", cases)
    t = {label: median(values) for label, values in samples.items()}
    for kind, title in (("isoenv", "pytest-isoenv"), ("reference", "reference: no env")):
        serial = t[f"{kind} -n 0 many"]
        parallel = t.get(f"{kind} -n 2 many")
        wall = None if serial is None or not parallel else serial / parallel
        steady_serial = minus(serial, t[f"{kind} -n 0 two"])
        steady_parallel = minus(parallel, t.get(f"{kind} -n 2 two"))
        steady = (
            None
            if steady_serial is None or not steady_parallel
            else steady_serial / steady_parallel
        )
        xdist_missing = "" if has_xdist else NOT_INSTALLED
        results.rows += [
            Row(name, f"{title}, -n 0: session", serial, "s"),
            Row(name, f"{title}, -n 2: session", parallel, "s", missing=xdist_missing),
            Row(
                name,
                f"{title}: throughput -n 2 / -n 0",
                wall,
                "x",
                note=f"steady state (2-test session subtracted): {show(steady, 'x')}",
                missing=xdist_missing,
            ),
        ]
        if kind == "isoenv":
            results.targets.append(
                Target(
                    "-n 2 throughput vs -n 0 (whole session)",
                    "close to 2x (>= 1.8x)",
                    f"{show(wall, 'x', xdist_missing or FAILED)} "
                    f"(steady state {show(steady, 'x', xdist_missing or FAILED)})",
                    None if wall is None else wall >= 1.8,
                )
            )
    return results


# -- issue targets: rows a-h, each a ratio (or a difference) measured in the same run ----------

DONT_WRITE = "PYTHONDONTWRITEBYTECODE"
WRITE_BYTECODE: dict[str, str | None] = {DONT_WRITE: None}  # as on users' machines
NO_BYTECODE: dict[str, str | None] = {DONT_WRITE: "1"}


@dataclass
class Check:
    """One row of issue targets: a value measured against a reference measured alongside.

    The target is ``measured <= limit`` (``relative`` False, seconds or bytes) or
    ``measured <= limit * reference + slack`` (``relative`` True).
    """

    row: str
    name: str
    measured: float | None
    reference: float | None
    reference_name: str
    unit: str  # "s", "ms", "ms/test" (values in seconds) or "MiB" (values in bytes)
    limit: float
    relative: bool
    slack: float = 0.0
    note: str = ""
    load: float = 0.0  # the 1-minute load average when the row was measured

    def __post_init__(self) -> None:
        self.load = self.load or load_average()

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.reference:
            return None
        return self.measured / self.reference

    @property
    def target(self) -> str:
        if not self.relative:
            return f"<= {show(self.limit, self.unit)}"
        slack = f" + {show(self.slack, self.unit)}" if self.slack else ""
        return f"<= {self.limit:g}x{slack}"

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        if not self.relative:
            return self.measured <= self.limit
        if self.reference is None:
            return None
        return self.measured <= self.limit * self.reference + self.slack


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv") or "uv"


def paired(a: Sequence[float], b: Sequence[float], count: int = 1) -> float | None:
    """Median of (a_i - b_i) / count over rounds that have both (sessions run back to back)."""
    return median([(x - y) / count for x, y in zip(a, b)])


class ByHand:
    """What a user does without a plugin: ``uv venv``, ``uv pip install``, one import."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.uv = uv_binary()

    def make(
        self,
        label: str,
        requirement: str,
        module: str | None,
        *,
        environ: Mapping[str, str | None] | None = None,
        install_args: Sequence[str] = (),
        keep: bool = False,
    ) -> tuple[float | None, Path]:
        """Time the three steps; returns (seconds, venv). The venv is deleted unless ``keep``."""
        venv = self.bench.fresh_dir("by-hand")
        python = venv / "bin" / "python"
        steps = [
            [self.uv, "venv", "-q", "--python", sys.executable, str(venv)],
            [self.uv, "pip", "install", "-q", "--python", str(python), *install_args, requirement],
        ]
        if module:
            steps.append([str(python), "-c", f"import {module}"])
        total: float | None = 0.0
        for step in steps:
            seconds = self.bench.command(label, step, environ)
            if seconds is None or total is None:
                total = None
                break
            total += seconds
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)
        return total, venv


def disk_usage(path: Path) -> float | None:
    """Bytes used under ``path`` (``du -sk``: hard links counted once, symlinks not followed)."""
    done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.split():
        log(f"  ! du -sk {path} failed: {done.stderr.strip()}")
        return None
    return float(done.stdout.split()[0]) * 1024


NUMPY_TEST = """\
@pytest.mark.isoenv(requires=["numpy"])
def test_{i}(isoenv):
    isoenv.run("python", "-c", "import numpy")
"""


def row_a(bench: Bench) -> list[Check]:
    """First test needing numpy (warm uv cache) vs uv venv + uv pip install numpy + import."""
    project = bench.project(
        "row-a",
        {"test_plain.py": TRIVIAL, "test_numpy.py": many(NUMPY_TEST, 1, "import pytest\n\n")},
    )
    iso = plugin_args("isoenv")
    hand = ByHand(bench)
    cases: dict[str, Callable[[], float | None]] = {
        "plain": lambda: bench.pytest("a plain", project, [*iso, "test_plain.py"], WRITE_BYTECODE),
        "isoenv": lambda: bench.pytest(
            "a isoenv", project, [*iso, "test_numpy.py"], WRITE_BYTECODE
        ),
        "by hand": lambda: hand.make("a by hand", "numpy", "numpy", environ=WRITE_BYTECODE)[0],
    }
    for label, case in cases.items():
        bench.warm(f"a {label}", case)
    samples = bench.measure("row a", cases)
    added = paired(samples["isoenv"], samples["plain"])
    return [
        Check(
            row="a",
            name="first test needing numpy, warm uv cache: added to a 1-test session",
            measured=added,
            reference=median(samples["by hand"]),
            reference_name="uv venv + uv pip install numpy + python -c 'import numpy'",
            unit="ms",
            limit=1.5,
            relative=True,
            note="session mode: the (empty) base, the layer and the env are built in the session",
        )
    ]


def row_b(bench: Bench) -> list[Check]:
    """A session whose base holds pandas vs the same by hand."""
    project = bench.project(
        "row-b",
        {
            "test_plain.py": TRIVIAL,
            "test_pandas.py": (
                'def test_pandas(isoenv):\n    isoenv.run("python", "-c", "import pandas")\n'
            ),
        },
    )
    (project / "pytest.ini").write_text("[pytest]\nisoenv_requires = pandas\n", encoding="utf-8")
    iso = plugin_args("isoenv")
    hand = ByHand(bench)
    cases: dict[str, Callable[[], float | None]] = {
        "plain": lambda: bench.pytest("b plain", project, [*iso, "test_plain.py"], WRITE_BYTECODE),
        "isoenv": lambda: bench.pytest(
            "b isoenv", project, [*iso, "test_pandas.py"], WRITE_BYTECODE
        ),
        "by hand": lambda: hand.make("b by hand", "pandas", "pandas", environ=WRITE_BYTECODE)[0],
    }
    for label, case in cases.items():
        bench.warm(f"b {label}", case)
    samples = bench.measure("row b", cases)
    added = paired(samples["isoenv"], samples["plain"])
    return [
        Check(
            row="b",
            name="session whose base holds pandas (1 test importing it): added to the session",
            measured=added,
            reference=median(samples["by hand"]),
            reference_name="uv venv + uv pip install pandas + python -c 'import pandas'",
            unit="ms",
            limit=1.5,
            relative=True,
            note="session mode, warm uv cache",
        )
    ]


SHARING_NUMPY = """\
import pytest

@pytest.mark.isoenv(requires=["numpy", "attrs"])
def test_numpy_attrs(isoenv):
    isoenv.run("python", "-c", "import numpy, attrs")

@pytest.mark.isoenv(requires=["numpy", "iniconfig"])
def test_numpy_iniconfig(isoenv):
    isoenv.run("python", "-c", "import numpy, iniconfig")

@pytest.mark.isoenv(requires=["numpy"])
def test_numpy(isoenv):
    isoenv.run("python", "-c", "import numpy")
"""


def row_c(bench: Bench) -> list[Check]:
    """Disk of three requirement sets sharing numpy vs one numpy venv."""
    project = bench.project("row-c", {"test_sharing.py": SHARING_NUMPY})
    cache = bench.root / "row-c-cache"
    args = [*plugin_args("isoenv"), "--isoenv-base=cache", f"--isoenv-cache-dir={cache}"]
    hand = ByHand(bench)
    measured = reference = compiled = None
    if bench.pytest("c isoenv", project, [*args, "test_sharing.py"]) is not None:
        # Bases, layers and whatever store the cache dir holds; uv's cache is elsewhere.
        measured = disk_usage(cache)
    seconds, venv = hand.make("c by hand", "numpy", None, keep=True)
    if seconds is not None:
        reference = disk_usage(venv)
    shutil.rmtree(venv, ignore_errors=True)
    seconds, venv = hand.make(
        "c by hand, compiled", "numpy", None, install_args=["--compile-bytecode"], keep=True
    )
    if seconds is not None:
        compiled = disk_usage(venv)
    shutil.rmtree(venv, ignore_errors=True)
    return [
        Check(
            row="c",
            name="disk: 3 requirement sets sharing numpy (numpy+attrs, numpy+iniconfig, numpy),"
            " isoenv cache dir",
            measured=measured,
            reference=reference,
            reference_name="one venv: uv venv + uv pip install numpy",
            unit="MiB",
            limit=1.3,
            relative=True,
            note=f"du -sk, hard links once, uv's cache excluded; the same venv byte-compiled: "
            f"{show(compiled, 'MiB', 'n/a')}",
        )
    ]


def row_d(bench: Bench) -> list[Check]:
    """The 2nd and later tests importing numpy vs an import in a compiled venv."""
    n = bench.size(20, 5)
    project = bench.project(
        "row-d",
        {
            "test_first.py": many(NUMPY_TEST, 1, "import pytest\n\n"),
            "test_many.py": many(NUMPY_TEST, n, "import pytest\n\n"),
        },
    )
    iso = plugin_args("isoenv")
    hand = ByHand(bench)
    seconds, venv = hand.make(
        "d reference venv", "numpy", "numpy", install_args=["--compile-bytecode"], keep=True
    )
    if seconds is None:
        return []
    imports = bench.size(10, 3)
    importing = [str(venv / "bin" / "python"), "-c", "import numpy"]
    checks = []
    for label, environ in (("PYTHONDONTWRITEBYTECODE=1", NO_BYTECODE), ("unset", WRITE_BYTECODE)):

        def reference(environ: Mapping[str, str | None] = environ) -> float | None:
            # Median of a few imports: one sample per round, like the sessions.
            done = [bench.command("d reference", importing, environ) for _ in range(imports)]
            return None if None in done else median([t for t in done if t is not None])

        cases: dict[str, Callable[[], float | None]] = {
            "first": functools.partial(
                bench.pytest, "d first", project, [*iso, "test_first.py"], environ
            ),
            "many": functools.partial(
                bench.pytest, "d many", project, [*iso, "test_many.py"], environ
            ),
            "reference": reference,
        }
        bench.warm(f"d many ({label})", cases["many"])
        samples = bench.measure(f"row d ({label})", cases)
        per_test = paired(samples["many"], samples["first"], n - 1)
        checks.append(
            Check(
                row="d",
                name=f"2nd and later tests importing numpy (layer), per test, {label}",
                measured=per_test,
                reference=median(samples["reference"]),
                reference_name="python -c 'import numpy' in a uv venv with --compile-bytecode",
                unit="ms",
                limit=1.3,
                relative=True,
                slack=0.010,
                note=f"(t({n} tests) - t(1 test)) / {n - 1}; each test runs one subprocess",
            )
        )
    shutil.rmtree(venv, ignore_errors=True)
    return checks


def row_e(bench: Bench) -> list[Check]:
    """Bare test overhead, same-extras test overhead, cached base reuse."""
    n_bare = bench.size(200, 40)
    n_extras = bench.size(50, 10)
    marked = '@pytest.mark.isoenv(requires=["numpy"])\ndef test_{i}(isoenv):\n    pass\n'
    project = bench.project(
        "row-e",
        {
            "test_plain.py": many("def test_{i}():\n    pass\n", n_bare),
            "test_bare.py": many("def test_{i}(isoenv):\n    pass\n", n_bare),
            "test_plain_few.py": many("def test_{i}():\n    pass\n", n_extras),
            "test_extras.py": many(marked, n_extras, "import pytest\n\n"),
        },
    )
    reuse = bench.project(
        "row-e-reuse",
        {"test_plain.py": TRIVIAL, "test_isoenv.py": "def test_isoenv(isoenv):\n    pass\n"},
    )
    (reuse / "pytest.ini").write_text("[pytest]\nisoenv_requires = pandas\n", encoding="utf-8")
    iso = plugin_args("isoenv")
    layer_cache = ["--isoenv-base=cache", f"--isoenv-cache-dir={bench.root / 'row-e-cache'}"]
    base_cache = ["--isoenv-base=cache", f"--isoenv-cache-dir={bench.root / 'row-e-reuse-cache'}"]

    def session(label: str, where: Path, args: list[str]) -> Callable[[], float | None]:
        return functools.partial(bench.pytest, f"e {label}", where, [*iso, *args])

    overhead: dict[str, Callable[[], float | None]] = {
        "plain": session("plain", project, ["test_plain.py"]),
        "bare": session("bare", project, [*layer_cache, "test_bare.py"]),
        "plain few": session("plain few", project, ["test_plain_few.py"]),
        "extras": session("extras", project, [*layer_cache, "test_extras.py"]),
    }
    start: dict[str, Callable[[], float | None]] = {
        "plain": session("reuse plain", reuse, [*base_cache, "test_plain.py"]),
        "reuse": session("reuse", reuse, [*base_cache, "test_isoenv.py"]),
    }
    bench.warm("e bare (builds the empty base in the cache dir)", overhead["bare"])
    bench.warm("e extras (builds the numpy layer in the cache dir)", overhead["extras"])
    bench.warm("e reuse (builds the pandas base in the cache dir)", start["reuse"])
    samples = bench.measure("row e overhead", overhead)
    # A difference of tens of ms between whole sessions: twice the rounds.
    reuse_samples = bench.measure("row e reuse", start, rounds=2 * bench.repeat)
    plain_per_test = per(median(samples["plain"]), n_bare)
    return [
        Check(
            row="e",
            name="bare test (isoenv fixture, nothing else): overhead per test",
            measured=paired(samples["bare"], samples["plain"], n_bare),
            reference=plain_per_test,
            reference_name="a plain test, per test (whole session / N)",
            unit="ms/test",
            limit=0.002,
            relative=False,
            note=f"N = {n_bare}; base exists (--isoenv-base=cache): its reuse check is spread "
            "over the N",
        ),
        Check(
            row="e",
            name="same-extras test (numpy layer exists, --isoenv-base=cache): overhead per test",
            measured=paired(samples["extras"], samples["plain few"], n_extras),
            reference=per(median(samples["plain few"]), n_extras),
            reference_name="a plain test, per test (whole session / N)",
            unit="ms/test",
            limit=0.003,
            relative=False,
            note=f"N = {n_extras}; the layer's reuse check is spread over the N",
        ),
        Check(
            row="e",
            name="cached base reuse (pandas base, --isoenv-base=cache, 2nd session): added",
            measured=paired(reuse_samples["reuse"], reuse_samples["plain"]),
            reference=median(reuse_samples["plain"]),
            reference_name="the same 1-test session, test without isoenv",
            unit="ms",
            limit=0.150,
            relative=False,
        ),
    ]


def row_f(bench: Bench) -> list[Check]:
    """A session that uses no env, plugin loaded, vs -p no:isoenv."""
    n = 20
    project = bench.project("row-f", {"test_plain.py": many("def test_{i}():\n    pass\n", n)})
    cases: dict[str, Callable[[], float | None]] = {
        "loaded": lambda: bench.pytest(
            "f loaded", project, [*plugin_args("isoenv"), "test_plain.py"]
        ),
        "no:isoenv": lambda: bench.pytest(
            "f no:isoenv", project, ["-p", "no:isoenv", "test_plain.py"]
        ),
    }
    bench.warm("f loaded", cases["loaded"])
    # Ten milliseconds out of a few hundred: three times the rounds.
    samples = bench.measure("row f", cases, rounds=3 * bench.repeat)
    return [
        Check(
            row="f",
            name=f"session using no env ({n} plain tests): plugin loaded vs -p no:isoenv, added",
            measured=paired(samples["loaded"], samples["no:isoenv"]),
            reference=median(samples["no:isoenv"]),
            reference_name="the same session with -p no:isoenv",
            unit="ms",
            limit=0.010,
            relative=False,
            note="issue 11",
        ),
    ]


INSIDE_TEST = """\
@pytest.mark.isoenv(requires=["six"], inside=True)
def test_{i}():
    import six
    assert six.PY3
"""

ACTIVATE_TEST = """\
@pytest.mark.isoenv(requires=["six"])
def test_{i}(isoenv):
    with isoenv.activate():
        import six
    assert six.PY3
"""


def _per_test_against_a_process(
    bench: Bench, row: str, name: str, template: str, note: str
) -> list[Check]:
    """(t(N such tests) - t(N plain tests)) / N against one ``python -m pytest`` process
    running one plain test (what a process per test costs: pytest-isolated's way)."""
    n = bench.size(30, 8)
    project = bench.project(
        f"row-{row}",
        {
            "test_plain.py": many("def test_{i}():\n    import json\n", n),
            "test_one.py": "def test_one():\n    import json\n",
            "test_env.py": many(template, n, "import pytest\n\n"),
        },
    )
    iso = plugin_args("isoenv")
    cache = ["--isoenv-base=cache", f"--isoenv-cache-dir={bench.root / f'row-{row}-cache'}"]
    cases: dict[str, Callable[[], float | None]] = {
        "plain": functools.partial(bench.pytest, f"{row} plain", project, [*iso, "test_plain.py"]),
        "env": functools.partial(
            bench.pytest, f"{row} env", project, [*iso, *cache, "test_env.py"]
        ),
        "process": functools.partial(
            bench.pytest, f"{row} process", project, ["-p", "no:isoenv", "test_one.py"]
        ),
    }
    bench.warm(f"{row} env (builds the six layer in the cache dir)", cases["env"])
    samples = bench.measure(f"row {row}", cases)
    return [
        Check(
            row=row,
            name=name,
            measured=paired(samples["env"], samples["plain"], n),
            reference=median(samples["process"]),
            reference_name="one `python -m pytest` process running one test",
            unit="ms/test",
            limit=1.0,
            relative=True,
            note=f"N = {n}; {note}",
        )
    ]


def row_g(bench: Bench) -> list[Check]:
    """A test run inside its env (``inside=True``) vs a ``python -m pytest`` process per test."""
    return _per_test_against_a_process(
        bench,
        "g",
        "inside=True test (six layer exists): added per test",
        INSIDE_TEST,
        "issue 10: no more than one process per test, the goal well under",
    )


def row_h(bench: Bench) -> list[Check]:
    """A test importing from its env with ``activate()`` vs a process per test."""
    return _per_test_against_a_process(
        bench,
        "h",
        "activate() block importing six: added per test (derived env included)",
        ACTIVATE_TEST,
        "issue 10",
    )


ROWS: dict[str, Callable[[Bench], list[Check]]] = {
    "a": row_a,
    "b": row_b,
    "c": row_c,
    "d": row_d,
    "e": row_e,
    "f": row_f,
    "g": row_g,
    "h": row_h,
}


def checks_table(checks: Sequence[Check]) -> str:
    lines = [
        "| Row | Measured | Value | Reference | Ref. value | Ratio | Target | Result | Load "
        "| Notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for check in checks:
        result = "n/a" if check.passed is None else ("PASS" if check.passed else "**MISS**")
        ratio = show(check.ratio, "x", "")
        lines.append(
            f"| {check.row} | {check.name} | {show(check.measured, check.unit)} "
            f"| {check.reference_name} | {show(check.reference, check.unit, '')} | {ratio} "
            f"| {check.target} | {result} | {check.load:.2f} | {check.note} |"
        )
    return "\n".join(lines)


# -- the report ------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[Bench], Results]] = {
    "overhead": scenario_overhead,
    "one-extra": scenario_one_extra,
    "repeated": scenario_repeated,
    "session-start": scenario_session_start,
    "xdist": scenario_xdist,
}


def machine(tmpdir: Path) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    spec = importlib.util.find_spec("pytest_isoenv")
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "uv": uv_version(),
        "versions": versions,
        "pytest_isoenv": str(Path(spec.origin).parent) if spec and spec.origin else None,
        "checkout": git_state(spec.origin if spec else None),
        "tmpdir": f"{tmpdir} ({filesystem(tmpdir)})",
        "environment": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("UV_") or k in ("PYTHONDONTWRITEBYTECODE", "PIP_FIND_LINKS")
        },
    }


def git_state(origin: str | None) -> str:
    """The commit measured, when pytest-isoenv runs from the checkout holding this script.

    "+dirty" when its pytest_isoenv/ has uncommitted changes.
    """
    here = Path(__file__).resolve().parent.parent
    if origin is None or not Path(origin).resolve().is_relative_to(here):
        return "not this checkout's"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=False,
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "pytest_isoenv"],
            cwd=here,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def load_average() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def uv_version() -> str:
    try:
        from uv import find_uv_bin

        binary = str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        binary = shutil.which("uv") or "uv"
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "not found"
    return done.stdout.strip() or "unknown"


def table(results: Results) -> str:
    lines = [
        "| Scenario | Variant | Median | vs pytest-isoenv | Notes |",
        "|---|---|---|---|---|",
    ]
    for row in results.rows:
        value = show(row.value, row.unit, row.missing or FAILED)
        lines.append(f"| {row.scenario} | {row.variant} | {value} | {row.compare} | {row.note} |")
    lines += ["", "| Target | Goal | Measured | Met |", "|---|---|---|---|"]
    for target in results.targets:
        met = "n/a" if target.met is None else ("yes" if target.met else "**no**")
        lines.append(f"| {target.name} | {target.goal} | {target.measured} | {met} |")
    return "\n".join(lines)


def _subset(
    parser: argparse.ArgumentParser,
    kind: str,
    given: str | None,
    known: Mapping[str, object],
    everything: bool,
) -> list[str]:
    if given is None:
        return list(known) if everything else []
    chosen = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown {kind}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return chosen


def _save(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    log(f"results saved to {path}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run")
    parser.add_argument("--repeat", type=int, help="sessions per variant (default 7, quick 1)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save the results here")
    parser.add_argument(
        "--rows",
        help=f"issue targets to measure, comma-separated subset of: {', '.join(ROWS)} "
        "(default: all, or none when only --scenarios is given)",
    )
    parser.add_argument(
        "--scenarios",
        help=f"comparisons to run, comma-separated subset of: {', '.join(SCENARIOS)} "
        "(default: all, or none when only --rows is given)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--tmpdir",
        type=Path,
        help="where the projects and envs go (default: the system's temporary directory)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    neither = options.rows is None and options.scenarios is None
    rows = _subset(parser, "row", options.rows, ROWS, everything=neither)
    chosen = _subset(parser, "scenario", options.scenarios, SCENARIOS, everything=neither)
    repeat = options.repeat or (1 if options.quick else 7)
    tmpdir = options.tmpdir or Path(tempfile.gettempdir())
    info = machine(tmpdir)
    log(
        f"pytest-isoenv benchmark: {info['cores']} cores, {info['cpu']}, Python {info['python']},"
        f" {info['uv']}; {repeat} round(s){' (quick)' if options.quick else ''}"
    )
    for plugin, module in PLUGINS.items():
        if not installed(plugin):
            log(f"  {module} is not installed: its rows will say {NOT_INSTALLED}")
    log("real wheelhouse (downloaded once, then reused)...")
    wheelhouse = ensure_wheelhouse().path
    log(f"  {wheelhouse}")
    root = Path(tempfile.mkdtemp(prefix="isoenv-bench-", dir=tmpdir))
    results = Results()
    checks: list[Check] = []
    started = time.perf_counter()
    bench = Bench(root, repeat, options.quick, wheelhouse)
    loads = [load_average()]
    if loads[0] > BUSY:
        log(
            f"  the machine is busy (load average {loads[0]:.2f}): timings will be noisy; "
            "run on an idle machine for numbers to publish"
        )
    try:
        for row in rows:
            log(f"row {row} (load average {load_average():.2f})")
            checks += ROWS[row](bench)
            loads.append(load_average())
        for scenario in chosen:
            log(f"scenario {scenario}")
            found = SCENARIOS[scenario](bench)
            loads.append(load_average())
            results.rows += found.rows
            results.targets += found.targets
    finally:
        if options.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(
        f"\nMachine: {info['cores']} cores, {info['cpu']}, Python {info['python']}, "
        f"{info['uv']}, pytest {info['versions']['pytest']}; pytest-isoenv from "
        f"{info['pytest_isoenv']} (checkout {info['checkout']}); temporary files in "
        f"{info['tmpdir']}. "
        f"{repeat} round(s){', quick' if options.quick else ''}; medians. "
        f"Benchmark took {elapsed:.0f} s; 1-minute load average "
        f"{min(loads):.2f}-{max(loads):.2f} (at the start and after each scenario).\n"
    )
    if checks:
        print(
            "Issue targets (each measured against its reference in this run; Load is the "
            "1-minute load average when the row finished):\n"
        )
        print(checks_table(checks))
        print()
    if chosen:
        print(table(results))
    if bench.failures:
        print(f"\n{len(bench.failures)} session(s) failed: {'; '.join(bench.failures)}")
    if options.json:
        data = {
            "machine": info,
            "repeat": repeat,
            "quick": options.quick,
            "seconds": elapsed,
            "rows": [asdict(row) for row in results.rows],
            "targets": [asdict(target) for target in results.targets],
            "checks": [
                {**asdict(c), "ratio": c.ratio, "target": c.target, "passed": c.passed}
                for c in checks
            ],
            "wheelhouse": str(wheelhouse),
            "raw_seconds": bench.raw,
            "failures": bench.failures,
            "load_averages": loads,
        }
        _save(options.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
