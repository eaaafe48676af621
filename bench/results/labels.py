"""Labels read off stored rows of any kind: a row's quantization and the machine it ran on.

Pure functions on the dicts the store hands back; the Results tab, the transfer summary and the
scorecard label rows the same way.
"""

from __future__ import annotations


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
