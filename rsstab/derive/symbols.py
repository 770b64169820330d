"""The shared sympy symbols of the derivations and their notation (plain text and LaTeX).

Contraction symbols (``x·x′``, ``‖x‖²``, ``v₀[i]``) are created on demand and registered, so that the
engine can expand them at concrete sizes and tests can give them numeric values.

>>> dot("xp", "x"), component("v0")
((x·x′), v₀[i])
>>> text_expr(gamma**2 * r)
'γ_r^2·r'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sympy as sp

__all__ = [
    "CONTRACTIONS",
    "IID_VARIANCES",
    "INIT_VARIANCES",
    "LATEX_NAMES",
    "P",
    "component",
    "contraction",
    "d",
    "d_out",
    "dot",
    "eta",
    "gamma",
    "latex_expr",
    "lhs",
    "named",
    "r",
    "sigma_A",
    "sigma_B",
    "sigma_x",
    "tex_to_text",
    "text_expr",
    "vec_latex",
    "vec_text",
]

r = sp.Symbol("r", positive=True, integer=True)
d = sp.Symbol("d", positive=True, integer=True)
d_out = sp.Symbol("d_out", positive=True, integer=True)
gamma = sp.Symbol("gamma_r", positive=True)
eta = sp.Symbol("eta", positive=True)
sigma_A, sigma_B, sigma_x = (sp.Symbol(f"sigma_{n}", positive=True) for n in "ABx")
#: The exponent of a power-law scale γ_r = r^p.
P = sp.Symbol("p", real=True)

#: Variances of the random tensors in the iid route (B, A, x all independent, zero mean).
IID_VARIANCES: dict[str, sp.Expr] = {"B": sigma_B**2, "A": sigma_A**2, "x": sigma_x**2}
#: At initialisation only A is random (B = 0; inputs and output gradients are given vectors).
INIT_VARIANCES: dict[str, sp.Expr] = {"A": sigma_A**2}

#: LaTeX names of symbols whose names are not LaTeX.
LATEX_NAMES: dict[sp.Symbol, str] = {}
#: Each contraction symbol → (kind, vectors): ``dot``, ``component`` or ``sum``.
CONTRACTIONS: dict[sp.Symbol, tuple[str, tuple[str, ...]]] = {}
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def named(name: str, latex: str, **assumptions: bool) -> sp.Symbol:
    """A symbol displayed as ``name`` in text and ``latex`` in LaTeX."""
    s = sp.Symbol(name, **assumptions)
    LATEX_NAMES[s] = latex
    return s


def lhs(text: str, latex: str) -> sp.Symbol:
    """The left-hand side of a displayed step: a plain symbol with a text and a LaTeX name."""
    return named(text, latex)


def vec_text(name: str) -> str:
    """Display name of a deterministic vector: ``xp`` → x′, ``v0`` → v₀."""
    return "x′" if name == "xp" else name.translate(_SUB)


def vec_latex(name: str) -> str:
    """LaTeX name of a deterministic vector: ``xp`` → x', ``v0`` → v_{0}."""
    if name == "xp":
        return "x'"
    m = re.fullmatch(r"([a-z]+)(\d*)", name)
    base, sub = (m.group(1), m.group(2)) if m else (name, "")
    return f"{base}_{{{sub}}}" if sub else base


def dot(u: str, w: str) -> sp.Symbol:
    """The contraction Σ_k u_k w_k of two deterministic vectors, as one symbol."""
    u, w = sorted((u, w))
    if u == w:
        s = named(f"‖{vec_text(u)}‖²", rf"\lVert {vec_latex(u)}\rVert^{{2}}", positive=True)
    else:
        s = named(f"({vec_text(u)}·{vec_text(w)})", rf"({vec_latex(u)} \cdot {vec_latex(w)})", real=True)
    CONTRACTIONS[s] = ("dot", (u, w))
    return s


def component(u: str) -> sp.Symbol:
    """Entry i of a deterministic vector u at the fixed output index i."""
    lat = vec_latex(u)
    lat = lat[:-1] + ",i}" if lat.endswith("}") else lat + "_{i}"
    s = named(f"{vec_text(u)}[i]", lat, real=True)
    CONTRACTIONS[s] = ("component", (u,))
    return s


def contraction(vectors: Sequence[str]) -> sp.Symbol:
    """Σ_k Π_u u_k for one, three or more vectors (never needed by the results, kept general)."""
    vs = tuple(sorted(vectors))
    s = named("Σ(" + "".join(vec_text(v) for v in vs) + ")",
              r"\sum_k " + " ".join(f"{vec_latex(v)}_k" for v in vs), real=True)
    CONTRACTIONS[s] = ("sum", vs)
    return s


# --------------------------------------------------------------------------------------------------
# Notation: sympy expressions and the LaTeX of the step sentences as text or LaTeX
# --------------------------------------------------------------------------------------------------

