"""Reading stored rows of any kind: a row back as its record (`from_row`), a row's quantization, and the
machine it ran on.

Pure functions on the dicts the store hands back; the Results tab, the transfer summary and the
scorecard read rows the same way.
"""

from __future__ import annotations

import dataclasses
import typing


def from_row(cls: type, row: dict):
    """The frozen dataclass `cls` rebuilt from a stored row (a dict, as the store returns it): fields the row
    lacks take the field's default, lists come back as the tuples the record holds, and what the store adds
    (run_id, created_at) or a later version removed is left out. ValueError when a field without a default
    is missing, so a foreign row never passes for a record."""
    hints = typing.get_type_hints(cls)
    values, missing = {}, []
    for f in dataclasses.fields(cls):
        if f.name not in row:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(f.name)
            continue
        value = row[f.name]
        if isinstance(value, list) and typing.get_origin(hints[f.name]) is tuple:
            value = tuple(value)
        values[f.name] = value
    if missing:
        raise ValueError(f"not a stored {cls.__name__}: no {', '.join(missing)}")
    return cls(**values)


def quant_of(row: dict) -> str:
    """A stored speed row's quantization label: `file_type`, else model_type's last word (rows stored before
    file_type existed, all from engines that write 'arch size type'), else the ladder variant."""
    if row.get("file_type"):
        return str(row["file_type"])
    if row.get("model_type"):
        return str(row["model_type"]).split(" ")[-1]
    return str(row.get("variant") or "")


def machine_label(hardware: dict) -> str:
    """'Apple M3 Max, 64 GiB RAM' from a run's stored hardware (HardwareProfile as a dict)."""
    chip = hardware.get("chip") or "unknown machine"
    ram = hardware.get("ram_bytes")
    return f"{chip}, {ram / 2**30:.0f} GiB RAM" if ram else chip
