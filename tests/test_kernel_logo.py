"""The `direng` kernelspec's logo: an SVG and the PNGs rendered from it, shipped and installed."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from direng_kernel.kernel.install import kernelspec_dir

BIN = Path(sys.executable).parent
LOGOS = {"logo-32x32.png": 32, "logo-64x64.png": 64}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_package_ships_the_logo_files():
    spec = Path(kernelspec_dir())
    for name, side in LOGOS.items():
        assert png_size((spec / name).read_bytes()) == (side, side)
    svg = ET.parse(spec / "logo-svg.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("viewBox") == "0 0 64 64"
    text = (spec / "logo-svg.svg").read_text(encoding="utf-8")
    assert "<script" not in text and "href" not in text  # self-contained: nothing to fetch


def test_jupyter_lists_the_direng_kernel_with_its_logo():
    out = subprocess.run([str(BIN / "jupyter"), "kernelspec", "list", "--json"], capture_output=True, text=True,
                         check=True).stdout
    installed = Path(json.loads(out)["kernelspecs"]["direng"]["resource_dir"])
    shipped = Path(kernelspec_dir())
    for name in [*LOGOS, "logo-svg.svg"]:
        assert (installed / name).read_bytes() == (shipped / name).read_bytes(), name
    # what JupyterLab's launcher gets: jupyter_server lists logo-* files as the spec's resources
    from jupyter_server.services.kernelspecs.handlers import kernelspec_model

    class Handler:
        base_url = "/"

    model = kernelspec_model(Handler(), "direng", {"display_name": "DirEng"}, str(installed))
    assert set(model["resources"]) >= {"logo-32x32", "logo-64x64", "logo-svg"}
