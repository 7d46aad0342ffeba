"""Real compilation of every CUDA kernel of granular, without a GPU (NVVM + ptxas from wheels).

The signatures are the ones the host code launches the kernels with: a first subprocess runs
:func:`granular.cuda_launches.launch_scenario` under Numba's simulator and records them; a second,
with the real Numba-CUDA, compiles each to PTX for sm_80 and sm_90 and assembles it with
``ptxas -v``. Subprocesses, because the simulator and the real target cannot share a process
(the test session itself usually runs under the simulator). Skipped, with the reason, when the
``cuda-compile`` extra is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from granular.cuda_compile import compile_tools_missing, parse_ptxas

ROOT = Path(__file__).resolve().parents[1]
MISSING = compile_tools_missing()


def _run(module, *args, sim):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1" if sim else "0")
    run = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"{module} failed:\n{run.stdout}\n{run.stderr}"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuda_compile")
    _run("granular.cuda_launches", tmp / "signatures.json", sim=True)
    _run("granular.cuda_compile", tmp / "signatures.json", tmp / "resources.json", "--cc", "80", "90",
         sim=False)
    return json.loads((tmp / "resources.json").read_text())


@pytest.mark.skipif(MISSING is not None, reason=f"real CUDA compilation unavailable: {MISSING}")
def test_every_kernel_compiles_for_sm80_and_sm90_without_spills(compiled):
    assert compiled["errors"] == []
    assert compiled["not_launched"] == [], (
        "kernels no host launch reached in granular.cuda_launches.launch_scenario (extend it): "
        f"{compiled['not_launched']}")
    assert compiled["unknown_launched"] == []
    assert compiled["device_functions_unused"] == [], "device functions no kernel compiled"
    assert set(compiled["targets"]) == {"sm_80", "sm_90"}
    kernels = {name for table in compiled["targets"].values() for name in table}
    assert "granular.kernels_cuda.force_kernel" in kernels and len(kernels) >= 5
    for target, table in compiled["targets"].items():
        for name, results in table.items():
            for res in results:
                spills = res["spill_stores"] + res["spill_loads"]
                assert spills == 0, f"{name} spills on {target}: {res}"
                assert 0 < res["registers"] <= 255


SPILLING = """ptxas info    : Compiling entry function '_Z3fooPd' for 'sm_90'
ptxas info    : Function properties for _Z3fooPd
    48 bytes stack frame, 24 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 48 bytes cumulative stack size, 1024 bytes smem
ptxas info    : Function properties for _Z3barv
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
"""


def test_ptxas_parser_reads_spills_of_entry_and_callees():
    res = parse_ptxas(SPILLING)
    assert res == {"registers": 255, "spill_stores": 28, "spill_loads": 20, "stack": 48, "smem": 1024}
    with pytest.raises(ValueError, match="entry"):
        parse_ptxas("ptxas info    : Used 3 registers")


@pytest.mark.skipif(MISSING is not None, reason=f"real CUDA compilation unavailable: {MISSING}")
def test_target_cc_shim_is_scoped():
    code = ("import numba.cuda.dispatcher as d; from granular.cuda_compile import target_cc;"
            "f = d.get_current_device\n"
            "with target_cc((8, 0)):\n assert d.get_current_device().compute_capability == (8, 0)\n"
            "assert d.get_current_device is f")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr


@pytest.mark.skipif(MISSING is not None, reason=f"real CUDA compilation unavailable: {MISSING}")
def test_compile_errors_and_unlaunched_kernels_are_reported(tmp_path):
    # zero_kernel launched with a scalar where it indexes a 2-d array: the compiler must refuse it,
    # and every other kernel, never launched here, must be listed
    (tmp_path / "bad.json").write_text(json.dumps({"granular.kernels_cuda.zero_kernel": [["float64"]]}))
    _run("granular.cuda_compile", tmp_path / "bad.json", tmp_path / "out.json", "--cc", "90", sim=False)
    out = json.loads((tmp_path / "out.json").read_text())
    assert len(out["errors"]) == 1 and "zero_kernel" in out["errors"][0]
    assert "granular.kernels_cuda.force_kernel" in out["not_launched"]
