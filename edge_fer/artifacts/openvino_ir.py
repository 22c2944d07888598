"""Writing an OpenVINO IR atomically, byte-identical for identical inputs (quantize and build both write IRs)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edge_fer.artifacts.atomic import staging_dir
from edge_fer.artifacts.errors import EdgeFerError


def save_ir(model, out_xml: Path, props: dict[str, str]) -> None:
    """``openvino.save_model`` to a temp folder beside ``out_xml``, then rename .bin and .xml into place."""
    import openvino as ov

    if not out_xml.parent.is_dir():
        raise EdgeFerError(f"{out_xml}: folder {out_xml.parent} does not exist; "
                           "create it or choose another output path")
    for key, value in props.items():
        model.set_rt_info(value, key)
    # NNCF's new nodes get process-global auto names (Constant_106182): renumber them by graph order
    # so identical inputs give a byte-identical .xml
    for i, op in enumerate(model.get_ordered_ops()):
        if re.fullmatch(r"[A-Za-z]+_\d+", op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{i}")
    with staging_dir(out_xml) as tmp:
        ov.save_model(model, str(tmp / out_xml.name), compress_to_fp16=False)
        os.replace(tmp / out_xml.with_suffix(".bin").name, out_xml.with_suffix(".bin"))
        os.replace(tmp / out_xml.name, out_xml)
