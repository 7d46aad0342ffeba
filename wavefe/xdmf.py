"""XDMF side-car so ParaView opens a wave dataset's sample as a time series.

The side-car points into the HDF5 file (relative path): geometry ``/mesh/points``, topology
``/mesh/cells`` (the FE triangles), and per frame a hyperslab of ``/fields/u`` (node-centred,
``u``) plus the speed ``/fields/c`` of the same sample. Open it in ParaView with the XDMF reader.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import h5py

from jamcommon.files import atomic_write_text


def _slab(h5name: str, dataset: str, full: tuple, start: tuple, count: tuple) -> str:
    ones = " ".join("1" for _ in full)
    return (
        f'<DataItem ItemType="HyperSlab" Dimensions="{" ".join(map(str, count))}" Type="HyperSlab">'
        f'<DataItem Dimensions="3 {len(full)}" Format="XML">{" ".join(map(str, start))} {ones} '
        f'{" ".join(map(str, count))}</DataItem>'
        f'<DataItem Dimensions="{" ".join(map(str, full))}" NumberType="Float" Precision="4" '
        f'Format="HDF">{escape(h5name)}:{dataset}</DataItem></DataItem>'
    )


def xdmf_text(h5path, sample: int = 0) -> str:
    """The XDMF 3 document for ``sample`` of the dataset at ``h5path``."""
    h5path = Path(h5path)
    with h5py.File(h5path, "r") as f:
        n, F, ny, nx = f["fields/u"].shape
        if not 0 <= sample < n:
            raise ValueError(f"sample must be in [0, {n - 1}], got {sample}")
        times = f["t"][:]
        n_nodes = f["mesh/points"].shape[0]
        n_cells = f["mesh/cells"].shape[0]
    name = h5path.name
    geometry = (f'<Geometry GeometryType="XY"><DataItem Dimensions="{n_nodes} 2" NumberType="Float" '
                f'Precision="8" Format="HDF">{escape(name)}:/mesh/points</DataItem></Geometry>')
    topology = (f'<Topology TopologyType="Triangle" NumberOfElements="{n_cells}"><DataItem '
                f'Dimensions="{n_cells} 3" NumberType="Int" Precision="8" Format="HDF">'
                f'{escape(name)}:/mesh/cells</DataItem></Topology>')
    c_attr = ('<Attribute Name="c" AttributeType="Scalar" Center="Node">'
              + _slab(name, "/fields/c", (n, ny, nx), (sample, 0, 0), (1, ny, nx)) + "</Attribute>")
    grids = []
    for k, t in enumerate(times):
        u_attr = ('<Attribute Name="u" AttributeType="Scalar" Center="Node">'
                  + _slab(name, "/fields/u", (n, F, ny, nx), (sample, k, 0, 0), (1, 1, ny, nx))
                  + "</Attribute>")
        grids.append(f'<Grid Name="frame_{k}" GridType="Uniform"><Time Value="{float(t)!r}"/>'
                     f"{topology}{geometry}{u_attr}{c_attr}</Grid>")
    body = "\n".join(grids)
    return ('<?xml version="1.0" ?>\n<Xdmf Version="3.0">\n<Domain>\n'
            f'<Grid Name="sample_{sample}" GridType="Collection" CollectionType="Temporal">\n'
            f"{body}\n</Grid>\n</Domain>\n</Xdmf>\n")


def write_xdmf(h5path, sample: int = 0, out=None, *, overwrite: bool = False) -> Path:
    """Write the side-car (default ``<h5path without .h5>.xdmf``, or ``..._s<sample>.xdmf``)."""
    h5path = Path(h5path)
    if out is None:
        suffix = ".xdmf" if sample == 0 else f"_s{sample}.xdmf"
        out = h5path.with_name(h5path.stem + suffix)
    out = Path(out)
    if out.parent.resolve() != h5path.parent.resolve():
        raise ValueError("out must be in the same folder as the HDF5 file (relative reference)")
    atomic_write_text(out, xdmf_text(h5path, sample), overwrite=overwrite)
    out.chmod(0o644)
    return out
