"""One JSON schema for every result rsstab prints with ``--json`` (``check``, ``simulate``,
``peft``, ``lint`` summaries, ``transfer``).

Every object starts with the same keys, named the same way everywhere:

=================  =================================================================
``schema_version``  this schema's version (an integer; bumped on incompatible changes)
``command``         the command that produced it (``"check"``, ``"simulate"``, …)
``stable``          ``true`` when the verdict is rank-stabilized in its regime
``label``           ``rank-stabilized`` / ``collapse`` / ``blow-up`` / ``indeterminate``
``optimizer``       the regime the label is for (``sgd`` or ``adam``)
``schedule``        γ_r as given
``reason``          why, in one sentence (the symbolic argument, or the measured slopes)
``notes``           a list of caveats and warnings (possibly empty)
=================  =================================================================

then the command's own fields. The other optimizer, where a command gives it, is
``other_regime`` (``{"optimizer", "label", "lr_exponent"}``); a simulation's symbolic
counterpart is ``symbolic``. Non-finite numbers are the strings ``"inf"``, ``"-inf"``,
``"nan"`` (strict JSON); text is UTF-8, not escaped. Errors are never JSON: one line on stderr
and exit code 2, with nothing on stdout. ``lint --format json`` prints a lighter object (no
verdict: ``schema_version``, ``command``, ``optimizer``, ``adapters``, ``findings``, ``codes``).

:func:`json_schema` gives all of it as a JSON Schema (draft 2020-12; ``rsstab schema [COMMAND]``
prints it). What it decides: every key a command prints is listed; the top level of each command's
object is closed (``additionalProperties: false``: a renamed or new key is a schema change, caught by
the tests that validate each command's output), and so are the small objects whose keys are the
contract (``other_regime``, a ``table`` row, a measured quantity's fit); objects that carry a
library dataclass's or a derivation's detail (``terms``, ``adam_eps``, ``settings``, a PEFT module
row) list the keys every consumer may rely on as required and stay open for more. Labels and
optimizers are enums from :mod:`rsstab.vocab`; numbers may be the non-finite strings above.

>>> head = envelope("check", stable=True, label="rank-stabilized", optimizer="sgd",
...                 schedule="alpha/sqrt(r)", reason="γ_r²·r ∈ Θ(1)", notes=[], body={"x": 1})
>>> list(head)[:3], head["x"]
(['schema_version', 'command', 'stable'], 1)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SCHEMA_VERSION", "COMMON_KEYS", "SCHEMA_COMMANDS", "envelope", "dumps", "json_safe", "json_schema"]

SCHEMA_VERSION = 1
COMMON_KEYS = ("schema_version", "command", "stable", "label", "optimizer", "schedule", "reason", "notes")


def json_safe(x: object) -> object:
    """Replace non-finite floats by the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf" if x < 0 else "nan"
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def envelope(command: str, *, stable: bool | None, label: str | None, optimizer: str | None,
             schedule: str | None, reason: str, notes: Iterable[str], body: Mapping[str, Any]) -> dict[str, Any]:
    """The common keys first, then ``body`` (whose own copies of common keys are dropped)."""
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "command": command, "stable": stable,
                            "label": label, "optimizer": optimizer, "schedule": schedule, "reason": reason,
                            "notes": list(notes)}
    return {**head, **{k: v for k, v in body.items() if k not in head}}


def dumps(obj: Mapping[str, Any]) -> str:
    """The one way results are printed: strict JSON, UTF-8 text unescaped, indented."""
    return json.dumps(json_safe(dict(obj)), ensure_ascii=False, indent=2, default=str)


# --------------------------------------------------------------------------- the JSON Schema

#: The commands whose JSON output :func:`json_schema` describes (``derive`` prints text, markdown
#: or LaTeX only, so it has none).
SCHEMA_COMMANDS = ("check", "simulate", "transfer", "peft", "lint")

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: Mapping[str, Any], required: Iterable[str] | None = None, *, closed: bool = True,
         description: str | None = None) -> dict[str, Any]:
    """An object schema; ``required`` defaults to every property."""
    out: dict[str, Any] = {"type": "object", "properties": dict(properties),
                           "required": list(properties if required is None else required),
                           "additionalProperties": not closed}
    if description:
        out["description"] = description
    return out


def _array(items: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(items)}


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_NUM, _STRS = _ref("number"), {"type": "array", "items": {"type": "string"}}