_GREEK = {"gamma_r": "γ_r", "eta": "η", "sigma_A": "σ_A", "sigma_B": "σ_B", "sigma_x": "σ_x", "pi": "π",
          "eta_Bt": "η_B̃", "beta_1": "β₁", "beta_2": "β₂", "epsilon": "ε", "oo": "∞"}
_TEX_TEXT = [(r"^\top", "ᵀ"), (r"^{\top}", "ᵀ"), (r"\top", "ᵀ"), (r"\mathbb{E}", "E"), (r"\mathrm{Var}", "Var"), (r"\mathrm{sign}", "sign"), (r"\mathrm{mean}", "mean"),
             (r"\gamma", "γ"), (r"\sigma", "σ"), (r"\eta", "η"), (r"\beta", "β"), (r"\Theta", "Θ"),
             (r"\delta", "δ"), (r"\Delta", "Δ"), (r"\alpha", "α"), (r"\epsilon", "ε"), (r"\ell", "ℓ"),
             (r"\sum", "Σ"), (r"\cdots", "⋯"), (r"\cdot", "·"), (r"\times", "×"), (r"\to", "→"), (r"\infty", "∞"),
             (r"\le", "≤"), (r"\ge", "≥"), (r"\in", "∈"), (r"\partial", "∂"), (r"\lVert", "‖"), (r"\rVert", "‖"),
             (r"\Rightarrow", "⇒"), (r"\pm", "±"), (r"\log", "log"), (r"\textstyle", ""), (r"\tilde B", "B̃"),
             (r"\mathbb{R}", "ℝ"), (r"\sqrt r", "√r"), (r"\,", " "), (r"\nabla", "∇"), (r"\hat m", "m̂"),
             (r"\sqrt{\hat v}", "√v̂"), (r"\max", "max"),
             (r"\ ", " "), ("^2", "²"), ("^3", "³"), ("^4", "⁴"), (r"\text", ""), (r"\frac", "")]
# The finite-width results (9, 10) use a few more; they go first so that e.g. \sqrt{2/\pi} wins over \pi.
_TEX_TEXT[:0] = [(r"\sqrt{\pi/2}", "√(π/2)"), (r"\frac{2}{\pi}", "(2/π)"), (r"\frac{1}{b}", "(1/b)"), (r"\propto", "∝"), (r"\langle", "⟨"),
                 (r"\rangle", "⟩"), (r"\sim", "~"), (r"\sqrt{rd}", "√(rd)"), (r"\mathrm{Cov}", "Cov"),
                 (r"\mathrm{back}", "back"), (r"\sqrt{2/\pi}", "√(2/π)"), (r"\hat g", "ĝ"), (r"\hat G", "Ĝ"), (r"\mathrm{eff}", "eff"),
                 (r"\mathrm{tr}", "tr"), (r"\arcsin", "arcsin"), (r"\arccos", "arccos"), (r"\pi", "π"),
                 (r"\ll", "≪"), (r"\gg", "≫"), (r"\rho", "ρ"), (r"\theta", "θ"), (r"\varphi", "φ"),
                 (r"\Sigma", "Σ"), (r"\approx", "≈"), (r"\perp", "⟂"), (r"\sqrt d", "√d"),
                 (r"\kappa", "κ"), (r"\lVert{}", "‖")]


def tex_to_text(s: str) -> str:
    r"""Turn the small LaTeX vocabulary of the step sentences into readable Unicode text.

    >>> tex_to_text(r"$\gamma_r \in \Theta(1/\sqrt r)$")
    'γ_r ∈ Θ(1/√r)'
    """
    for a, b in _TEX_TEXT:
        s = s.replace(a, b)
    s = re.sub(r"\^\{([^{}]*)\}", lambda m: "^" + (m.group(1) if len(m.group(1)) == 1 else f"({m.group(1)})"), s)
    s = s.replace("$", "").replace("{", "").replace("}", "").replace("\\", "")
    return re.sub(r"  +", " ", s)


def text_expr(e: sp.Expr | str) -> str:
    """A sympy expression (or matrix) as plain text with Greek letters; strings pass through."""
    if isinstance(e, str):
        return e
    if isinstance(e, sp.MatrixBase):
        return "[" + "; ".join(", ".join(text_expr(x) for x in e.row(i)) for i in range(e.rows)) + "]"
    s = sp.sstr(e).replace("**", "^").replace("*", "·")
    return re.sub(r"\b[A-Za-z_][A-Za-z_0-9]*\b", lambda m: _GREEK.get(m.group(0), m.group(0)), s)


def latex_expr(e: sp.Expr | str) -> str:
    """A sympy expression as LaTeX, with the registered LaTeX names; strings pass through."""
    if isinstance(e, str):
        return e
    return sp.latex(e, symbol_names=LATEX_NAMES, mat_delim="(")
