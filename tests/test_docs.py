"""The user documentation is tested: docs/guide.md runs, docs/api.md covers the public API.

Every fenced code block of docs/guide.md is a doctest (``>>>`` examples with
their output), run top to bottom in one namespace, as a reader would paste
them.  Fence lines are blanked before parsing, so a closing fence ends an
example's expected output.  A block preceded by ``<!-- requires: cyipopt -->``
is dropped when cyipopt is not installed.  The C cache, temporary files and
the working directory all point into pytest's ``tmp_path``.
"""

from __future__ import annotations

import doctest
import importlib.util
import re
import tempfile
from pathlib import Path

import pytest

import symgraph as sg

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"
API = ROOT / "docs" / "api.md"
HAVE_CYIPOPT = importlib.util.find_spec("cyipopt") is not None
FENCE = re.compile(r"^[ \t]*```.*$", re.M)
REQUIRES_IPOPT = re.compile(r"<!-- requires: cyipopt -->\n```.*?\n```[^\n]*$", re.S | re.M)
BLOCK = re.compile(r"^[ \t]*```(\S*)\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)


def _blank(match: re.Match) -> str:
    return "\n" * match.group(0).count("\n")  # keep line numbers of later examples


class MarkdownParser(doctest.DocTestParser):
    """Doctest examples of a Markdown file (see the module docstring)."""

    def parse(self, string: str, name: str = "<string>"):
        if not HAVE_CYIPOPT:
            string = REQUIRES_IPOPT.sub(_blank, string)
        return super().parse(FENCE.sub("", string), name)


def run_markdown(path: Path) -> tuple[doctest.TestResults, str]:
    """Run the doctests of ``path``; return the results and the failure report."""
    text = path.read_text(encoding="utf-8")
    test = MarkdownParser().get_doctest(text, {"__name__": "guide"}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=True)
    return runner.summarize(verbose=False), "".join(report)


def test_guide_examples_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    results, report = run_markdown(GUIDE)
    assert results.attempted > 100, f"only {results.attempted} examples found in {GUIDE.name}"
    assert results.failed == 0, report


def test_every_guide_code_block_is_a_doctest():
    for lang, body in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        assert lang in ("python", "pycon"), f"code block of language {lang!r} in guide.md:\n{body[:200]}"
        assert body.lstrip().startswith(">>>"), f"code block without >>> examples in guide.md:\n{body[:200]}"


def test_markdown_parser_ends_output_at_the_fence():
    text = "```python\n>>> 1 + 1\n2\n```\nprose\n```python\n>>> print('a')\na\n```\n"
    examples = MarkdownParser().get_examples(text)
    assert [(e.source, e.want) for e in examples] == [("1 + 1\n", "2\n"), ("print('a')\n", "a\n")]


@pytest.mark.parametrize("name", sg.__all__)
def test_api_reference_lists_every_public_name(name):
    text = API.read_text(encoding="utf-8")
    assert re.search(rf"`(sg\.)?{re.escape(name)}[`(]", text), f"sg.{name} is missing from docs/api.md"


@pytest.mark.parametrize("path", [GUIDE, API], ids=lambda p: p.name)
def test_docs_name_only_real_attributes(path):
    """Every ``sg.NAME`` the docs mention exists (no invented API)."""
    names = set(re.findall(r"\bsg\.([A-Za-z_][A-Za-z0-9_]*)", path.read_text(encoding="utf-8")))
    assert names, f"no sg.NAME in {path.name}"
    missing = sorted(n for n in names if not hasattr(sg, n))
    assert not missing, f"{path.name} mentions sg.{', sg.'.join(missing)}, which do not exist"


def test_readme_links_the_documentation():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("docs/guide.md", "docs/api.md", "docs/rules.md", "docs/design.md"):
        assert f"({page})" in readme, f"README.md does not link {page}"