def _defs() -> dict[str, Any]:
    from rsstab.vocab import ADAM_REGIMES, LABELS, OPTIMIZERS, VERDICT_LABELS

    label = {"enum": list(LABELS)}
    quantity_fit = _obj({"slope": _NUM, "ci": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2},
                         "local_slopes": _array(_null(_NUM)), "ranks": _array(_INT), "values": _array(_null(_NUM)),
                         "label": label, "evidence": _STR},
                        description="a measured quantity: its log-log slope in r with a 95% interval")
    empirical = _obj({"label": label, "optimizer": _ref("optimizer"), "schedule": _STR, "reason": _STR,
                      "headline": _STR, "diverged": _BOOL,
                      "diverged_seeds": {"type": "object", "additionalProperties": _array(_INT)},
                      "quantities": {"type": "object", "additionalProperties": _ref("quantity_fit"),
                                     "required": ["forward", "backward"]},
                      "settings": _obj({"ranks": _array(_INT), "optimizer": _ref("optimizer"), "depth": _INT,
                                        "width": _INT, "steps": _INT, "seeds": _INT, "batch": _INT,
                                        "lr": {"anyOf": [_NUM, _STR]}},
                                       closed=False, description="the simulator's settings (more keys may follow)"),
                      "seconds": _NUM},
                     description="a Monte Carlo measurement (rsstab.measure.empirical.EmpiricalVerdict.as_dict)")
    return {
        "number": {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}],
                   "description": "a number; a non-finite one is the string inf, -inf or nan"},
        "label": label,
        "verdict_label": {"enum": list(VERDICT_LABELS)},
        "optimizer": {"enum": list(OPTIMIZERS), "description": "the regime (adamw is read as adam)"},
        "other_regime": _obj({"optimizer": _ref("optimizer"), "label": _ref("verdict_label"),
                              "lr_exponent": _null(_NUM)}),
        "symbolic_quantity": _obj({"name": _STR, "law": _STR, "description": _STR, "order": _STR,
                                   "exponent": _null(_NUM), "log_exponent": _null(_NUM),
                                   "lower_exponent": _null(_NUM), "upper_exponent": _NUM,
                                   "label": _ref("verdict_label")}),
        "condition": _obj({"when": _STR, "label": _STR, "constraints": _STRS}, ["when", "label"], closed=False),
        "term": _obj({"quantity": _STR, "label": _STR}, closed=False,
                     description="one condition of the hyperparameter tuple (rsstab.verdict.hyperparams)"),
        "quantity_fit": quantity_fit,
        "empirical": empirical,
        "adam_regime": {"enum": list(ADAM_REGIMES)},
    }


def _common(command: str, *, label: dict[str, Any], schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"schema_version": {"const": SCHEMA_VERSION}, "command": {"const": command}, "stable": _BOOL,
            "label": label, "optimizer": _ref("optimizer"), "schedule": schedule or _STR,
            "reason": {"type": "string", "minLength": 1}, "notes": _STRS}


#: The learning-rate keys every verdict carries (check, simulate, transfer, peft).
def _rule_keys() -> dict[str, Any]:
    return {"headline": _STR, "lr": {"type": "string", "description": '"fixed", "η ∝ r^P" or "η = EXPR": the '
                                     "learning rate the label is for"},
            "lr_exponent": _null(_NUM), "lr_exponent_exact": _null(_STR), "lr_rule": _STR}


def _verdict_body() -> dict[str, Any]:
    """The keys of rsstab.verdict.classify.Verdict.to_dict (one schedule in one regime)."""
    return {
        "method": _STR, "gamma_order": _STR, "gamma_exponent": _null(_NUM), "gamma_to_zero": _null(_BOOL),
        "stability_law": _STR, "stability_order": _STR,
        "quantities": {"type": "object", "additionalProperties": _ref("symbolic_quantity"),
                       "required": ["grad_init", "forward", "backward"]},
        "table": _array(_obj({"r": _INT, "gamma": _NUM, "stability": _NUM})),
        "constants": {"type": "object", "additionalProperties": {"anyOf": [_NUM, _STR]}},
        "parsed": _STR, "lr_scaling": _NUM, "lr_scale": _null(_STR), "regime": _STR,
        "parameters": _STRS, "assumptions": _STRS, "conditions": _array(_ref("condition")),
        "terms": _array(_ref("term")), "width": _null(_INT), "crossover_rank": _null(_NUM),
        "width_law": _null(_STR), "width_table": _array(_obj({"r": _INT, "gamma": _NUM, "regime": _STR},
                                                             closed=False)),
        "rms_summary": _null(_STR), **_rule_keys(),
    }


