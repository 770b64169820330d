"""sympy's own limits at r → +∞, as held-out cases for the asymptotics engine.

Every ``limit(f, x, oo)`` (or ``gruntz``) asserted with ``==`` in sympy 1.14's
sympy/series/tests/test_gruntz.py, test_limits.py and test_demidovich.py (XFAIL tests included)
where f is real in one variable and the asserted value is 0, a positive number, ∞ or their
negatives: the variable renamed r, printed as schedule text (E as ``e``, Abs as ``abs``, ceiling as
``ceil``), negated where the limit is negative or γ_r → 0 from below (written ``-(...)``), sinh,
cosh and coth rewritten in exp and acot, acosh, asec, acsc in atan/log (identities valid for the
arguments there, all > 1), and the expected answer taken from sympy's assertion. Left out: limits
of gamma, erf, Ei, zeta, Bessel functions, factorials, binomials and Fresnel integrals (not in the
schedule language), complex values, and oscillating ones (AccumBounds, sin(r)/r). Limits already in
tests/support/classical_limits.py (the same sympy expression) are not repeated. ``slow``: above 1 s under the
default time limits on the development machine; tests/asymptotics/test_classical_limits.py runs those with
``-m slow`` only.

Extracted once (the data is fixed here: sympy's test files change between versions); run with
benchmarks/classical_limits.py --sympy.
"""

from __future__ import annotations

from support.classical_limits import Case

__all__ = ["SYMPY_CASES"]

