"""arraynn.reuse_freed_memory: glibc's malloc keeps freed arrays' memory for the next ones.

The settings are the process's, so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import json, resource, sys
import numpy as np
import arraynn
changed = arraynn.reuse_freed_memory()
faults = []
for _ in range(6):  # a training loop's pattern: the same large temporary made and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(12 << 20, np.float32)  # 48 MiB, above glibc's largest automatic mmap threshold
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"changed": changed, "faults": faults}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "ARRAYNN_MALLOC"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_arrays_memory_is_reused_without_page_faults():
    tuned = _probe()
    assert tuned["changed"] is True
    assert sum(tuned["faults"][1:]) == 0  # after the first array, its memory is reused
    default = _probe(ARRAYNN_MALLOC="default")
    assert default["changed"] is False
    assert min(default["faults"][1:]) > 0  # each new array's pages faulted in again


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibcs_own_settings_in_the_environment_are_kept():
    assert _probe(MALLOC_MMAP_THRESHOLD_=str(128 * 1024))["changed"] is False
    assert _probe(MALLOC_TRIM_THRESHOLD_=str(128 * 1024))["changed"] is False
