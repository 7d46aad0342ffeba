"""The ``jamwave`` command line: help at every level, version, one-line errors with status 2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from jamcommon import __version__
from jamwave.argtypes import bounded_float, bounded_int, float_list
from jamwave.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jamwave.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_groups():
    out = run_cli("--help")
    assert out.returncode == 0
    for group in ("granular", "wavefe", "surrogate", "demo"):
        assert group in out.stdout


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert __version__ in out.stdout


@pytest.mark.parametrize("group", ["granular", "wavefe", "surrogate", "demo"])
def test_group_help(group):
    out = run_cli(group, "--help")
    assert out.returncode == 0
    assert "usage: jamwave " + group in out.stdout


def test_unknown_group_is_one_line_error():
    out = run_cli("nonsense")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "invalid choice" in out.stderr


def test_missing_group_exits_2():
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_bounded_float_names_the_interval():
    parse = bounded_float(0, 1, lo_open=True)
    assert parse("0.5") == 0.5
    assert parse("1") == 1.0
    import argparse

    for bad, fragment in [("0", "(0, 1]"), ("1.5", "(0, 1]"), ("nan", "finite"), ("x", "number")]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(fragment)):
            parse(bad)


def test_bounded_int_and_lists():
    import argparse

    assert bounded_int(1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"\[1, inf\)"):
        bounded_int(1)("0")
    assert float_list(0, 1)("0:0.2:0.05") == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert float_list(0, 1)("0.15,0.3") == [0.15, 0.3]
    with pytest.raises(argparse.ArgumentTypeError):
        float_list(0, 1)("0.5,2")
