"""The README as a front door: short, and every relative link in it leads to a file.

The pages under docs/ are checked by ``mkdocs build --strict`` (./run_local.sh test);
the README is not part of that site, so its links are checked here.
"""

import pathlib
import re

import pytest

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 250

# [text](target) and ![alt](target); a target ends at whitespace or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def broken_links(markdown: str, base: pathlib.Path) -> list[str]:
    """The relative link targets in ``markdown`` (anchors stripped) with no file or
    folder under ``base``; links with a scheme, protocol-relative ones and in-page
    anchors are not checked.  Links inside fenced code blocks are not links."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    missing = []
    for target in _LINK.findall(text):
        if _EXTERNAL.match(target):
            continue
        path = target.split("#", 1)[0]
        if not (base / path).exists():
            missing.append(target)
    return missing


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[ok](README.md) and [anchor](README.md#the-pipeline)", []),
        ("[web](https://beam.apache.org) [here](#datasets) [mail](mailto:a@b)", []),
        (
            "[gone](docs/no-such-page.md) ![img](docs/none.png)",
            ["docs/no-such-page.md", "docs/none.png"],
        ),
        ("```\n[in code](docs/no-such-page.md)\n```\n", []),
    ],
)
def test_broken_links_finds_exactly_the_missing_targets(markdown, expected):
    assert broken_links(markdown, ROOT) == expected


def test_every_relative_link_in_the_readme_leads_to_a_file():
    readme = README.read_text()
    assert _LINK.search(readme), "no links found: the pattern no longer matches"
    assert broken_links(readme, README.parent) == []


def test_the_readme_links_every_docs_page():
    linked = {pathlib.PurePosixPath(t.split("#", 1)[0]) for t in _LINK.findall(README.read_text())}
    pages = {pathlib.PurePosixPath("docs", p.name) for p in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set()


def test_the_readme_is_a_few_screens():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move detail to docs/"