def _check() -> dict[str, Any]:
    one = _obj({**_common("check", label=_ref("verdict_label")), **_verdict_body(),
                "other_regime": _ref("other_regime"),
                "adam_eps": _obj({"eps": _NUM, "grad_scale": _NUM, "crossover_rank": _NUM,
                                  "table": _array(_obj({"r": _INT, "gamma": _NUM, "ratio": _NUM,
                                                        "regime": _ref("adam_regime")})), "summary": _STR},
                                 closed=False),
                "expansion_table": _array(_obj({"r": _INT, "gamma": _NUM, "b_driven": _null(_NUM),
                                                "a_driven": _null(_NUM), "known_expansion": _null(_NUM),
                                                "in_range": _null(_BOOL)}, closed=False)),
                "simulation": _ref("empirical")},
               required=[*COMMON_KEYS, *_verdict_body(), "other_regime"],
               description="rsstab check EXPR --json: one schedule (adam_eps with --eps, expansion_table with "
                           "--width and a numeric --lr, simulation with --simulate)")
    row = _obj({"schedule": _STR, "parsed": _STR, "gamma_order": _STR, "label": _ref("verdict_label"),
                "stable": _BOOL, "lr_exponent": _null(_NUM), "headline": _STR, "other_regime": _ref("other_regime"),
                "method": _STR})
    several = _obj({**_common("check", label=_null(_ref("verdict_label")), schedule={"type": "null"}),
                    "schedules": {**_array(row), "minItems": 2}},
                   description="rsstab check EXPR EXPR… --json: one row per schedule; label is theirs when they "
                               "share it, else null; schedule is null")
    return {"oneOf": [one, several], "description": "rsstab check --json"}


def _simulate() -> dict[str, Any]:
    emp = _defs()["empirical"]["properties"]
    q = _obj({**_ref_props("quantity_fit"), "theory": _null(_NUM), "agrees": _null(_BOOL)},
             required=["slope", "ci", "ranks", "values", "label", "theory", "agrees"], closed=False)
    return _obj({**_common("simulate", label=_ref("label")), **_rule_keys(),
                 **{k: v for k, v in emp.items() if k not in ("label", "optimizer", "schedule", "reason",
                                                              "headline", "quantities")},
                 "quantities": {"type": "object", "additionalProperties": q, "required": ["forward", "backward"]},
                 "tuple": _obj({"gamma": _STR, "lr": {"anyOf": [_NUM, _STR]}, "lr_ratio": {"anyOf": [_NUM, _STR]},
                                "init_std": {"anyOf": [_NUM, _STR]}, "init_std_expr": _STR,
                                "symbolic_lr": _null(_STR), "symbolic_lr_ratio": _null(_STR), "notes": _STRS},
                               closed=False),
                 "symbolic": _obj({"label": _ref("verdict_label"), **_rule_keys(), "terms": _array(_ref("term"))},
                                  ["label", "headline", "lr", "lr_exponent", "lr_rule"], closed=False),
                 "prediction": _STR,
                 "prediction_range": _obj({"limit": _NUM, "out_of_range_ranks": _array(_INT), "statement": _STR},
                                          closed=False)},
                description="rsstab simulate EXPR --json: the measured verdict (label, headline), the theory's "
                            "learning-rate rule for the simulated tuple (lr, lr_exponent, lr_rule) and its "
                            "verdict (symbolic)")


def _ref_props(name: str) -> dict[str, Any]:
    return dict(_defs()[name]["properties"])


