"""Start-up cost of code fingerprints (benchinit.fingerprint): what a run pays once per
process before its first cell, against what it fingerprints.

Times, best of 5, in milliseconds: the compute path (ENGINE_MODULES), the built-in plugins,
and for scale the same files hashed byte for byte and ``import torch``'s share of a run's
start (measured in a fresh interpreter), and the ratio of the two. Prints; asserts nothing.

    python tests/benchmarks/bench_fingerprint.py
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchinit import fingerprint
from benchinit.plugins.registry import BUILTIN_PLUGINS


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    engine = [fingerprint._module_file(m) for m in fingerprint.ENGINE_MODULES]
    builtins = [fingerprint._module_file(m) for m in BUILTIN_PLUGINS]
    files = [Path(p) for p in engine + builtins if p]
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)
    engine_ms = best(lambda: fingerprint.engine_code_of(fingerprint.ENGINE_MODULES))
    builtin_ms = best(lambda: [fingerprint.module_code(m) for m in BUILTIN_PLUGINS])
    raw_ms = best(lambda: [hashlib.sha256(p.read_bytes()).hexdigest() for p in files])
    torch_s = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import torch"],
        capture_output=True, text=True, check=True,
    ).stderr.strip().splitlines()[-1].split("|")[1]  # fmt: skip
    print(f"files: {len(files)} ({lines} lines)")
    print(f"engine fingerprint:    {engine_ms:7.1f} ms ({len(engine)} modules)")
    print(f"built-in plugins:      {builtin_ms:7.1f} ms ({len(builtins)} modules)")
    print(f"bytes only (for scale): {raw_ms:6.1f} ms")
    torch_ms = int(torch_s) / 1000
    print(f"import torch:          {torch_ms:7.1f} ms")
    print(f"fingerprints / import torch: {(engine_ms + builtin_ms) / torch_ms:.1%}")


if __name__ == "__main__":
    main()
