"""Read PEFT LoRA adapters and resolve the scaling PEFT applies to every adapted module.

Pure functions returning frozen dataclasses, standard library only: the safetensors header is
parsed with :mod:`json`, so neither torch nor the ``safetensors`` package is imported, and no
pickle is ever opened.

The resolution rules are PEFT's (``peft.tuners.lora.model.LoraModel._create_and_replace`` and
``peft.utils.other.get_pattern_key``):

* ``peft_type`` must be ``"LORA"``; ``r`` and ``lora_alpha`` default to ``8``, ``use_rslora`` to
  ``False``;
* a module's rank is ``rank_pattern[k]`` for the **first** key ``k`` in dict (file) order with
  ``re.match(rf"(.*\\.)?({k})$", name)``, else ``r``; likewise ``alpha_pattern`` / ``lora_alpha``
  (:class:`~rsstab.peft_files.patterns.PatternIndex` finds it without a regex for plain keys);
* the scaling is ``lora_alpha / math.sqrt(r)`` with ``use_rslora`` (a global switch), else
  ``lora_alpha / r``;
* a parameter targeted with ``target_parameters`` is matched as ``<module>.<parameter>``.

Layout: :mod:`~rsstab.peft_files.config` (the JSON file), :mod:`~rsstab.peft_files.weights`
(the safetensors header), :mod:`~rsstab.peft_files.patterns` (first-match lookup),
:mod:`~rsstab.peft_files.resolve` (modules, ranks, scalings), :mod:`~rsstab.peft_files.hypotheses`
(the theory's hypotheses per adapter: initialisation, variants, loader parity; imports sympy
lazily) and :mod:`~rsstab.peft_files.discover` (adapters under many paths and globs).

>>> cfg = parse_config({"peft_type": "LORA", "r": 16, "lora_alpha": 32, "rank_pattern": {"q": 64}})
>>> m = resolve_module(cfg, "encoder.layer.0.attention.self.q")
>>> (m.r, m.lora_alpha, m.scaling, m.rank_key)
(64, 32, 0.5, 'q')
>>> resolve_module(cfg, "encoder.layer.0.attention.self.k").scaling
2.0
>>> parse_config({"peft_type": "LORA", "use_rslora": True, "r": 64, "lora_alpha": 16}).schedule
'alpha/sqrt(r)'
"""

from __future__ import annotations

from rsstab.peft_files.config import (
    CONFIG_NAME,
    DEFAULT_LORA_ALPHA,
    DEFAULT_R,
    DEFAULT_USE_RSLORA,
    VARIANTS,
    AdapterConfig,
    BdLora,
    load_config,
    parse_config,
)
from rsstab.peft_files.patterns import PATTERN_TIME_LIMIT, PatternIndex, match_pattern
from rsstab.peft_files.resolve import (
    AdapterReport,
    ModuleScaling,
    Note,
    Resolver,
    missing_weights,
    peft_scaling,
    read_adapter,
    resolve_module,
)
from rsstab.peft_files.weights import MODEL_PREFIX, WEIGHTS_NAME, TensorInfo, adapted_modules, read_safetensors_header

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_LORA_ALPHA",
    "DEFAULT_R",
    "DEFAULT_USE_RSLORA",
    "MODEL_PREFIX",
    "PATTERN_TIME_LIMIT",
    "VARIANTS",
    "WEIGHTS_NAME",
    "AdapterConfig",
    "AdapterReport",
    "BdLora",
    "ModuleScaling",
    "Note",
    "PatternIndex",
    "Resolver",
    "TensorInfo",
    "adapted_modules",
    "load_config",
    "match_pattern",
    "missing_weights",
    "parse_config",
    "peft_scaling",
    "read_adapter",
    "read_safetensors_header",
    "resolve_module",
]