def _transfer() -> dict[str, Any]:
    regime = _obj({"schedule": _STR, "optimizer": _ref("optimizer"), "from_rank": _INT, "to_rank": _INT,
                   "lr_from": _NUM, "lr_to": _NUM, "factor": _NUM, "factor_exact": _null(_STR), "lr_rule": _STR,
                   "lr_exponent": _null(_NUM), "lr_exponent_exact": _null(_STR), "lr_scale": _null(_STR),
                   "fixed_lr_growth": _NUM, "law": _STR, "label": _ref("verdict_label"), "headline": _STR,
                   "stable": _BOOL, "eps": _NUM, "grad_scale": _NUM, "regime_from": _ref("adam_regime"),
                   "regime_to": _ref("adam_regime")},
                  required=["schedule", "optimizer", "from_rank", "to_rank", "lr_from", "lr_to", "factor",
                            "lr_rule", "lr_exponent", "label", "stable"])
    eps = {"eps": _NUM, "grad_scale": _NUM, "regime_from": _ref("adam_regime"), "regime_to": _ref("adam_regime")}
    return _obj({**_common("transfer", label=_ref("verdict_label")), **_rule_keys(),
                 "from_rank": _INT, "to_rank": _INT, "lr_from": _NUM, "lr_to": _NUM, "factor": _NUM,
                 "factor_exact": _null(_STR), "fixed_lr_growth": _NUM,
                 "regimes": {"type": "object", "additionalProperties": regime, "propertyNames": _ref("optimizer"),
                             "minProperties": 2}, **eps},
                required=[*COMMON_KEYS, *_rule_keys(), "from_rank", "to_rank", "lr_from", "lr_to", "factor",
                          "regimes"],
                description="rsstab transfer --json: stable, label, headline and lr_rule are the schedule's verdict "
                            "in this regime at a fixed learning rate (rsstab check's); lr_to is the learning rate to "
                            "use at to_rank; eps, grad_scale, regime_from and regime_to only with --eps")


def _peft() -> dict[str, Any]:
    module = _obj({"name": _STR, "kind": _STR, "r": _INT, "lora_alpha": _NUM, "scaling": _NUM,
                   "r_weight": _null(_INT), "r_mismatch": _BOOL, "label": _ref("label")}, closed=False)
    verdict = _obj({"label": _ref("verdict_label"), "optimizer": _ref("optimizer"), "schedule": _STR,
                    **_verdict_body()}, closed=False)
    return _obj({**_common("peft", label=_ref("label")), **_rule_keys(),
                 "path": _STR, "source": {"enum": ["weights", "config"]}, "use_rslora": _BOOL,
                 "defaults_used": _STRS, "init_lora_weights": {"type": ["boolean", "string", "null"]},
                 "variants": _STRS, "caveats": _STRS, "verdict": _null(verdict), "modules": _array(module)},
                required=[*COMMON_KEYS, "headline", "lr", "lr_exponent", "lr_rule", "path", "source", "use_rslora",
                          "defaults_used", "init_lora_weights", "variants", "caveats", "verdict", "modules"],
                description="rsstab peft PATH --json: the adapter's verdict and one row per module")


def _lint() -> dict[str, Any]:
    from rsstab.lint_codes import CODES

    finding = _obj({"path": _STR, "module": _STR, "code": {"enum": list(CODES)}, "message": _STR,
                    "line": _null(_INT), "severity": {"enum": ["error", "warning", "info"]}})
    return _obj({"schema_version": {"const": SCHEMA_VERSION}, "command": {"const": "lint"},
                 "optimizer": _ref("optimizer"), "adapters": {"type": "integer", "minimum": 0},
                 "findings": _array(finding),
                 "codes": {"type": "object", "propertyNames": {"enum": list(CODES)},
                           "additionalProperties": _obj({"severity": {"enum": ["error", "warning", "info"]},
                                                         "meaning": _STR})}},
                description="rsstab lint --format json: findings, no verdict")


def json_schema(command: str | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``command``'s ``--json`` output, or of every command's
    (one of them, told apart by ``command``) when None.

    >>> s = json_schema("transfer")
    >>> s["$schema"], s["$ref"], "lr_rule" in s["$defs"]["transfer"]["required"]
    ('https://json-schema.org/draft/2020-12/schema', '#/$defs/transfer', True)
    >>> json_schema("derive")
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: no JSON output for 'derive': expected one of check, simulate, transfer, peft, lint
    """
    from rsstab.errors import RsstabError

    if command is not None and command not in SCHEMA_COMMANDS:
        raise RsstabError(f"no JSON output for {command!r}: expected one of {', '.join(SCHEMA_COMMANDS)}",
                          parameter="command")
    builders = {"check": _check, "simulate": _simulate, "transfer": _transfer, "peft": _peft, "lint": _lint}
    defs = {**_defs(), **{name: build() for name, build in builders.items()}}
    head = {"$schema": DIALECT, "$id": f"urn:rsstab:schema:{SCHEMA_VERSION}" + (f":{command}" if command else ""),
            "title": f"rsstab {command or 'COMMAND'} --json (schema_version {SCHEMA_VERSION})"}
    if command is not None:
        return {**head, "$ref": f"#/$defs/{command}", "$defs": defs}
    return {**head, "description": "the object every rsstab command prints with --json (lint: --format json); "
                                   "command says which",
            "oneOf": [_ref(name) for name in SCHEMA_COMMANDS], "$defs": defs}
