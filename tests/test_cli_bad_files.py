"""Command-line fuzz: bad input files and impossible outputs in every command group.

Every command that reads a file gets missing, empty, junk, truncated and wrong-schema files, and
every command that writes gets an output path that cannot be made. Each invocation must end with
exit status 2, one line on stderr naming the problem, no traceback, and no output file left behind.
The invocations run in-process through :func:`jamwave.cli.main` (a few through a subprocess, to
check what a user's shell sees).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from granular.diagram import point_name
from granular.generate import make_packing
from granular.h5md import write_packing
from jamwave.cli import main
from tests.surrogate_wavefile import write_wave_file

IMPOSSIBLE_DIR = "/proc/jamwave-cannot-exist"


def _junk(path: Path, kind: str, good: Path | None) -> None:
    """Write one kind of bad file at ``path`` (``good`` is a valid file of the expected kind)."""
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not an HDF5 file\n" * 20)
    elif kind == "binary":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "hdf5_signature_only":  # HDF5 signature, then garbage
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(2000))
    elif kind == "truncated_half":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "scrambled":  # full length, but the second half overwritten: damaged chunks/metadata
        data = bytearray(good.read_bytes())
        half = len(data) // 2
        data[half:] = np.random.default_rng(2).bytes(len(data) - half)
        path.write_bytes(bytes(data))
    elif kind == "truncated_head":
        path.write_bytes(good.read_bytes()[:700])
    elif kind == "one_array":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(10.0)
    elif kind == "h5md_no_particles":
        with h5py.File(path, "w") as f:
            f.create_group("h5md").attrs["version"] = [1, 1]
    elif kind == "wave_dataset":
        write_wave_file(path, samples=1, frames=4, n=8)
    elif kind in ("wave_u_group", "wave_u_text"):  # right schema, /fields/u of the wrong kind
        write_wave_file(path, samples=1, frames=4, n=8)
        with h5py.File(path, "a") as f:
            del f["fields/u"]
            if kind == "wave_u_group":
                f.create_group("fields/u")
            else:
                f["fields/u"] = np.full((1, 4, 8, 8), "x", dtype="S1")
    elif kind == "wave_short":  # the right schema, too few frames for next-frame training
        write_wave_file(path, samples=1, frames=2, n=8)
    elif kind == "packing":
        write_packing(path, make_packing(1.0, 0.0, n=20, phi=0.3, seed=0))
    elif kind in ("packing_no_box", "packing_nan"):  # H5MD packing with a broken piece
        write_packing(path, make_packing(1.0, 0.0, n=20, phi=0.3, seed=0), results={"k_n": 1.0})
        with h5py.File(path, "a") as f:
            if kind == "packing_no_box":
                del f["particles/all/box"]
            else:
                f["particles/all/position/value"][0, 3, 1] = np.nan
    elif kind == "empty_hdf5":
        h5py.File(path, "w").close()
    elif kind == "json_junk":
        path.write_text("{not json")
    elif kind == "json_dict":
        path.write_text(json.dumps({"format": "something else"}))
    elif kind == "json_bad_entries":
        path.write_text(json.dumps([{"K_star": "stiff", "phi": 0.6}]))
    elif kind == "json_numbers":
        path.write_text(json.dumps([1, 2, 3]))
    elif kind == "torch_list":
        import torch

        torch.save([1, 2, 3], path)
    elif kind == "torch_bad_config":
        import torch

        torch.save({"format": "jamwave.surrogate/1", "config": {"bogus": 1}, "state_dict": {}}, path)
    elif kind == "torch_no_state":
        import torch

        torch.save({"format": "jamwave.surrogate/1", "config": {"width": 2, "depth": 1}}, path)
    elif kind == "directory":
        path.mkdir()
    elif kind != "missing":
        raise AssertionError(kind)


H5_KINDS = ["missing", "empty", "text", "binary", "hdf5_signature_only", "truncated_half",
            "truncated_head", "scrambled", "one_array", "empty_hdf5", "directory"]
PACKING_KINDS = H5_KINDS + ["h5md_no_particles", "wave_dataset", "packing_no_box", "packing_nan"]
WAVE_KINDS = H5_KINDS + ["packing", "h5md_no_particles"]
MODEL_KINDS = ["missing", "empty", "text", "binary", "truncated_half", "one_array", "torch_list",
               "torch_bad_config", "torch_no_state", "directory"]
JSON_KINDS = ["empty", "text", "binary", "json_junk", "json_dict", "json_bad_entries", "json_numbers"]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid inputs: a packing (with modulus), a wave dataset, a model, a pruning history."""
    import torch  # noqa: F401 - imported once here, not timed inside an invocation

    from granular.h5md import append_group
    from surrogate.io import save
    from surrogate.models import build_model

    root = tmp_path_factory.mktemp("good")
    packing = write_packing(root / "packing.h5", make_packing(1.0, 0.0, n=20, phi=0.3, seed=0),
                            results={"k_n": 1.0, "phi": 0.3}, parameters={"law": {"k_n": 1.0}})
    append_group(packing, "modulus", {"K": 0.5, "K_star": 0.5})
    wave = Path(write_wave_file(root / "wave.h5", samples=2, frames=6, n=8))
    model = save(build_model(width=2, depth=1, kernel_size=3, seed=0), root / "model.pt")
    return {"packing": packing, "wave": wave, "model": model, "root": root}