SYMPY_CASES: tuple[Case, ...] = (
    Case("(r + 1)**2/(r**2 + 1)", "1", "test_demidovich::test_Limits_simple_1 (lim 1)"),
    Case("(2*r + 3)/(r**(1/3) + r)", "1", "test_demidovich::test_Limits_simple_2 (lim 2)"),
    Case("r*sin(1/r)", "1", "test_demidovich::test_f1b (lim 1)"),
    Case("(sin(exp(-r) + 1/r) - sin(exp(-r**2) + 1/r))*exp(r)", "1", "test_gruntz::test_gruntz_eval_special (lim 1)"),
    Case("(-exp(sin(1/r)) + exp(sin(exp(-exp(r)) + 1/r)))*exp(exp(r))", "1",
         "test_gruntz::test_gruntz_eval_special (lim 1)"),
    Case("-((-exp(1/r) + exp(-exp(-r) + 1/r))*exp(r))", "1", "test_gruntz::test_gruntz_evaluation (lim -1; negated)"),
    Case("(-exp(-exp(-exp(r)) + 1/r) + exp(exp(-r**2) + exp(-r) + 1/r))*exp(r)", "1",
         "test_gruntz::test_gruntz_evaluation (lim 1)", slow=True),
    Case("exp(exp(exp(r)))*exp(-exp(exp(r - exp(-exp(exp(r))))))", "1",
         "test_gruntz::test_gruntz_evaluation (lim 1)", slow=True),
    Case("r*log(r)*log(-r**2 + r*exp(r))**2/log(log(r**2 + 2*exp(exp(3*r**3*log(r)))))", "1",
         "test_gruntz::test_gruntz_evaluation (lim 1/3)", slow=True),
    Case("-((-exp(r) + exp(r*exp(-r)/(exp(-2*r**2/(r + 1)) + exp(-r))))/r)", "1",
         "test_gruntz::test_gruntz_evaluation (lim -exp(2); negated)", slow=True),
    Case("tanh(r)", "1", "test_gruntz::test_gruntz_hyperbolic (lim 1)"),
    Case("(exp(r) + exp(-r))/(exp(r) - exp(-r))", "1",
         "test_gruntz::test_gruntz_hyperbolic (lim 1; rewritten from coth(r))"),
    Case("exp(r)/(1 + 1/r)**(r**2)", "1", "test_gruntz::test_issue_24210_25885 (lim exp(1/2))", slow=True),
    Case("(1 + 1/r)**(r**2)*exp(-r)", "1", "test_gruntz::test_issue_24210_25885 (lim exp(-1/2))", slow=True),
    Case("1 + 1/r", "1", "test_gruntz::test_limit2 (lim 1)"),
    Case("-(-exp(1/r))", "1", "test_gruntz::test_limit2 (lim -1; negated)"),
    Case("13 - exp(-r) + 1/r", "1", "test_gruntz::test_limit2 (lim 13)"),
    Case("exp(r)/(exp(r) + 1)", "1", "test_gruntz::test_limit3 (lim 1)"),
    Case("(1 + 1/r)**r + 1", "1", "test_limits::test_exponential (lim 1 + E)"),
    Case("floor(atan(r))", "1", "test_limits::test_floor (lim 1)"),
    Case("ceil(atan(r))", "1", "test_limits::test_floor (lim 2)"),
    Case("sqrt(30)*5**(-5*r - 1)*(46656*r)**r*(5*r + 2)**(5*r + 5/2)*(6*r + 2)**(-6*r - 5/2)", "1",
         "test_limits::test_issue_13332 (lim 25/36)", slow=True),
    Case("(-r**3*log(r)**3 + (r - 1)*(r + 1)**2*log(r + 1)**3)/(r**2*log(r)**3)", "1",
         "test_limits::test_issue_13416 (lim 1)", slow=True),
    Case("r**3*((-r - 1)*sin(1/r) + (r + 2)*sin(1/(r + 1)))/(1 - r)", "1", "test_limits::test_issue_15055 (lim 1)"),
    Case("-((r**2000 - (r + 1)**2000)/r**1999)", "1", "test_limits::test_issue_15282 (lim -2000; negated)"),
    Case("(-exp(-r - 1)/2 + exp(r + 1)/2)/(exp(r)/2 - exp(-r)/2)", "1",
         "test_limits::test_issue_21530 (lim E; rewritten from sinh(r + 1)/sinh(r))"),
    Case("atan(exp(r))", "1", "test_limits::test_issue_25582 (lim pi/2)"),
    Case("atan(sqrt(exp(2*r) - 1))", "1", "test_limits::test_issue_25582 (lim pi/2; rewritten from asec(exp(r)))"),
    Case("abs((-r/(r + 1))**r)", "1", "test_limits::test_issue_26513 (lim exp(-1))"),
    Case("r/((r - 6)*(exp(tanh(0.03*r))/2 - exp(-tanh(0.03*r))/2) + tanh(r) - 0.5)", "1",
         "test_limits::test_issue_26991 (lim 1/sinh(1); rewritten from r/((r - 6)*sinh(tanh(0.03*r)) + tanh(r) - 0.5))"),
    Case("atan(r)", "1", "test_limits::test_issue_5184 (lim pi/2)"),
    Case("r**16/(r**16 + 1)", "1", "test_limits::test_issue_5955 (lim 1)"),
    Case("r**100/(r**100 + 1)", "1", "test_limits::test_issue_5955 (lim 1)"),
    Case("r**1885/(r**1885 + 1)", "1", "test_limits::test_issue_5955 (lim 1)"),
    Case("27**(log(r)/log(3) + 1)/r**3", "1", "test_limits::test_issue_9471 (lim 27)"),
    Case("1.0**r", "1", "test_limits::test_limit_with_Float (lim 1)"),
    Case("0.3*1.0**r", "1", "test_limits::test_limit_with_Float (lim 3/10)"),
    Case("(r + 1)**1000/((r + 1)**1000 + 1)", "1", "test_limits::test_polynomial (lim 1)"),
    Case("r**(77/3)/(r**(77/3) + 1)", "1", "test_limits::test_polynomial (lim 1)"),
    Case("r**101.1/(r**101.1 + 1)", "1", "test_limits::test_polynomial (lim 1)"),
    Case("r*(abs(log(r)/r**3)/abs(log(r + 1)/(r + 1)**3) - 1)", "1",
         "test_limits::test_set_signs (lim 3)", slow=True),
    Case("abs(log(r) + 1)/log(r)", "1", "test_limits::test_set_signs (lim 1)"),
    Case("sqrt(r)*log(sqrt((1 + 1/r)**2 - 1) + 1 + 1/r)", "1",
         "test_limits::test_sympyissue_22986 (lim sqrt(2); rewritten from sqrt(r)*acosh(1 + 1/r))"),
    Case("1/r", "0", "test_gruntz::test_limit1 (lim 0)"),
    Case("(-r + log(exp(r) + 1))/r", "0", "test_limits::test_issue_15984 (lim 0)"),
    Case("atan(exp(-r))", "0", "test_limits::test_issue_25582 (lim 0; rewritten from acot(exp(r)))"),
    Case("atan(1/sqrt(exp(2*r) - 1))", "0", "test_limits::test_issue_25582 (lim 0; rewritten from acsc(exp(r)))"),
    Case("r**(-0.5)", "0", "test_limits::test_issue_5164 (lim 0)"),
    Case("(r**2 - 5*r + 1)/(3*r + 7)", "oo", "test_demidovich::test_Limits_simple_2 (lim oo)"),
    Case("r**2/(r**(3/2) + 10)", "oo", "test_demidovich::test_Limits_simple_2 (lim oo)"),
    Case("r/log(log(r*exp(r)))", "oo", "test_gruntz::test_exp_log_series (lim oo)", slow=True),
    Case("r/log(r**log(2))", "oo", "test_gruntz::test_gruntz_evaluation (lim oo)"),
    Case("exp(-exp(10*log(r)*log(log(r))))*exp(exp(2*log(r**5 + r)*log(log(r))))", "oo",
         "test_gruntz::test_gruntz_evaluation (lim oo)", slow=True),
    Case("exp(8*exp(54*r**(49/45)/17 + 21*r**(6/11)/8 + 2/r**8 + 5/(2*r**(5/7))))/log(log(-log(4/(3*r**(5/14)))))**(7/6)", "oo",
         "test_gruntz::test_gruntz_evaluation (lim oo)", slow=True),
    Case("exp(r)/2 + exp(-r)/2", "oo", "test_gruntz::test_gruntz_hyperbolic (lim oo; rewritten from cosh(r))"),
    Case("exp(r)/2 - exp(-r)/2", "oo", "test_gruntz::test_gruntz_hyperbolic (lim oo; rewritten from sinh(r))"),
    Case("2*(exp(r)/2 + exp(-r)/2)*exp(r)", "oo",
         "test_gruntz::test_gruntz_hyperbolic (lim oo; rewritten from 2*exp(r)*cosh(r))"),
    Case("2*(exp(r)/2 - exp(-r)/2)*exp(r)", "oo",
         "test_gruntz::test_gruntz_hyperbolic (lim oo; rewritten from 2*exp(r)*sinh(r))"),
    Case("r", "oo", "test_gruntz::test_limit1 (lim oo)"),
    Case("-(-r**2)", "oo", "test_gruntz::test_limit1 (lim -oo; negated)"),
    Case("exp(r)", "oo", "test_gruntz::test_limit1 (lim oo)"),
    Case("r + 1/r", "oo", "test_gruntz::test_limit1 (lim oo)"),
    Case("r + exp(-r)", "oo", "test_gruntz::test_limit2 (lim oo)"),
    Case("r + exp(-exp(r))", "oo", "test_gruntz::test_limit2 (lim oo)"),
    Case("-(-r**2 + r)", "oo", "test_limits::test_basic1 (lim -oo; negated)"),
    Case("r**2 + 2*r*sin(r) + sin(r)**2", "oo", "test_limits::test_issue_12564 (lim oo)"),
    Case("(log(e + 1/r) - 1)**(-sqrt(e + 1/r))", "oo", "test_limits::test_issue_22982_15323 (lim oo)", slow=True),
    Case("r**0.5", "oo", "test_limits::test_issue_5164 (lim oo)"),
)
