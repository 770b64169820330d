"""Benchmark: resolving EVA-style ``rank_pattern`` / ``alpha_pattern`` (one full-name key per module).

EVA (``init_lora_weights="eva"``) redistributes ranks and writes one key per adapted module; with
``adjust_scaling_factors`` an ``alpha_pattern`` key too. Two synthetic adapters of that shape:

* **Llama-70B, all-linear**: 80 layers × (q, k, v, o, gate, up, down) = 560 modules;
* **Mixtral-8x7B**: 32 layers × (q, k, v, o + 8 experts × (w1, w2, w3)) = 896 modules.

Timed, each in a fresh process (so no side inherits the other's ``re`` cache):

* **PEFT** — ``peft.utils.other.get_pattern_key`` for the rank and the alpha key of every module,
  exactly what ``LoraModel._create_and_replace`` calls per module when it loads the adapter;
* **rsstab** — :func:`rsstab.peft_files.read_adapter` on the saved folder: JSON config, safetensors
  header, resolution of every module, and the warnings pass (unmatched keys, overlapping keys);
  the resolved (r, alpha) are checked equal to PEFT's for every module.

    python benchmarks/bench_eva_patterns.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = {
    "llama70b-all-linear": (80, [f"self_attn.{p}_proj" for p in "qkvo"] + [f"mlp.{p}_proj" for p in ("gate", "up", "down")]),
    "mixtral-8x7b": (32, [f"self_attn.{p}_proj" for p in "qkvo"]
                     + [f"block_sparse_moe.experts.{e}.w{w}" for e in range(8) for w in (1, 2, 3)]),
}


def module_names(model: str) -> list[str]:
    layers, parts = MODELS[model]
    return [f"model.layers.{i}.{p}" for i in range(layers) for p in parts]


def write_adapter(root: Path, model: str, seed: int = 0) -> Path:
    """An EVA-shaped adapter: every module its own rank (4…32) and alpha (16·r_i/16)."""
    rng = random.Random(seed)
    names = module_names(model)
    ranks = {n: rng.randrange(4, 33) for n in names}
    cfg = {
        "peft_type": "LORA", "r": 16, "lora_alpha": 16, "use_rslora": False, "init_lora_weights": "eva",
        "target_modules": sorted({n.rpartition(".")[2] for n in names}),
        "rank_pattern": ranks,
        "alpha_pattern": {n: 16 * r / 16 for n, r in ranks.items()},
    }
    d = root / model
    d.mkdir(parents=True, exist_ok=True)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    header = {}
    for n in names:
        header[f"base_model.model.{n}.lora_A.weight"] = {"dtype": "F32", "shape": [ranks[n], 64], "data_offsets": [0, 0]}
        header[f"base_model.model.{n}.lora_B.weight"] = {"dtype": "F32", "shape": [64, ranks[n]], "data_offsets": [0, 0]}
    raw = json.dumps(header).encode()
    (d / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    return d


_PEFT = """
import json, sys, time
from peft.utils.other import get_pattern_key
cfg = json.load(open(sys.argv[1] + "/adapter_config.json"))
names = json.loads(sys.argv[2])
rp, ap = cfg["rank_pattern"], cfg["alpha_pattern"]
t = time.perf_counter()
out = {}
for n in names:
    out[n] = (rp.get(get_pattern_key(rp.keys(), n), cfg["r"]), ap.get(get_pattern_key(ap.keys(), n), cfg["lora_alpha"]))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "values": out}))
"""

_RSSTAB = """
import json, sys, time
t = time.perf_counter()
from rsstab.peft_files import read_adapter
rep = read_adapter(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "values": {m.name: (m.r, m.lora_alpha) for m in rep.modules},
                  "warnings": len(rep.warnings)}))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the best is reported (default 3)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            d = write_adapter(Path(tmp), model)
            names = module_names(model)
            peft = [_run(_PEFT, str(d), json.dumps(names)) for _ in range(args.repeat)]
            ours = [_run(_RSSTAB, str(d)) for _ in range(args.repeat)]
            want = {k: tuple(v) for k, v in peft[0]["values"].items()}
            got = {k: tuple(v) for k, v in ours[0]["values"].items()}
            assert got == want, "rsstab and PEFT resolve different (r, alpha)"
            assert ours[0]["warnings"] == 0
            print(f"{model:22s} {len(names):4d} keys   PEFT get_pattern_key {min(p['seconds'] for p in peft):7.3f} s"
                  f"   rsstab read_adapter {min(o['seconds'] for o in ours):7.3f} s   (identical r, alpha)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
