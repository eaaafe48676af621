"""LM Studio's models folder, read in place: GGUF files and MLX folders in its publisher/repo layout.

LM Studio finds a model only two folders down (`<models>/<publisher>/<repo>/<file>`,
lmstudio-bug-tracker#406), in `~/.lmstudio/models`, in the older `~/.cache/lm-studio/models`, or in the
folder its settings name (`downloadsFolder` in `<home>/settings.json`, where `<home>` is ~/.lmstudio or
the folder named by `~/.lmstudio-home-pointer`). Names: `lmstudio:PUBLISHER/REPO:QUANT` for a GGUF (the
quant from the file name; the file stem where two files share one), `lmstudio:PUBLISHER/REPO` for an MLX
folder. Vision projectors (`mmproj-*.gguf`) sit beside their model and are not models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from models.stores.entry import ModelEntry
from models.stores.headers import (
    entry_for_folder,
    entry_for_gguf,
    flush_cache,
    folder_format,
    incomplete_entry,
    incomplete_target,
    is_later_shard,
    quant_from_filename,
)

SOURCE = "lmstudio"


def home() -> Path:
    """LM Studio's data folder: the one `~/.lmstudio-home-pointer` names, else ~/.lmstudio."""
    pointer = Path.home() / ".lmstudio-home-pointer"
    try:
        named = pointer.read_text().strip()
    except OSError:
        named = ""
    return Path(named).expanduser() if named else Path.home() / ".lmstudio"


def settings_folder(data: Path | None = None) -> Path | None:
    """The models folder LM Studio's own settings name (`downloadsFolder` in settings.json), if any."""
    try:
        value = json.loads(((data or home()) / "settings.json").read_text()).get("downloadsFolder")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(value).expanduser() if isinstance(value, str) and value.strip() else None


def default_roots() -> list[Path]:
    """Existing models folders: the settings' downloadsFolder, <home>/models, ~/.lmstudio/models and the
    pre-0.3 ~/.cache/lm-studio/models, each once."""
    data = home()
    candidates = [settings_folder(data), data / "models", Path.home() / ".lmstudio" / "models"]
    candidates.append(Path.home() / ".cache" / "lm-studio" / "models")
    found: list[Path] = []
    for c in candidates:
        try:
            if c is not None and c.is_dir() and all(not c.samefile(f) for f in found):
                found.append(c)
        except OSError:
            continue
    return found


def scan(roots: list[Path] | None = None) -> list[ModelEntry]:
    """Every model two folders down in each root; unreadable folders are entries with their problem."""
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for root in default_roots() if roots is None else [Path(r) for r in roots]:
        for publisher in _folders(root, entries, f"lmstudio:{root}"):
            for repo in _folders(publisher, entries, f"lmstudio:{publisher.name}"):
                for entry in _repo(publisher.name, repo):
                    if entry.name not in seen:
                        seen.add(entry.name)
                        entries.append(entry)
    flush_cache()
    return entries


def _folders(folder: Path, entries: list[ModelEntry], name: str) -> list[Path]:
    """Sub-folders of `folder`; an unreadable one becomes an entry called `name` with the reason."""
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError as err:
        problem = f"unreadable folder {folder}: {err.strerror or err}"
        entries.append(ModelEntry(name, SOURCE, "gguf", None, problem=problem))
        return []


def _repo(publisher: str, repo: Path) -> list[ModelEntry]:
    base = f"lmstudio:{publisher}/{repo.name}"
    fmt = folder_format(repo)
    if fmt is not None:
        return [entry_for_folder(base, repo, SOURCE, fmt)]
    try:
        files = sorted(p for p in repo.rglob("*") if p.is_file())
    except OSError as err:
        return [ModelEntry(base, SOURCE, "gguf", None, problem=f"unreadable folder {repo}: {err.strerror or err}")]
    models = [
        p
        for p in files
        if p.name.lower().endswith(".gguf") and not p.name.lower().startswith("mmproj") and not is_later_shard(p)
    ]
    tags = [quant_from_filename(p) for p in models]
    entries = []
    for path, tag in zip(models, tags, strict=True):
        unique = tag is not None and tags.count(tag) == 1
        entries.append(entry_for_gguf(f"{base}:{tag if unique else path.name[:-5]}", path, SOURCE))
    for path in files:
        target = incomplete_target(path)
        if target is not None and target not in models:
            name = f"{base}:{quant_from_filename(target) or target.name[:-5]}"
            entries.append(incomplete_entry(name, path, SOURCE, "resume it in LM Studio's Downloads panel"))
    return entries
