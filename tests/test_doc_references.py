"""The repository documents itself: every reference to a Markdown file (a path ending in .md) or to a path
under `docs/` names a file that exists in this repository.

Scanned: docs/*.md and README.md (whole text); the comments and docstrings of the Python files under
node/, tests/, scripts/, molecule/, deploy/ and benchmarks/; the whole text of the other files there
(shell, YAML, Jinja templates) and of Makefile, Vagrantfile, .ci/run, pyproject.toml and the inventories.
A reference resolves against the repository root or against the directory of the file that makes it (a
bare file name in a page of docs/ names a page beside it); it must stay inside the repository. URLs and
glob patterns are skipped.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CODE_DIRS = ("node", "tests", "scripts", "molecule", "deploy", "benchmarks", "inventory", "inventory-vagrant")
TOP_LEVEL_FILES = ("README.md", "Makefile", "Vagrantfile", ".ci/run", "pyproject.toml")
SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
TEXT_SUFFIXES = frozenset({".sh", ".yml", ".yaml", ".j2", ".toml", ".cfg", ".ini", ".txt", ".md", ""})

# A path ending in .md, or any path under docs/. Characters of a path only; the lookbehind keeps a path
# from starting in the middle of a word or a URL.
_REFERENCE = re.compile(
    r"(?<![\w./:-])((?:\.{1,2}/)?(?:[\w.-]+/)*[\w-][\w.-]*\.md\b|(?:\.\./)*docs/(?:[\w.-]+/?)*)"
)


def references(text: str) -> Iterator[str]:
    """Every file reference in `text` that the check cares about, as written (trailing dots dropped)."""
    for match in _REFERENCE.finditer(text):
        start, end = match.span(1)
        if text[end : end + 1] == "*" or text[max(0, start - 1) : start] == "*":
            continue  # a glob such as docs/*.md names no single file
        if re.search(r"[a-z][a-z0-9+.-]*://\S*$", text[max(0, start - 200) : start]):
            continue  # part of a URL
        yield match.group(1).rstrip(".")


def python_comments_and_docstrings(source: str) -> str:
    """The comments and docstrings of a Python module, one per line: what a reader takes for docs."""
    parts = [
        token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                parts.append(docstring)
    return "\n".join(parts)


def scanned_files() -> Iterator[Path]:
    yield from sorted((REPO / "docs").glob("*.md"))
    for name in TOP_LEVEL_FILES:
        if (REPO / name).is_file():
            yield REPO / name
    for directory in CODE_DIRS:
        for path in sorted((REPO / directory).rglob("*")):
            if not path.is_file() or SKIPPED_PARTS.intersection(path.parts):
                continue
            if path.suffix == ".py" or path.suffix in TEXT_SUFFIXES:
                yield path


def scanned_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return python_comments_and_docstrings(text) if path.suffix == ".py" else text


def resolves(reference: str, referrer: Path) -> bool:
    """True when `reference` names an existing file or directory of the repository."""
    if reference.startswith("/"):
        return False  # outside the repository (or at least not portable with it)
    for base in (REPO, referrer.parent):
        candidate = (base / reference).resolve()
        if candidate.is_relative_to(REPO) and candidate.exists():
            return True
    return False


def broken_references(path: Path, text: str) -> list[str]:
    return sorted({ref for ref in references(text) if not resolves(ref, path)})


def test_every_referenced_doc_exists() -> None:
    broken = []
    for path in scanned_files():
        for reference in broken_references(path, scanned_text(path)):
            broken.append(f"{path.relative_to(REPO)}: {reference}")
    assert not broken, "references to files that are not in the repository:\n" + "\n".join(broken)


def test_the_scan_covers_docs_readme_and_code() -> None:
    scanned = {path.relative_to(REPO).as_posix() for path in scanned_files()}
    for expected in (
        "README.md",
        "docs/deploy.md",
        "node/runtime/config.py",
        "node/sim/invariants.py",
        "scripts/lib.sh",
        "molecule/base.yml",
        "tests/core/test_purity.py",
    ):
        assert expected in scanned


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The kinds of reference this check exists for: design notes that live outside the repository.
        ('"""The contract is in docs/' + 'ARCHITECTURE.md, "Config"."""', ["docs/" + "ARCHITECTURE.md"]),
        ("# the capability set of " + "HOSTLAB.md (--privileged fails)", ["HOSTLAB" + ".md"]),
        ("Safety rules (" + "ARCHITECTURE.md, " + "STYLE.md)", ["ARCHITECTURE.md", "STYLE.md"]),
        ("see docs/" + "nowhere.md.", ["docs/nowhere.md"]),
        ("see docs/missing-dir/", ["docs/missing-dir/"]),
        # Existing files and directories pass, also relative to the referring file (docs/benchmarks.md).
        ("see `docs/algorithms.md`, [deploy](docs/deploy.md), `docs/`", []),
        ("Measured numbers are in `benchmarks.md`.", []),
        # Not file references: URLs and globs.
        ("https://example.org/some/README-x.md and http://x/docs/y", []),
        ("every docs/*.md and *.md file", []),
    ],
)
def test_reference_detection(text: str, expected: list[str]) -> None:
    assert broken_references(REPO / "docs" / "example.md", text) == expected


def test_python_files_are_judged_by_their_comments_and_docstrings() -> None:
    source = (
        '"""Module docstring: see ' + 'GONE.md."""\n'
        "x = 'not-a-doc.md'  # a comment naming " + "ALSO-GONE.md\n"
        "def f() -> None:\n"
        '    """Function docstring: ' + 'THIRD.md."""\n'
    )
    text = python_comments_and_docstrings(source)
    assert broken_references(REPO / "node" / "x.py", text) == ["ALSO-GONE.md", "GONE.md", "THIRD.md"]