def _cases():
    """(id, argv template, slot kinds): {BAD} is the bad file, {OUT} the output folder."""
    cases = []
    for kind in PACKING_KINDS:
        cases.append((f"show-{kind}", ["granular", "show", "{BAD}", "--png", "{OUT}/s.png"], kind, "packing"))
        cases.append((f"modulus-{kind}", ["granular", "modulus", "--in", "{BAD}"], kind, "packing"))
        if kind != "missing":  # a missing point file is simply computed
            cases.append((f"diagram-{kind}", ["granular", "diagram", "--delta", "1", "--xs", "0", "--seeds",
                                              "1", "--n", "20", "--out", "{OUT}", "--put-bad-at",
                                              point_name(1.0, 0.0, 0)], kind, "packing"))
        cases.append((f"dataset-granular-{kind}",
                      ["wavefe", "dataset", "--speed", "granular", "--granular", "{BAD}", "--samples", "1",
                       "--grid", "8", "--frames", "3", "--workers", "1", "--out", "{OUT}/d.h5"],
                      kind, "packing"))
        cases.append((f"splits-granular-{kind}",
                      ["wavefe", "splits", "--speed", "granular", "--granular", "{GOOD_PACKING}", "{BAD}",
                       "--train", "1", "--val", "0", "--test", "0", "--grid", "8", "--frames", "3",
                       "--workers", "1", "--out", "{OUT}/splits"], kind, "packing"))
    for kind in JSON_KINDS:
        cases.append((f"dataset-json-{kind}",
                      ["wavefe", "dataset", "--speed", "granular", "--granular", "{BAD}", "--samples",
                       "1", "--grid", "8", "--frames", "3", "--workers", "1", "--out", "{OUT}/d.h5"],
                      kind, "json"))
        cases.append((f"solve-json-{kind}",
                      ["wavefe", "solve", "--speed", "granular", "--granular", "{BAD}", "--grid", "8",
                       "--frames", "3", "--out", "{OUT}/s.png"], kind, "json"))
        cases.append((f"compare-pruning-{kind}",
                      ["surrogate", "compare-pruning", "{BAD}", "--out", "{OUT}/c.png"], kind, "json"))
    cases.append(("dataset-granular-no-modulus",  # a valid packing whose modulus was never measured
                  ["wavefe", "dataset", "--speed", "granular", "--granular", "{BAD}", "--samples", "1",
                   "--grid", "8", "--frames", "3", "--workers", "1", "--out", "{OUT}/d.h5"],
                  "packing", "packing"))
    for kind in WAVE_KINDS + ["wave_u_group", "wave_u_text"]:
        cases.append((f"export-{kind}", ["wavefe", "export", "--format", "the-well", "--train", "{BAD}",
                                         "--out", "{OUT}/well"], kind, "wave"))
    for kind in WAVE_KINDS + ["wave_short", "wave_u_group", "wave_u_text"]:
        cases.append((f"train-data-{kind}", ["surrogate", "train", "--data", "{BAD}", "--val", "{GOOD_WAVE}",
                                             "--out", "{OUT}/m.pt", "--width", "2", "--depth", "1"],
                      kind, "wave"))
        cases.append((f"train-val-{kind}", ["surrogate", "train", "--data", "{GOOD_WAVE}", "--val", "{BAD}",
                                            "--out", "{OUT}/m.pt", "--width", "2", "--depth", "1"],
                      kind, "wave"))
        cases.append((f"evaluate-data-{kind}", ["surrogate", "evaluate", "--model", "{GOOD_MODEL}",
                                                "--data", "{BAD}", "--out", "{OUT}/e.json"], kind, "wave"))
        cases.append((f"prune-data-{kind}", ["surrogate", "prune", "--model", "{GOOD_MODEL}", "--data",
                                             "{BAD}", "--val", "{GOOD_WAVE}", "--out", "{OUT}/p"],
                      kind, "wave"))
        cases.append((f"prune-val-{kind}", ["surrogate", "prune", "--model", "{GOOD_MODEL}", "--data",
                                            "{GOOD_WAVE}", "--val", "{BAD}", "--out", "{OUT}/p"],
                      kind, "wave"))
    for kind in MODEL_KINDS:
        if kind not in ("missing", "directory"):  # resume files: a damaged checkpoint is refused
            cases.append((f"train-checkpoint-{kind}", ["surrogate", "train", "--data", "{GOOD_WAVE}", "--val",
                                                       "{GOOD_WAVE}", "--out", "{OUT}/m.pt", "--width", "2",
                                                       "--depth", "1", "--put-bad-at", "m.pt.ckpt"],
                          kind, "model"))
            cases.append((f"prune-checkpoint-{kind}", ["surrogate", "prune", "--model", "{GOOD_MODEL}",
                                                       "--data", "{GOOD_WAVE}", "--val", "{GOOD_WAVE}",
                                                       "--out", "{OUT}", "--put-bad-at", "checkpoint.pt"],
                          kind, "model"))
        cases.append((f"evaluate-model-{kind}", ["surrogate", "evaluate", "--model", "{BAD}", "--data",
                                                 "{GOOD_WAVE}", "--out", "{OUT}/e.json"], kind, "model"))
        cases.append((f"prune-model-{kind}", ["surrogate", "prune", "--model", "{BAD}", "--data",
                                              "{GOOD_WAVE}", "--val", "{GOOD_WAVE}", "--out", "{OUT}/p"],
                      kind, "model"))
    return cases


