"""`webdataset:GLOB`: tar shards read in place, samples grouped by key as webdataset does.

A member `dir/KEY.EXT` belongs to the sample `dir/KEY` (the key is the name up to the first dot
of its base name; the extension is the rest, lower-cased), and consecutive members with one key
form one sample, as `webdataset`'s `group_by_keys`. Each sample needs an image member (`.png`,
`.jpg`, `.jpeg`, `.webp`, ...; the first of IMAGE_EXTENSIONS it has) and may have a label: `.cls`
(the label as text) or `.json` (an object with a `label` or `cls` field). When no sample has a
label every label is 0; when some have one, a sample without is a bad sample (as is an
undecodable image), which `on_bad_file` stops at or skips. Other members (`.txt` captions, ...)
are kept with their sample and exported with it.

Only plain (uncompressed) tar files are read in place: a member's bytes are read by seeking to
its offset, so a chunk reads just its rows. No webdataset install is needed (Python's tarfile).
Rows are named by `shard` (its absolute path) and `key`."""

from __future__ import annotations

import json
import logging
import os
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaprune.data.members import (
    MemberDataset,
    MemberImages,
    check_image_bytes,
    common_root,
    compound_ids,
    expand_glob,
    image_layout,
    labels_from_values,
    report_bad,
)
from adaprune.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "ppm", "pgm", "bmp", "tif", "tiff", "gif")
SHARD_SUFFIXES = (".tar",)
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")  # webdataset's base_plus_ext


@dataclass(frozen=True)
class ShardSample:
    """One sample of a shard as indexed: its key, where its image bytes lie, its label text."""

    key: str
    members: tuple[str, ...]  # member names, shard order
    image_offset: int = -1
    image_size: int = 0
    label: str | None = None
    problem: str | None = None  # why the sample is bad (None: it is fine)


def split_name(name: str) -> tuple[str, str] | None:
    """(key, extension) of a member name, as webdataset splits it; None for a name without one."""
    m = _KEY_RE.match(name)
    return (m.group(1), m.group(2).lower()) if m else None


def _label_of(ext_bytes: dict[str, bytes]) -> tuple[str | None, str | None]:
    """(label text, problem) from a sample's .cls or .json member."""
    if "cls" in ext_bytes:
        try:
            return ext_bytes["cls"].decode("utf-8").strip(), None
        except UnicodeDecodeError:
            return None, "its .cls member is not UTF-8 text"
    if "json" in ext_bytes:
        try:
            doc = json.loads(ext_bytes["json"])
        except (UnicodeDecodeError, ValueError):
            return None, "its .json member is not valid JSON"
        if isinstance(doc, dict):
            for name in ("label", "cls"):
                if name in doc and doc[name] is not None and not isinstance(doc[name], (dict, list)):
                    return str(doc[name]), None
    return None, None


def index_shard(path: Path) -> list[ShardSample]:
    """Every sample of one shard, in shard order, each image read once and checked."""
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed by the with below)
    except tarfile.ReadError as exc:
        raise DataError(f"shard {str(path)!r} is not a plain tar file ({exc}); compressed shards cannot be read "
                        "in place: decompress them first") from None
    except OSError as exc:
        raise DataError(f"shard {str(path)!r} is not readable: {exc}") from None
    samples: list[ShardSample] = []
    seen: set[str] = set()
    with tar:
        current: str | None = None
        members: list[tarfile.TarInfo] = []

        def finish() -> None:
            if current is None:
                return
            if current in seen:
                raise DataError(f"shard {str(path)!r}: key {current!r} appears in two places; webdataset groups "
                                "consecutive members, so a sample's members must be adjacent")
            seen.add(current)
            samples.append(_sample(tar, current, members))

        for info in tar:
            if not info.isfile():
                continue
            parts = split_name(info.name)
            if parts is None:
                continue
            key, _ = parts
            if key != current:
                finish()
                current, members = key, []
            members.append(info)
        finish()
    return samples


def _sample(tar: tarfile.TarFile, key: str, members: list[tarfile.TarInfo]) -> ShardSample:
    by_ext: dict[str, tarfile.TarInfo] = {}
    for info in members:
        by_ext.setdefault(split_name(info.name)[1], info)  # type: ignore[index]
    names = tuple(m.name for m in members)
    small = {}
    for ext in ("cls", "json"):
        if ext in by_ext:
            small[ext] = tar.extractfile(by_ext[ext]).read()  # type: ignore[union-attr]
    label, problem = _label_of(small)
    image = next((by_ext[e] for e in IMAGE_EXTENSIONS if e in by_ext), None)
    if image is None:
        return ShardSample(key, names, problem=f"no image member (looked for .{', .'.join(IMAGE_EXTENSIONS)})",
                           label=label)
    data = tar.extractfile(image).read()  # type: ignore[union-attr]
    bad = check_image_bytes(data)
    return ShardSample(key, names, image.offset_data, image.size, label, problem=bad or problem)


