"""The end-to-end demo pipeline behind ``jamwave demo``.

Stages (each writes files the next one reads, so any stage reruns alone and a killed run resumes):
packings and jamming -> bulk modulus -> granular speed map -> wave dataset -> dense and CP
surrogates -> SAP and lottery-ticket pruning -> report.
"""

from __future__ import annotations

from pathlib import Path


def run_demo(out, *, size="small", backend="auto", scheduler=None, workers=None, seed=0,
             force=False, progress=False) -> Path:
    """Run the demo into folder ``out`` and return the path of its report."""
    raise NotImplementedError(
        "the demo pipeline is assembled as the granular, wavefe and surrogate stages land"
    )