def _impossible_outputs():
    """Outputs that cannot be written: under /proc, under a regular file, onto a folder."""
    cases = []
    for where in ("proc", "under_file"):
        out = IMPOSSIBLE_DIR + "/x" if where == "proc" else "{FILE}/x"
        cases += [
            (f"jam-{where}", ["granular", "jam", "--delta", "1", "--xs", "0", "--n", "20", "--out",
                              out + "/p.h5"]),
            (f"show-{where}", ["granular", "show", "{GOOD_PACKING}", "--png", out + "/s.png"]),
            (f"diagram-{where}", ["granular", "diagram", "--delta", "1", "--xs", "0", "--seeds", "1",
                                  "--n", "20", "--out", out]),
            (f"dataset-{where}", ["wavefe", "dataset", "--samples", "1", "--grid", "8", "--frames", "3",
                                  "--workers", "1", "--out", out + "/d.h5"]),
            (f"splits-{where}", ["wavefe", "splits", "--train", "1", "--val", "0", "--test", "0", "--grid",
                                 "8", "--frames", "3", "--workers", "1", "--out", out]),
            (f"solve-{where}", ["wavefe", "solve", "--grid", "8", "--frames", "3", "--out", out + "/s.png"]),
            (f"export-{where}", ["wavefe", "export", "--format", "the-well", "--train", "{GOOD_WAVE}",
                                 "--out", out]),
            (f"train-{where}", ["surrogate", "train", "--data", "{GOOD_WAVE}", "--val", "{GOOD_WAVE}",
                                "--out", out + "/m.pt", "--width", "2", "--depth", "1"]),
            (f"evaluate-{where}", ["surrogate", "evaluate", "--model", "{GOOD_MODEL}", "--data",
                                   "{GOOD_WAVE}", "--out", out + "/e.json"]),
            (f"prune-{where}", ["surrogate", "prune", "--model", "{GOOD_MODEL}", "--data", "{GOOD_WAVE}",
                                "--val", "{GOOD_WAVE}", "--out", out]),
            (f"compare-{where}", ["surrogate", "compare-pruning", "{HISTORY}", "--out", out + "/c.png"]),
            (f"demo-{where}", ["demo", "--out", out]),
        ]
    cases += [
        ("jam-onto-folder", ["granular", "jam", "--delta", "1", "--xs", "0", "--n", "20", "--out", "{DIR}",
                             "--force"]),
        ("dataset-onto-folder", ["wavefe", "dataset", "--samples", "1", "--grid", "8", "--frames", "3",
                                 "--workers", "1", "--out", "{DIR}", "--force"]),
        ("evaluate-onto-folder", ["surrogate", "evaluate", "--model", "{GOOD_MODEL}", "--data", "{GOOD_WAVE}",
                                  "--out", "{DIR}", "--force"]),
        ("modulus-no-law", ["granular", "modulus", "--in", "{NO_LAW}"]),
        ("modulus-law-disagrees", ["granular", "modulus", "--in", "{GOOD_PACKING_COPY}", "--k-n", "3"]),
    ]
    return cases


