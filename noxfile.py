"""Development sessions: ``nox`` runs lint, types and tests (what CI runs)."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["lint", "mypy", "tests", "docs"]

PYTHON = "3"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (asyncio and trio), with the CI Hypothesis profile."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff==0.17.6")  # pinned: a new ruff must not fail CI on its own
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def mypy(session: nox.Session) -> None:
    """mypy --strict over both packages."""
    session.install("-e", ".[test]", "mypy==2.4.1")  # pinned, like ruff
    session.run("mypy", "--strict", "reconcile_core", "reconcile_paradex")


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The ledger crash test at length: 300 SIGKILLs (``RECONCILE_CRASH_KILLS`` overrides)."""
    session.install("-e", ".[test]")
    kills = os.environ.get("RECONCILE_CRASH_KILLS", "300")
    session.run("pytest", "tests/ledger/test_crash.py", *session.posargs, env={"RECONCILE_CRASH_KILLS": kills})


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The chaos end-to-end tests at length: 1000 seeds in-process, 20 over loopback.

    ``CHAOS_SEEDS``, ``CHAOS_START``, ``CHAOS_LOOPBACK_SEEDS`` and ``CHAOS_FILLS``
    override; each failing seed is listed at the end with the command that replays it.
    """
    session.install("-e", ".[test]")
    env = {
        "CHAOS_SEEDS": os.environ.get("CHAOS_SEEDS", "1000"),
        "CHAOS_START": os.environ.get("CHAOS_START", "0"),
        "CHAOS_LOOPBACK_SEEDS": os.environ.get("CHAOS_LOOPBACK_SEEDS", "20"),
        "CHAOS_FILLS": os.environ.get("CHAOS_FILLS", "300"),
    }
    session.run("pytest", "tests/e2e/test_chaos.py", "-q", *session.posargs, env=env)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every ``tests/benchmarks/bench_*.py`` (figures, not tests); posargs go to each script.

    ccxt (the peer in bench_peer) and pyinstrument (for profiling) are
    installed here only, never in the test extra.
    """
    session.install("-e", ".[test]", "ccxt", "pyinstrument")
    for script in sorted(Path("tests/benchmarks").glob("bench_*.py")):
        session.run("python", "-m", f"tests.benchmarks.{script.stem}", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the docs site with mkdocs --strict (warnings are errors)."""
    session.install("-e", ".[docs]")
    site = Path(session.create_tmp()).resolve() / "site"
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "-d", str(site))
