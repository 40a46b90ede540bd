"""The README starts with exactly two commands, and .ci/run runs the second one verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```bash\n") + len("```bash\n")
    return text[start : text.index("```", start)].strip().splitlines()


def test_readme_starts_with_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    assert lines[2] == "```bash", "the commands come first"
    demo, tests = _first_block()
    assert "demo" in demo
    assert "nox" in tests


def test_ci_runs_the_readme_test_command() -> None:
    _, tests = _first_block()
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in script