def run_in_process(argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``jamwave ARGV``; an escaping exception is a failure (a traceback)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    return status, err.getvalue()


def check_one_line(status: int, err: str, words: list[str]) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert "error" in lines[0], err
    assert any(w in lines[0] for w in words), (words, err)


def _fill(argv, mapping):
    out = []
    for a in argv:
        for key, value in mapping.items():
            a = a.replace("{" + key + "}", str(value))
        out.append(a)
    return out


def _put_bad(argv, bad: Path, out: Path) -> list[str]:
    """``--put-bad-at NAME``: the bad file becomes OUT/NAME (a resume file the command reads)."""
    i = argv.index("--put-bad-at")
    bad.rename(out / argv[i + 1])
    return argv[:i] + argv[i + 2:]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_file(tmp_path, good, case):
    name, template, kind, expected = case
    out = tmp_path / "out"
    out.mkdir()
    suffix = ".json" if expected == "json" else ""
    bad = tmp_path / f"bad_{kind}{suffix}"
    good_file = {"packing": good["packing"], "wave": good["wave"], "model": good["model"]}.get(expected)
    _junk(bad, kind, good_file)
    argv = _fill(template, {"BAD": bad, "OUT": out, "GOOD_PACKING": good["packing"],
                            "GOOD_WAVE": good["wave"], "GOOD_MODEL": good["model"]})
    named = bad.name
    if "--put-bad-at" in argv:
        named = argv[argv.index("--put-bad-at") + 1]
        argv = _put_bad(argv, bad, out)
    before = sorted(p.name for p in out.iterdir())
    status, err = run_in_process(argv)
    check_one_line(status, err, [named])
    assert sorted(p.name for p in out.iterdir()) == before, "an output was left behind"


IMPOSSIBLE = _impossible_outputs()


@pytest.mark.parametrize("case", IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
def test_impossible_output(tmp_path, good, case):
    name, template = case
    plain = tmp_path / "a_file"
    plain.write_text("x")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    history = tmp_path / "history.json"
    history.write_text(json.dumps({"format": "jamwave.pruning_history/1", "entries": []}))
    no_law = write_packing(tmp_path / "no_law.h5", make_packing(1.0, 0.0, n=20, phi=0.3, seed=0))
    copy = tmp_path / "copy.h5"
    copy.write_bytes(Path(good["packing"]).read_bytes())
    argv = _fill(template, {"FILE": plain, "DIR": folder, "GOOD_PACKING_COPY": copy,
                            "GOOD_PACKING": good["packing"], "GOOD_WAVE": good["wave"],
                            "GOOD_MODEL": good["model"], "HISTORY": history, "NO_LAW": no_law})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    status, err = run_in_process(argv)
    check_one_line(status, err, [IMPOSSIBLE_DIR, plain.name, folder.name, "--k-n", "--out"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "an output was left behind"


def test_enough_invocations():
    assert len(CASES) + len(IMPOSSIBLE) >= 150


@pytest.mark.parametrize("args", [
    ["granular", "show", "{BAD}"],
    ["wavefe", "dataset", "--speed", "granular", "--granular", "{BAD}", "--samples", "1", "--out", "{OUT}"],
    ["surrogate", "evaluate", "--model", "{BAD}", "--data", "{BAD}", "--out", "{OUT}"],
])
def test_subprocess_sees_one_line(tmp_path, args):
    bad = tmp_path / "junk.h5"
    bad.write_text("junk")
    argv = _fill(args, {"BAD": bad, "OUT": tmp_path / "o.h5"})
    done = subprocess.run([sys.executable, "-m", "jamwave.cli", *argv], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "junk.h5" in done.stderr
    assert not (tmp_path / "o.h5").exists()