@dataclass(frozen=True)
class TarStore:
    """Image bytes at (shard, offset, size) for every row; a fetch opens each shard once."""

    shards: tuple[str, ...]
    shard_of: np.ndarray  # int32 per row
    offset: np.ndarray  # int64 per row
    size: np.ndarray  # int64 per row

    def __len__(self) -> int:
        return len(self.shard_of)

    def fetch(self, rows: np.ndarray) -> list[bytes | DataError]:
        rows = np.asarray(rows, dtype=np.int64)
        out: list[bytes | DataError] = [b""] * len(rows)
        order = np.lexsort((self.offset[rows], self.shard_of[rows]))  # each shard once, read forwards
        for s in np.unique(self.shard_of[rows]):
            mine = order[self.shard_of[rows[order]] == s]
            try:
                with open(self.shards[int(s)], "rb") as handle:
                    for j in mine:
                        handle.seek(int(self.offset[rows[j]]))
                        out[j] = handle.read(int(self.size[rows[j]]))
            except OSError as exc:
                for j in mine:
                    out[j] = DataError(f"shard {self.shards[int(s)]!r} is not readable: {exc}")
        return out

    def subset(self, start: int, stop: int) -> TarStore:
        return TarStore(self.shards, self.shard_of[start:stop], self.offset[start:stop], self.size[start:stop])

    def containers(self) -> tuple[str, ...]:
        return self.shards


def load_webdataset(pattern: str, *, on_bad_file: str = "stop", workers: int | None = None) -> MemberDataset:
    """`webdataset:GLOB` as a Dataset whose `x` is a MemberImages (nothing decoded yet)."""
    if not pattern:
        raise ConfigError("data source 'webdataset' needs a glob of .tar shards: webdataset:DIR/*.tar")
    shards = expand_glob(pattern, what="webdataset glob", suffixes=SHARD_SUFFIXES)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        indexed = list(pool.map(index_shard, shards))
    labelled = any(s.label is not None for samples in indexed for s in samples)
    bad: list[tuple[str, str]] = []
    rows: list[tuple[int, ShardSample]] = []
    for k, samples in enumerate(indexed):
        for s in samples:
            problem = s.problem or ("missing label (.cls or .json {\"label\": ...}) where other samples have one"
                                    if labelled and s.label is None else None)
            if problem:
                bad.append((f"{shards[k]}:{s.key}", problem))
            else:
                rows.append((k, s))
    n_found = sum(len(s) for s in indexed)
    if n_found == 0:
        raise DataError(f"webdataset glob {pattern!r}: the shards hold no samples")
    report_bad(bad, source=pattern, on_bad_file=on_bad_file, n_total=n_found)
    shard_of = np.array([k for k, _ in rows], dtype=np.int32)
    store = TarStore(tuple(str(q) for q in shards), shard_of, np.array([s.image_offset for _, s in rows], np.int64),
                     np.array([s.image_size for _, s in rows], np.int64))
    names = [f"{shards[k]}:{s.key}" for k, s in rows]
    if labelled:
        y, class_names = labels_from_values([s.label for _, s in rows], what=f"webdataset {pattern!r}")
    else:
        y, class_names = np.zeros(len(rows), dtype=np.int64), None
    channels, size = image_layout(store.fetch(np.array([0]))[0])  # type: ignore[arg-type]
    bounds = tuple(int(b) for b in np.flatnonzero(np.diff(shard_of)) + 1)
    log.info("webdataset %s: %d samples in %d shards (%d bad)", pattern, len(rows), len(shards), len(bad))
    return MemberDataset(
        name=Path(common_root(shards)).name or "webdataset",
        x=MemberImages(store, names, size=size, channels=channels, workers=workers),
        y=y, class_names=class_names, source_paths=tuple(str(q) for q in shards),
        ids=compound_ids("shard+key", [str(shards[k]) for k, _ in rows], [s.key for _, s in rows]),
        id_root=common_root(shards), skipped=tuple(name for name, _ in bad), id_column="shard+key",
        chunk_bounds=bounds,
    )


# ---------------------------------------------------------------- export
def write_kept_shards(kept: dict[str, set[str]], *, root: str, target: Path) -> tuple[int, int]:
    """For every shard in `kept` (shard path -> kept keys), a new shard of the same relative name
    under `target` holding exactly the kept samples' members (headers and bytes as they were, in
    shard order). Returns (shards written, samples written)."""
    n_shards = n_samples = 0
    for shard in sorted(kept):
        keys = kept[shard]
        rel = relative_to_root(Path(shard), Path(root))
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        found: set[str] = set()
        try:
            src = tarfile.open(shard, mode="r:")  # noqa: SIM115 (closed by the with below)
        except (OSError, tarfile.ReadError) as exc:
            raise DataError(f"shard {shard!r} is not readable: {exc}") from None
        with src, tarfile.open(dst, mode="w", format=src.format or tarfile.DEFAULT_FORMAT) as out:
            for info in src:
                parts = split_name(info.name) if info.isfile() else None
                if parts is None or parts[0] not in keys:
                    continue
                found.add(parts[0])
                out.addfile(info, src.extractfile(info))
        missing = keys - found
        if missing:
            raise DataError(f"shard {shard!r} no longer holds {len(missing)} kept samples (first: "
                            f"{sorted(missing)[0]!r}); it changed since the selection was made")
        n_shards += 1
        n_samples += len(found)
    return n_shards, n_samples


def relative_to_root(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        raise DataError(f"container {str(path)!r} is not under the source folder {str(root)!r}") from None
