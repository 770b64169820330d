"""A held-out set of classical limits at r → +∞ with known answers, for the asymptotics engine.

Each case is γ_r as text, what γ_r itself does (``"0"``: → 0, ``"1"``: Θ(1), ``"oo"``: → ∞) and
where it comes from: textbook exercises (Demidovich), Gruntz's thesis, and regression cases from
sympy's limit test suite, rewritten in r and negated where the limit is negative so that γ_r is
positive for large r. Used by tests/asymptotics/test_classical_limits.py and benchmarks/classical_limits.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsstab.asymptotics import ZERO, Growth

__all__ = ["CASES", "Case", "verdict"]


@dataclass(frozen=True)
class Case:
    text: str
    expected: str  # "0", "1" or "oo": γ_r → 0, Θ(1), → ∞
    source: str
    order: str = ""  # the exact growth, where the case pins it down
    #: why the engine may honestly answer "indeterminate" here (empty: it must be right)
    hard: str = ""
    #: takes seconds (tests/asymptotics/test_classical_limits.py runs it only with ``-m slow``)
    slow: bool = False


CASES: tuple[Case, ...] = (
    # Θ(1)
    Case("(2**(r+1) + 3**(r+1))/(2**r + 3**r)", "1", "Demidovich 175"),
    Case("(r+1)*(r+2)*(r+3)/r**3", "1", "Demidovich 172"),
    Case("(2*r-3)*(3*r+5)*(4*r-6)/(3*r**3+r-1)", "1", "Demidovich, example 1"),
    Case("r/(r**3+10)**(1/3)", "1", "Demidovich, example 2"),
    Case("(2*r**2-3*r-4)/sqrt(r**4+1)", "1", "Demidovich 186"),
    Case("sqrt(r)/sqrt(r+sqrt(r+sqrt(r)))", "1", "Demidovich 190"),
    Case("r - sqrt(r**2-5*r+6)", "1", "Demidovich 213"),
    Case("r*(sqrt(r**2+1)-r)", "1", "Demidovich 214"),
    Case("log(1+exp(r))/r", "1", "Demidovich 267b"),
    Case("((r-1)/(r+1))**r", "1", "Demidovich, example 9"),
    Case("r*sin(pi/r)", "1", "Demidovich 220"),
    Case("(1+3/r)**r", "1", "sympy test_limits: (1 + x/n)**n"),
    Case("(2+6*r)**r/(6*r)**r", "1", "sympy test_limits"),
    Case("r**1000/((r+1)**1000+exp(-r))", "1", "sympy test_limits"),
    Case("atan(r)+sqrt(r+1)-sqrt(r)", "1", "sympy test_limits"),
    Case("(1+1/(r**2+cos(r)))**(r**2+r)", "1", "sympy test_limits"),
    Case("(1/(log(r)**log(r)))**(1/r)", "1", "sympy test_limits"),
    Case("(3**r+5**r)**(1/r)", "1", "Gruntz"),
    Case("(2+cos(r))**(1/r)", "1", "sympy test_limits (base in [1, 3])", "Θ(1)"),
    Case("(sin(r)+10)**(1/r)", "1", "sympy test_limits"),
    Case("(2*exp(3*r)/(exp(2*r)+1))**(1/r)", "1", "sympy test_limits"),
    Case("sqrt(1+4**(1+r))/2**r", "1", "sympy test_limits, issue 19739", "Θ(1)"),
    Case("-(-exp(r)+exp(r*exp(-r)/(exp(-r)+exp(-2*r**2/(1+r)))))/r", "1", "Gruntz 8.11", "Θ(1)"),
    Case("(2**r*(2+(2+r-2*2**r)/2**r)/(1+r))**(1+r)", "1", "sympy test_limits, issue 15202", "Θ(1)"),
    Case("r**(2**r*3**(-r))", "1", "sympy test_limits"),
    Case("(r+cos(r))/r", "1", "sympy test_limits"),
    Case("exp(r)*(exp(1/r) - exp(1/r - exp(-r)))", "1", "Gruntz 8.1"),
    Case("exp(exp(r))/exp(exp(r - exp(-exp(exp(r)))))", "1", "Gruntz 8.8"),
    Case("((r**(r+1) + (r+1)**r)/r**(r+1))**r", "1", "sympy test_limits"),
    Case("r**3*((r+1)/r)**r/((r+1)*(r+2)*(r+3))", "1", "sympy test_limits"),
    Case("3**r*3**(-r-1)*(r+1)**2/r**2", "1", "sympy test_limits"),
    Case("27**(log(r,3))/r**3", "1", "sympy test_limits"),
    Case("exp(r*exp(-r)/(exp(-r)+exp(-2*r**2/(r+1))))/exp(r)", "1", "Gruntz 8.17"),
    Case("(exp(4*r*exp(-r)/(1/exp(r)+1/exp(2*r**2/(r+1)))) - exp(r))/exp(r)**4", "1", "Gruntz 8.16"),
    Case("(r+1)**(1/log(r+1))", "1", "sympy test_limits"),
    Case("((r**7+r+1)/(2**r+r**2))**(-1/r)", "1", "sympy test_limits"),
    Case("((r+1)**20 - r**20)/r**19", "1", "sympy test_limits (exponent 2000 there)"),
    Case("r*(((r+1)**2+1)/(r**2+1)-1)", "1", "sympy test_limits"),
    Case("r*(-1+(r+log(r+1)+1)/(r+log(r)))", "1", "sympy test_limits"),
    Case("log(exp(3*r)+r)/log(exp(r)+r**100)", "1", "sympy test_limits"),
    Case("(1/(r*log((r+3)/r)))**r*((r+1)*log((r+4)/(r+1)))**(r+1)/3", "1", "sympy test_limits, issue 27278"),
    Case("log(r)*(log(log(r)+log(log(r))) - log(log(r)))/log(log(r)+log(log(log(r))))", "1", "Gruntz 8.19"),
    Case("exp(log(log(r+exp(log(r)*log(log(r)))))/log(log(log(exp(r)+r+log(r)))))", "1", "Gruntz 8.20"),
    Case("log(exp(1)+1/r)**(1-sqrt(exp(1)+1/r))", "1", "sympy test_limits"),
    # → 0
    Case("1000*r/(r**2-1)", "0", "Demidovich 182"),
    Case("(2*r**2-r+3)/(r**3-8*r+5)", "0", "Demidovich 184"),
    Case("(r**2+1)**(1/3)/(r+1)", "0", "Demidovich 189"),
    Case("sqrt(r+1)-sqrt(r)", "0", "Demidovich 179", "Θ(r^-1/2)"),
    Case("r - (r**3-1)**(1/3)", "0", "Demidovich 215", "Θ(r^-2)"),
    Case("((r+1)/(2*r+1))**(r**2)", "0", "Demidovich, example 8", "Θ(faster decay than any power of r)"),
    Case("1/r - exp(-r)", "0", "sympy test_limits"),
    Case("abs(log(r)/r**3)", "0", "sympy test_limits"),
    Case("r**(1/10**9 - 1)", "0", "sympy test_limits"),
    Case("log(r)**(r/log(r))/2**r", "0", "sympy test_limits"),
    Case("log(1+exp(r)) - r", "0", "Gruntz (x - log(1 + exp(x)))", "Θ(faster decay than any power of r)"),
    # → 0 only far beyond r = 2^4096 (at every probe γ_r grows like r^(10^7)): decided structurally,
    # with log log log r bounded by Θ(1) below and (log log r)^ε above
    Case("log(r)**2*exp(sqrt(log(r))*log(log(r))**2*exp(sqrt(log(log(r)))*log(log(log(r)))**3))/sqrt(r)",
         "0", "Gruntz 8.9", "Θ(r^-1/2 · (beyond every power of log r))"),
    Case("(1/4)**r", "0", "sympy test_limits"),
    Case("(2+sin(r))/sqrt(r)", "0", "bounded oscillating factor"),
    # → ∞
    Case("exp(r)/r", "oo", "sympy test_limits"),
    Case("r + exp(-r**2)", "oo", "sympy test_limits"),
    Case("(3**r+2*r**10)/(r**10+exp(r))", "oo", "sympy test_limits"),
    Case("r**2+r*sin(r)+cos(r)", "oo", "sympy test_limits"),
    Case("r**2+2*r*cos(r)+cos(r)**2", "oo", "sympy test_limits: ((x + cos x)**2).expand()"),
    Case("(1+(2/3)**(1+r))**(2**r)/2**((4/3)**(r-1))", "oo", "sympy test_limits, tower",
         "Θ(faster than any power of r)"),
    Case("exp(exp(r-exp(-r))/(1-1/r)) - exp(exp(r))", "oo", "Gruntz 8.3"),
    Case("exp(exp(exp(r+exp(-r))))/exp(exp(exp(r)))", "oo", "Gruntz 8.5"),
    Case("exp(exp(exp(r)))/exp(exp(exp(r-exp(-exp(r)))))", "oo", "Gruntz 8.6"),
    Case("exp(exp(exp(r+exp(-r))))/exp(exp(r))", "oo", "Gruntz"),
    Case("floor(r/2)", "oo", "sympy test_limits"),
    Case("(log(exp(1)+1/r)-1)**(1-sqrt(exp(1)+1/r))", "oo", "sympy test_limits"),
    Case("log(log(r))**(1/2)", "oo", "textbook", "Θ(log(log(r))^1/2)"),
    Case("r**(1/log(log(r)))", "oo", "textbook", "Θ((beyond every power of log r))"),
)


def verdict(g: Growth) -> str:
    """What a Growth says γ_r does: "0", "1", "oo", or "indeterminate" when it does not say."""
    if g.upper < ZERO or (g.exact and g.upper == ZERO and g.strict < 0):
        return "0"
    if (g.lower is not None and g.lower > ZERO) or (g.exact and g.upper == ZERO and g.strict > 0):
        return "oo"
    if g.exact and g.upper == ZERO and g.strict == 0:
        return "1"
    return "indeterminate"
