"""``rsstab derive --format latex`` (issue 27): long displays are broken into lines that fit the
page, and progress goes to stderr, never into the LaTeX. The PDF itself is compiled, and checked for
lines past the margin, by tests/derive/test_derive.py::test_latex_output_is_a_document_pdflatex_compiles
(where pdflatex exists; it reuses that module's derivations)."""

from __future__ import annotations

import re
import subprocess
import sys

from rsstab.derive.render import DISPLAY_WIDTH, break_lines, display_math, visible_length

#: Results whose displays were too wide (depth: a tuple of words; trajectory: a three-term sum;
#: finite-width: result 9's step 13, 336 pt past the margin) and cheap to derive.
WIDE = ("depth", "trajectory", "finite-width")
DISPLAY = re.compile(r"\\\[(.*?)\\\]|\\begin\{multline\*\}\n(.*?)\n\\end\{multline\*\}", re.S)


def rsstab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rsstab.cli", *args], capture_output=True, text=True, timeout=600)


def _lines(tex: str) -> list[str]:
    """Every printed line of every display in ``tex``."""
    out = []
    for single, multi in DISPLAY.findall(tex):
        out += [single] if single else [ln.removeprefix("{}").removesuffix(r"{}\\") for ln in multi.split("\n")]
    return out


def test_a_long_display_is_broken_into_lines_that_fit() -> None:
    terms = " + ".join(rf"(x_{{{i}}} \cdot x') v_{{{i},i}} \lVert x_{{{i}}}\rVert^{{2}}" for i in range(8))
    tex = rf"\mathbb{{E}}_A[u_i^2] = \eta^{{2}} \gamma_{{r}}^{{4}} \left({terms}\right) - r"
    assert visible_length(tex) > 2 * DISPLAY_WIDTH
    out = display_math(tex)
    assert out.startswith(r"\begin{multline*}") and out.endswith(r"\end{multline*}")
    assert r"\left" not in out and r"\right" not in out and out.count(r"\Bigl(") == out.count(r"\Bigr)") == 1
    lines = out.split("\n")[1:-1]
    assert len(lines) >= 3 and all(ln.endswith(r"{}\\") for ln in lines[:-1])
    assert all(visible_length(ln) <= DISPLAY_WIDTH for ln in lines)
    assert [ln.startswith("{}+") for ln in lines[1:]] == [True] * (len(lines) - 1)  # a cut keeps its operator
    pieces = break_lines(tex)  # nothing lost or reordered
    assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", tex)


def test_a_display_is_never_broken_inside_a_group_or_at_a_sign() -> None:
    assert break_lines(r"x = \frac{a + b + c + d}{e - f - g - h} + \sqrt{p + q + s + t}", width=6) == [
        "x =", r"\frac{a + b + c + d}{e - f - g - h}", r"+ \sqrt{p + q + s + t}"]
    assert break_lines(r"y = -a + (-b) + e^{-c} - d", width=3) == ["y =", "-a", "+ (-b)", "+ e^{-c}", "- d"]
    assert display_math("y = a + b") == r"\[ y = a + b \]"  # short: unchanged


def test_the_derivations_displays_fit_the_line() -> None:
    tex = "".join(rsstab("derive", key, "--format", "latex").stdout for key in WIDE)
    lines = _lines(tex)
    assert len(lines) > 10 and "multline*" in tex
    too_wide = [ln for ln in lines if visible_length(ln) > DISPLAY_WIDTH and len(break_lines(ln)) > 1]
    assert too_wide == []


def test_progress_goes_to_stderr_only() -> None:
    plain = rsstab("derive", "iid", "--format", "latex")
    shown = rsstab("derive", "iid", "--format", "latex", "--progress")
    assert plain.returncode == shown.returncode == 0
    assert plain.stderr == ""  # piped stderr: no progress by default
    assert shown.stdout == plain.stdout and "rsstab derive" not in shown.stdout
    assert shown.stderr.splitlines()[0] == "rsstab derive: [1/1] iid …"
    assert re.fullmatch(r"rsstab derive: 1 result\(s\) derived in \d+\.\d s", shown.stderr.splitlines()[-1])
