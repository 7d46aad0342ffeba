"""Launch and flag-read overheads of the CUDA backend on a real GPU (the model's host assumptions).

Measures, with the kernels and host layer of :mod:`granular.loops_cuda`: the host time of one
kernel launch (``DeviceSystem._launch`` of ``zero_kernel``, 1024 particles, queue kept busy), of
one ``force_kernel`` launch with its 16 arguments, and of one flag read (``read_flags``: drain and
copy back), each averaged over ``--repeats`` calls after a warm-up. These stand for
``launch_host_s`` and ``sync_s`` in :mod:`benchmarks.gpu_model`. Needs a GPU; without one it says
so and exits with status 3.

Run: ``python -m benchmarks.gpu_overheads [--repeats 2000] [--name gpu_overheads]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _mean_time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def measure(repeats: int) -> dict:
    import numpy as np
    from numba import cuda

    import granular
    from granular import kernels_cuda as K
    from granular.loops_cuda import DeviceSystem

    p = granular.make_packing(0.5, 0.5, n=1024, phi=0.4, seed=1)
    dev = DeviceSystem(p.position, np.zeros_like(p.position), p.radius, p.species, p.box, 0.1)
    dev.rebuild()
    lx, ly, lz = (float(v) for v in dev.box)
    sync = cuda.synchronize
    return {
        "launch_zero_kernel_s": _mean_time(lambda: dev._launch(K.zero_kernel, dev.force), repeats, sync),
        "launch_force_kernel_s": _mean_time(
            lambda: dev._launch(K.force_kernel, dev.position, dev.velocity, dev.radius, dev.species, lx,
                                ly, lz, dev.neighbours, dev.counts, 1.0, 0.0, 0, dev.force, dev.acc,
                                dev.flags, 0),
            repeats, sync),
        "flag_read_s": _mean_time(dev.read_flags, repeats, sync),
        "n": int(dev.n), "repeats": repeats, "device": _device_name(),
    }


def _device_name() -> str:
    from numba import cuda

    name = getattr(cuda.get_current_device(), "name", "")
    return name.decode() if isinstance(name, bytes) else str(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--name", default="gpu_overheads", help="results/<name>.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    from granular.backend import gpu_present

    if not gpu_present():
        print("no CUDA GPU here (or the simulator is on): nothing measured", file=sys.stderr)
        return 3
    from benchmarks.harness import Report, write_results

    result = measure(args.repeats)
    report = Report(args.name, notes={"load": os.getloadavg()})
    report.add(**result)
    for key, value in result.items():
        print(f"{key:24s} {value * 1e6:.2f} us" if key.endswith("_s") else f"{key:24s} {value}")
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
