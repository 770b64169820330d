"""Rendering derivations as text, GitHub markdown or LaTeX; the generated report; the proof runner."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rsstab.derive.model import Derivation, DerivationError
from rsstab.derive.results import derivation, derivations
from rsstab.derive.symbols import latex_expr, tex_to_text, text_expr
from rsstab.errors import RsstabError
from rsstab.io import atomic_write

__all__ = ["FORMATS", "render", "run_proof", "write_markdown"]

FORMATS = ("text", "markdown", "latex")

_KIND_TITLES = {"assumption": "Assumption", "computation": "Computation", "result": "Result"}
_PROOF_FILES = {"iid": "iid_forward_variance.py", "first-step": "first_sgd_step.py", "trajectory": "sgd_trajectory.py",
                "backward": "backward_pass.py", "iff": "stability_iff.py", "depth": "depth.py",
                "adam": "adam_sign_descent.py", "reparam": "sgd_reparametrisation.py",
                "finite-width": "finite_width.py", "adam-finite-width": "adam_finite_width.py",
                "adam-epsilon": "adam_epsilon.py", "hyperparameter-tuple": "hyperparameter_tuple.py",
                "expansion-range": "expansion_range.py", "finite-eta": "finite_eta.py"}


#: Unicode that appears in derivation texts → LaTeX (math-mode macros; the text-mode wrapper adds $…$).
_TEX_MATH = {"γ": r"\gamma", "η": r"\eta", "σ": r"\sigma", "α": r"\alpha", "β": r"\beta", "Δ": r"\Delta",
             "Θ": r"\Theta", "π": r"\pi", "ε": r"\epsilon", "ρ": r"\rho", "Σ": r"\Sigma", "χ": r"\chi",
             "×": r"\times", "∈": r"\in", "√": r"\surd", "≤": r"\le", "≥": r"\ge", "≈": r"\approx",
             "→": r"\to", "∞": r"\infty", "‖": r"\|", "·": r"\cdot", "∝": r"\propto", "≪": r"\ll",
             "≫": r"\gg", "−": "-", "±": r"\pm", "∑": r"\sum", "ᵀ": r"^{\top}", "²": "^{2}", "³": "^{3}",
             "⁴": "^{4}", "⁶": "^{6}", "½": r"\tfrac12", "′": "'", "ĝ": r"\hat g", "Ĝ": r"\hat G",
             "⟨": r"\langle", "⟩": r"\rangle", "≠": r"\ne", "∂": r"\partial", "∇": r"\nabla", "λ": r"\lambda",
             "μ": r"\mu", "τ": r"\tau", "δ": r"\delta", "ξ": r"\xi", "ν": r"\nu", "κ": r"\kappa"}
_TEX_TEXT = {"—": "---", "′": "'", "–": "--", "…": r"\ldots{}", "’": "'", "“": "``", "”": "''", "%": r"\%", "&": r"\&",
             "#": r"\#", "_": r"\_"}
_MATH_SPLIT = re.compile(r"(\$[^$]*\$|\\\[.*?\\\])", re.S)
_SYMBOL_RUN = re.compile(r"[γησαβΔΘπερΣχ×∈√≤≥≈→∞‖·∝≪≫−±∑ᵀ²³⁴⁶½ĝĜ⟨⟩≠∂∇λμτδξνκ](?:_[A-Za-z0-9]+)?(?:\^[A-Za-z0-9≥]+)?[²³⁴⁶ᵀ]*"
                         r"|\b[A-Za-z0-9]+\^[A-Za-z0-9]+")


def _latex_math(s: str) -> str:
    """Unicode symbols inside LaTeX math → macros (a space keeps ``\\gamma r`` apart)."""
    return "".join(_TEX_MATH[c] + (" " if _TEX_MATH[c][-1:].isalpha() else "") if c in _TEX_MATH else c
                   for c in s)


def latex_text(s: str) -> str:
    r"""Mixed text (with ``$…$`` and ``\[…\]`` math) → LaTeX that pdflatex accepts: Unicode symbols
    outside math become inline math, ``_ % & #`` are escaped, math keeps its macros.

    >>> print(latex_text("γ_r ∈ Θ(1/√r) — 3 × 3, 50% of $x_i$"))
    $\gamma _r$ $\in $ $\Theta $(1/$\surd $r) --- 3 $\times $ 3, 50\% of $x_i$
    """
    out = []
    for part in _MATH_SPLIT.split(s):
        if part.startswith(("$", "\\[")):
            out.append(_latex_math(part))
            continue
        pieces, last = [], 0
        for m in _SYMBOL_RUN.finditer(part):
            pieces.append("".join(_TEX_TEXT.get(c, c) for c in part[last:m.start()]))
            pieces.append(f"${_latex_math(m.group())}$")
            last = m.end()
        pieces.append("".join(_TEX_TEXT.get(c, c) for c in part[last:]))
        out.append("".join(pieces))
    return "".join(out)


#: ``\emergencystretch`` lets a paragraph with long inline formulas stretch its spaces instead of
#: running a line into the margin (TeX breaks inline math after relations and binary operators).
_LATEX_PREAMBLE = [r"\documentclass[11pt]{article}", r"\usepackage{amsmath,amssymb}",
                   r"\usepackage[margin=2.2cm]{geometry}", r"\setlength{\emergencystretch}{3em}",
                   r"\begin{document}", ""]

#: How many characters of a display fit on one line of the page (11 pt, 2.2 cm margins, inside a
#: list), as counted by :func:`visible_length`: a longer display is broken by :func:`display_math`.
DISPLAY_WIDTH = 64

#: A token of LaTeX math: a command, a script with its group or one character, a brace, a space.
_TOKEN = re.compile(r"\\(?:[A-Za-z]+|.)|[_^](?:\{|\\[A-Za-z]+|.)|[{}]|\s|.")
_SIZERS = {r"\left", r"\right", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr", r"\biggl", r"\biggr"}
_BLANK = {r"\,", r"\ ", r"\;", r"\!", r"\mathrm", r"\text", r"\mathbb", r"\operatorname", r"\displaystyle", "{}"}
#: After these a + or − is a sign, not a binary operator: no break there.
_NO_BREAK_AFTER = {"", "(", "[", "=", ",", "+", "-", r"\cdot", r"\times", r"\Bigl", r"\left"}


def visible_length(tex: str) -> float:
    r"""About how many characters wide ``tex`` (math) prints: a command such as ``\gamma`` is one,
    sizing commands, spacing and braces none, what sits in a sub- or superscript two thirds.

    >>> visible_length(r"\left( x_{0} \cdot x' \right)^{2}")
    7.33
    """
    width = 0.0
    scripts: list[bool] = []  # for each open brace, whether it opened a script
    for m in _TOKEN.finditer(tex):
        tok = m.group()
        small = any(scripts)
        if tok[0] in "_^":
            if tok[1:] == "{":
                scripts.append(True)
            else:
                width += 2 / 3
            continue
        if tok == "{":
            scripts.append(False)
        elif tok == "}":
            if scripts:
                scripts.pop()
        elif not (tok.isspace() or tok in _SIZERS or tok in _BLANK):
            width += 2 / 3 if small else 1.0
    return round(width, 2)


def _break_points(tex: str) -> list[int]:
    """Where a display may break: before a binary + or −, after ``=`` or a comma, outside every
    brace group (a ``\\left``/``\\right`` pair may be cut: :func:`display_math` sizes it by hand)."""
    points, depth, prev = [], 0, ""
    for m in _TOKEN.finditer(tex):
        tok, at = m.group(), m.start()
        if tok == "{" or (tok[0] in "_^" and tok[1:] == "{"):
            depth += 1
        elif tok == "}":
            depth -= 1
        elif depth == 0 and tok in ("+", "-") and prev not in _NO_BREAK_AFTER and not prev.startswith(("_", "^")):
            points.append(at)
        elif depth == 0 and tok in ("=", ","):
            points.append(m.end())
        if not tok.isspace() and tok not in (r"\,", r"\ ", r"\;"):
            prev = tok
    return points


def break_lines(tex: str, width: float = DISPLAY_WIDTH) -> list[str]:
    r"""``tex`` (one display) cut greedily into lines of at most about ``width`` characters
    (:func:`visible_length`) at :func:`_break_points`; one line when it fits. A piece with no
    break point inside stays whole (it is as narrow as the formula allows).

    >>> break_lines(r"y = a_{1} + b_{2} - c_{3} + d", width=8)
    ['y = a_{1} + b_{2}', '- c_{3} + d']
    >>> break_lines(r"e^{-x} = -1 + x_{-1}", width=4)
    ['e^{-x} =', '-1', '+ x_{-1}']
    """
    if visible_length(tex) <= width:
        return [tex]
    lines, start, last = [], 0, 0
    for pos in [*_break_points(tex), len(tex)]:
        if visible_length(tex[start:pos]) > width and last > start:
            lines.append(tex[start:last].strip())
            start = last
        last = pos
    lines.append(tex[start:].strip())
    return [ln for ln in lines if ln]


def display_math(tex: str, width: float = DISPLAY_WIDTH) -> str:
    r"""A display of ``tex``: ``\[ … \]`` when it fits the line, else amsmath's ``multline*``
    broken by :func:`break_lines` (first line flush left, the last flush right), every
    ``\left``/``\right`` made ``\Bigl``/``\Bigr`` (a pair may now span lines) and a ``{}`` beside
    each cut operator so that it keeps its binary spacing.

    >>> print(display_math("x = 1"))
    \[ x = 1 \]
    >>> print(display_math(r"s = \left( a + b + c \right)", width=6))
    \begin{multline*}
    s = \Bigl( a + b{}\\
    {}+ c \Bigr)
    \end{multline*}
    """
    if visible_length(tex) <= width:
        return rf"\[ {tex} \]"
    tex = re.sub(r"\\left(?![A-Za-z])", r"\\Bigl", tex)
    tex = re.sub(r"\\right(?![A-Za-z])", r"\\Bigr", tex)
    lines = break_lines(tex, width)
    out = []
    for i, line in enumerate(lines):
        if i > 0 and line[:1] in "+-":
            line = "{}" + line
        if i < len(lines) - 1:
            line += r"{}\\"
        out.append(line)
    return "\n".join([r"\begin{multline*}", *out, r"\end{multline*}"])


def render(ds: Sequence[Derivation], fmt: str = "text") -> str:
    """Render derivations as ``text`` (terminal), ``markdown`` (GitHub, math in ``$…$``) or ``latex``."""
    if fmt not in FORMATS:
        raise RsstabError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out: list[str] = []
    if fmt == "markdown":
        out += ["# Derivations: why the stable LoRA scale is $1/\\sqrt{r}$ under SGD",
                "", "Generated by `rsstab derive --format markdown` (rsstab.derive.write_markdown); do not edit by hand.",
                "Every identity listed under *Checks* is asserted by the matching script in `proofs/`.", ""]
    elif fmt == "latex":
        out += [*_LATEX_PREAMBLE,
                r"\section*{Derivations: why the stable LoRA scale is $1/\sqrt{r}$ under SGD}", ""]
    for D in ds:
        if fmt == "text":
            head = f"Result {D.number} [{D.key}]: {D.title}"
            out += [head, "=" * len(head), tex_to_text(D.statement), ""]
        elif fmt == "markdown":
            out += [f"## {D.number}. {D.title} (`{D.key}`)", "", D.statement, ""]
        else:
            out += [rf"\subsection*{{{D.number}. {latex_text(D.title)}}}", latex_text(D.statement),
                    r"\begin{enumerate}"]
        for n, s in enumerate(D.steps, 1):
            eq = None
            if s.lhs is not None:
                if fmt == "text":
                    eq = f"{text_expr(s.lhs)} = {text_expr(s.rhs)}" if s.rhs is not None else text_expr(s.lhs)
                else:
                    eq = f"{latex_expr(s.lhs)} = {latex_expr(s.rhs)}" if s.rhs is not None else latex_expr(s.lhs)
            title = _KIND_TITLES[s.kind]
            if fmt == "text":
                out.append(f"  {n}. {title}. {tex_to_text(s.text)}".rstrip())
                if eq:
                    out.append(f"       {eq}")
            elif fmt == "markdown":
                line = f"{n}. **{title}.** {s.text}".rstrip()
                out.append(line + (f"\n   $${eq}$$" if eq else ""))
            else:
                out.append(rf"\item \textbf{{{title}.}} {latex_text(s.text)}" + ("\n" + display_math(_latex_math(eq)) if eq else ""))
        held = sum(c.ok for c in D.checks)
        if fmt == "text":
            out.append(f"  Checks ({held}/{len(D.checks)} hold):")
            out += [f"    [{'ok' if c.ok else 'FAIL'}] {c.statement}" for c in D.checks]
        elif fmt == "markdown":
            summary = (f"<details><summary>Checks: {held}/{len(D.checks)} identities hold "
                       f"(<code>python proofs/{_PROOF_FILES[D.key]}</code>)</summary>")
            out += ["", summary, ""]
            out += [f"- {'✅' if c.ok else '❌'} {c.statement}" for c in D.checks]
            out += ["", "</details>"]
        else:
            out.append(r"\end{enumerate}")
            out.append(rf"\noindent Checks: {held}/{len(D.checks)} identities hold.")
        out.append("")
    if fmt == "latex":
        out += [r"\end{document}"]
    return "\n".join(out).rstrip() + "\n"


def write_markdown(path: str | Path = "reports/derivations.md", keys: Sequence[str] | None = None) -> Path:
    """Render all (or some) derivations as GitHub markdown and write them atomically to ``path``."""
    return atomic_write(path, render(derivations(keys), "markdown"))


def run_proof(key: str, stream_out: TextIO | None = None, stream_err: TextIO | None = None,
              argv: Sequence[str] = ()) -> int:
    """Build one derivation, print its chain, assert every identity; return 0 or 1 (for ``sys.exit``).

    ``argv`` (a script's ``sys.argv[1:]``): ``-h``/``--help`` prints what the script proves and how
    it reports, and returns 0 without running the proof; other arguments are ignored.
    """
    if "-h" in argv or "--help" in argv:
        script = _PROOF_FILES.get(key, f"{key}.py")
        print(f"usage: python proofs/{script} [-h]\n\nProves result {key!r} of `rsstab derive`: prints "
              "each step and asserts every identity in sympy.\nExit codes: 0 every identity holds, "
              "1 one fails (named on stderr).", file=sys.stdout if stream_out is None else stream_out)
        return 0
    out = sys.stdout if stream_out is None else stream_out
    err = sys.stderr if stream_err is None else stream_err
    try:
        D = derivation(key)
    except RsstabError:
        raise
    except Exception as exc:  # noqa: BLE001 - a derivation that cannot be carried out is a failed proof
        print(f"PROOF FAILED: result {key!r}: the derivation itself broke: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}", file=err)
        return 1
    print(render([D], "text"), file=out)
    try:
        D.verify()
    except DerivationError as exc:
        print(f"PROOF FAILED: {exc}", file=err)
        return 1
    print(f"proof of result {D.number} ({key}): all {len(D.checks)} identities hold", file=out)
    return 0
