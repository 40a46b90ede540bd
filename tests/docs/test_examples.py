"""Every Python example in the docs is executed by some test, and every page is in the site's navigation.

The tests that run the examples live beside this one, one module per page;
``docs/runtime.md``'s example is run by ``tests/runtime/test_docs_example.py``.
This module makes sure no example escapes them: a new Python block on a
page fails here until a test runs it (then update ``EXECUTED``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ._blocks import DOCS, README, python_blocks

#: Page -> how many Python blocks it has, all executed by the named test module.
EXECUTED = {
    "README.md": (1, "tests/docs/test_readme.py"),
    "docs/tutorial.md": (1, "tests/docs/test_tutorial.py"),
    "docs/paradex.md": (3, "tests/docs/test_paradex_guide.py"),
    "docs/plugins.md": (6, "tests/docs/test_plugin_guide.py"),
    "docs/runtime.md": (1, "tests/runtime/test_docs_example.py"),
}
ROOT = DOCS.parent


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_every_python_example_is_accounted_for() -> None:
    found = {}
    for path in [README, *_pages()]:
        count = len(python_blocks(path))
        if count:
            found[path.relative_to(ROOT).as_posix()] = count
    assert found == {page: count for page, (count, _) in EXECUTED.items()}
    for _, test in EXECUTED.values():
        assert (ROOT / test).is_file(), test


def test_every_page_is_in_the_navigation_once() -> None:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml names Python callables with !!python/name: tags; they do not matter here.
    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda _loader, _suffix, _node: None)
    config = yaml.load((DOCS / "mkdocs.yml").read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass
    nav = [next(iter(entry.values())) for entry in config["nav"]]
    assert sorted(nav) == sorted(path.name for path in _pages())
    assert nav[:3] == ["index.md", "concepts.md", "tutorial.md"], "concepts first, then the tutorial"
