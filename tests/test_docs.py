"""The documentation holds together: README.md stays a front door (at most 250 lines), every relative link and
#anchor in README.md and docs/*.md resolves, and docs/README.md lists every page. Also what the tests that run the
documentation's commands and examples read: :func:`fenced`."""

import re
from collections import Counter
from pathlib import Path

import pytest
from helpers import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    """README.md and every page under docs/: where the commands and examples that tests run are written."""
    return [README, *sorted(DOCS.glob("*.md"))]


def fenced(pattern: re.Pattern[str]) -> list[tuple[Path, str | tuple[str, ...]]]:
    """Each match of ``pattern`` (a fenced block's regex) in README.md and docs/*.md, with the file it is in."""
    return [(path, match) for path in markdown_files() for match in pattern.findall(path.read_text(encoding="utf-8"))]


def prose(text: str) -> str:
    """``text`` without fenced blocks and inline code, where a ``[x](y)`` or ``# x`` is not a link or heading."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lower case, punctuation but ``-`` and ``_`` dropped, spaces as ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings, a repeated one numbered as GitHub numbers it (``x``, ``x-1``, ...)."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of ``path``'s links that point inside the repository (no scheme such as ``https:``)."""
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [target for target in targets if not re.match(r"[a-zA-Z][\w+.-]*:", target)]


def broken_links(path: Path) -> list[str]:
    """``path``'s relative links whose file does not exist or whose #anchor is no heading of the target file."""
    broken = []
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.name}")
    return broken


def test_the_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move the detail to docs/"


@pytest.mark.parametrize(
    "path", [*markdown_files(), ROOT / "benchmarks" / "README.md"], ids=lambda path: str(path.relative_to(ROOT))
)
def test_every_relative_link_and_anchor_resolves(path):
    assert relative_links(path), f"{path.name} has no relative link: is the link pattern still right?"
    assert broken_links(path) == []


def test_the_docs_index_lists_every_page():
    linked = {target.partition("#")[0] for target in relative_links(DOCS / "README.md")}
    pages = {path.name for path in DOCS.glob("*.md")} - {"README.md"}
    assert pages and pages <= linked, f"docs/README.md does not list {sorted(pages - linked)}"


def test_slugs_are_githubs():
    assert slug("Shapes: `output` vs `h_n`") == "shapes-output-vs-h_n"
    assert slug("Failures, resuming and reproducibility") == "failures-resuming-and-reproducibility"
    assert slug("GPUs and [many](x.md) machines") == "gpus-and-many-machines"


def test_a_broken_link_or_anchor_is_found(tmp_path):
    """The checker itself: a missing file, a missing anchor, a repeated heading's second anchor; code is no link."""
    (tmp_path / "other.md").write_text("# Title\n\n## Part\n\n## Part\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#part-1) [self](#page) [web](https://example.com/x.md)\n"
        "[gone](missing.md) [bad](other.md#part-2) `[code](missing.md)`\n\n```text\n[fenced](missing.md)\n```\n",
        encoding="utf-8",
    )
    assert [line.split(":")[0] for line in broken_links(page)] == ["missing.md", "other.md#part-2"]
