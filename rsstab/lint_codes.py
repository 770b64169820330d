"""The stable codes of ``rsstab lint``: code → (severity, what it means).

Their own module, standard library only, so that the JSON schema (:mod:`rsstab.schema`) can list
the codes without importing the linter, which writes its JSON through the schema's encoder.
:mod:`rsstab.lint` explains each code (:data:`rsstab.lint.RULES`) and exports :data:`CODES` too.

>>> CODES["RS301"][0]
'warning'
"""

from __future__ import annotations

__all__ = ["CODES"]

#: code → (severity, what it means). Stable: a code is never reused for something else.
CODES: dict[str, tuple[str, str]] = {
    "RS001": ("error", "unreadable input: not a PEFT LoRA adapter, malformed, or missing"),
    "RS101": ("info", "PEFT defaults used for fields missing from the config"),
    "RS102": ("warning", "rank_pattern / alpha_pattern key matches no adapted module (PEFT ignores it)"),
    "RS103": ("warning", "module matched by pattern keys with different values: file order decides"),
    "RS104": ("info", "bare config: module names unknown, patterns cannot be checked"),
    "RS201": ("error", "rank in the weights disagrees with the config: PEFT fails to load the adapter"),
    "RS202": ("warning", "weight keys carry an adapter name: PEFT loads them only under that name"),
    "RS203": ("warning", "targeted parameters whose nested wrappers the adapter does not tell apart"),
    "RS204": ("warning", "adapter folder without adapter_model.safetensors: the config was checked alone"),
    "RS205": ("error", "LoRA factor shapes no PEFT layer saves (a 3-D lora_A beside a 2-D lora_B, a missing factor)"),
    "RS301": ("warning", "scaling not rank-stabilized in the optimizer regime"),
    "RS302": ("warning", "initialisation outside Theorem 3.2's hypothesis (B = 0, A iid with rank-free variance)"),
    "RS303": ("warning", "LoRA variant the verdict does not model"),
    "RS304": ("info", "loader parity: a loader ignoring use_rslora scales these modules √r too small"),
}
