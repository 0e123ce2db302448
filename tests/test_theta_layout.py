"""θ's column layout lives in :mod:`mmstn.theta` alone (issue 12).

Everywhere else θ's blocks are picked with the named slices (``THETA_R``, ``THETA_T``, ``THETA_LOGS``,
``THETA_ALPHA``), :func:`~mmstn.theta.split_theta` / :func:`~mmstn.theta.make_theta` or :class:`~mmstn.theta.Theta`,
never with literal column numbers such as ``theta[3:5]``, ``th[5]``, ``theta[:, 6:]`` or ``theta[..., :3]``.
This test reads the source (no import) of the package, the tests and the benchmarks and lists every line that
still indexes a θ-like name with a literal. Left out: ``mmstn/theta.py`` (it defines the layout),
``tests/test_theta.py`` (it pins the layout, so it spells the columns out) and this file (its examples).

What counts as literal column indexing of a θ-like name (``th``, ``theta``, ``thetas``, ``theta0``,
``theta_hat``, ``true_theta``, ``res.theta``, ...), subscript by subscript along a chain ``x[..][..]``:

* a slice with an integer bound: ``[3:5]``, ``[:3]``, ``[6:]``, ``[:, 6 : 6 + d]``, ``[:, None, 3:5]``;
* an integer after a comma: ``[:, 5]``, ``[..., 1]``, ``[0, 5]``;
* a lone non-zero integer: ``[5]``, ``[3]`` (``[0]`` is allowed: it is the batch row of a (B, 6 + D) θ).

Once a subscript names a block (contains ``THETA_``), what follows indexes inside that block and is allowed,
e.g. ``theta[:, THETA_ALPHA][:, :d]`` or ``th[..., THETA_R][..., 1:]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: a θ-like name (also as an attribute, ``res.theta``) directly followed by a subscript
THETA_NAME = re.compile(r"(?<![\w])(?:[A-Za-z_]\w*_)?(?:theta|th)(?:s|\d+|_\w+)?(?=\s*\[)")
#: one subscript without nested brackets
SUBSCRIPT = re.compile(r"\s*\[([^\[\]]*)\]")
#: the three literal spellings (module docstring)
LITERAL = (
    re.compile(r"(?<![\w.])\d+\s*:|:\s*-?\d+(?![\w.])"),  # a slice bound
    re.compile(r",\s*-?\d+\s*$"),  # an integer after a comma
    re.compile(r"^\s*-?[1-9]\d*\s*$"),  # a lone non-zero integer
)


def offending(line: str) -> list[str]:
    """The literal θ column subscripts in one line of source (empty when there are none)."""
    found = []
    for m in THETA_NAME.finditer(line):
        pos = m.end()
        while (s := SUBSCRIPT.match(line, pos)) is not None:
            inner = s.group(1)
            if "THETA_" in inner:
                break
            if any(p.search(inner) for p in LITERAL):
                found.append(line[m.start() : s.end()].strip())
                break
            pos = s.end()
    return found


#: the files that may spell θ's columns out (module docstring)
EXEMPT = frozenset({"mmstn/theta.py", "tests/test_theta.py", "tests/test_theta_layout.py"})


def _sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if p.relative_to(ROOT).as_posix() not in EXEMPT)


@pytest.mark.parametrize(
    "line",
    [
        "theta[3:5] = 1", "x = th[5]", "prior_loss(theta[:, 6:])", "theta[6:16] = a", "r = theta[..., :3]",
        "s = theta[:, 5]", "s = th[..., 5:6]", "r = th[:3]", "theta0[:, 3]", "thetas[:, 6 : 6 + d]",
        "res.theta[:, :3]", "true_theta[3:5]", "theta[:, None, 3:5]", "theta[None][:, 6:]", "theta_hat[0, 5]",
    ],
)
def test_pattern_catches_literal_indexing(line: str) -> None:
    assert offending(line), line


@pytest.mark.parametrize(
    "line",
    [
        "theta[:, THETA_T] = t", "th[THETA_LOGS.start]", "theta[:, THETA_ALPHA][:, :d]", "res.theta[0]",
        "th[..., THETA_R][..., 1:]", "theta[i : i + 1]", "theta[None, THETA_R]", "with_theta(x)[3]",
        "width[3:5]", "math[5]", "theta_size(5)", "out[:, 6:]", "theta[:, : THETA_ALPHA.start]",
    ],
)
def test_pattern_allows_named_indexing(line: str) -> None:
    assert not offending(line), line


def test_exempt_files_exist() -> None:
    # an exemption of a file that was renamed or removed is stale: drop it rather than let it linger
    assert all((ROOT / rel).is_file() for rel in EXEMPT), [rel for rel in EXEMPT if not (ROOT / rel).is_file()]


@pytest.mark.parametrize("folder", ["mmstn", "tests", "benchmarks"])
def test_no_literal_theta_columns_outside_theta_module(folder: str) -> None:
    bad = []
    for path in _sources(folder):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            bad += [f"{path.relative_to(ROOT)}:{n}: {hit}    ({line.strip()})" for hit in offending(line)]
    assert not bad, (
        "θ columns indexed with literal numbers; use mmstn.theta's THETA_R/THETA_T/THETA_LOGS/THETA_ALPHA, "
        "split_theta or make_theta:\n" + "\n".join(bad)
    )
