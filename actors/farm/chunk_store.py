"""Where a batch keeps its progress: a manifest, and every encoded chunk on disk.

``DIR/.parallax/manifest.json`` records, per input, its output, what the input looked
like (size, mtime) and with which settings it was encoded, its state (running, done,
failed with the reason) and which chunks are on disk. ``DIR/.parallax/chunks/KEY/N.chunk``
holds encoded chunk N: one JSON header line, then the packets' bytes. Nothing is pickled,
every file is written to a temporary name and renamed, so a run killed at any moment
leaves either the old or the new version, and ``--resume`` re-encodes only what is not
there.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from fractions import Fraction
from typing import Any

from actors.errors import ConfigError, MediaError
from actors.farm.chunk import ENCODED_CHUNKS, EncodedChunk
from actors.types import Caps, Packet

STATE_DIR = ".parallax"
MANIFEST = "manifest.json"
LOCK = "lock"
VERSION = 1
LOCK_TIMEOUT_S = 30.0  # a killed run's workers outlive its driver by a second or two


def input_key(path: str) -> str:
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]


def lock_dir(output_dir: str, timeout: float = LOCK_TIMEOUT_S) -> int:
    """Hold DIR/.parallax/lock (returns its fd; closing it, or dying, releases it).

    One batch writes a directory at a time. The workers of a run that was killed can go
    on for a moment after their driver died; waiting for the lock lets them finish
    dying before a --resume reads what they left.
    """
    root = os.path.join(output_dir, STATE_DIR)
    try:
        os.makedirs(root, exist_ok=True)
        fd = os.open(os.path.join(root, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot keep the batch's state in {root!r} ({exc.strerror}); "
                          f"it must be a directory Parallax can write: move away what is "
                          "there or choose another --output-dir") from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise ConfigError(f"another batch is writing {output_dir!r} (its lock "
                                  f"{root}/{LOCK} is held); wait for it to end") from None
            time.sleep(0.1)


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class ChunkStore:
    """The manifest and the chunk files of one output directory."""

    def __init__(self, output_dir: str, settings_id: str) -> None:
        self.root = os.path.join(output_dir, STATE_DIR)
        self.settings_id = settings_id
        os.makedirs(os.path.join(self.root, "chunks"), exist_ok=True)
        self.path = os.path.join(self.root, MANIFEST)
        self.files: dict[str, dict[str, Any]] = {}
        if os.path.exists(self.path):
            try:
                with open(self.path) as f:
                    doc = json.load(f)
                if doc.get("version") == VERSION:
                    self.files = doc.get("files", {})
            except (OSError, ValueError):
                self.files = {}  # an unreadable manifest: start over, nothing is trusted

    # -- the manifest ---------------------------------------------------------
    def save(self) -> None:
        write_atomic(self.path, json.dumps({"version": VERSION, "files": self.files},
                                           indent=1).encode())

    def entry(self, path: str) -> dict[str, Any] | None:
        return self.files.get(os.path.abspath(path))

    def resumable(self, path: str) -> dict[str, Any] | None:
        """The entry of ``path`` if its work can be reused: same input, same settings."""
        e = self.entry(path)
        if e is None or e.get("settings") != self.settings_id:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if (e.get("size"), e.get("mtime")) != (st.st_size, st.st_mtime_ns):
            return None
        return e

    def begin(self, path: str, output: str, keep: bool) -> dict[str, Any]:
        """Start (or, with ``keep``, resume) ``path``; returns its entry."""
        old = self.resumable(path) if keep else None
        st = os.stat(path)
        entry = {"input": os.path.abspath(path), "output": output, "size": st.st_size,
                 "mtime": st.st_mtime_ns, "settings": self.settings_id, "state": "running",
                 "reason": None, "chunks": sorted(old["chunks"]) if old else [],
                 "encoded": 0}
        if not old:
            shutil.rmtree(self.chunk_dir(path), ignore_errors=True)
        self.files[entry["input"]] = entry
        return entry

    def finish(self, path: str, state: str, reason: str | None = None) -> None:
        e = self.files[os.path.abspath(path)]
        e["state"], e["reason"] = state, reason
        if state == "done":  # the output holds it all now: its chunks are not needed
            e["chunks"] = []
        self.save()
        if state == "done":
            shutil.rmtree(self.chunk_dir(path), ignore_errors=True)

    # -- chunks ---------------------------------------------------------------
    def chunk_dir(self, path: str) -> str:
        return os.path.join(self.root, "chunks", input_key(path))

    def put(self, path: str, chunk: EncodedChunk) -> None:
        os.makedirs(self.chunk_dir(path), exist_ok=True)
        c = chunk.caps
        header = {
            "index": chunk.index, "label": chunk.label, "start": chunk.start, "end": chunk.end,
            "expected": chunk.frames_expected, "decoded": chunk.frames_decoded,
            "corrupt": chunk.corrupt_packets, "extradata": (chunk.extradata or b"").hex(),
            "caps": {"codec": c.codec, "width": c.width, "height": c.height,
                     "rate": str(c.rate), "time_base": str(c.time_base), "profile": c.profile,
                     "extradata": (c.extradata or b"").hex()},
            "packets": [[p.pts, p.dts, p.duration, p.keyframe, len(p.data)]
                        for p in chunk.packets],
        }
        body = json.dumps(header).encode() + b"\n" + b"".join(p.data for p in chunk.packets)
        write_atomic(os.path.join(self.chunk_dir(path), f"{chunk.index:06d}.chunk"), body)
        e = self.files[os.path.abspath(path)]
        e["chunks"] = sorted({*e["chunks"], chunk.index})
        e["encoded"] += 1
        self.save()

    def get(self, path: str, index: int) -> EncodedChunk:
        name = os.path.join(self.chunk_dir(path), f"{index:06d}.chunk")
        try:
            with open(name, "rb") as f:
                raw = f.read()
            head, _, body = raw.partition(b"\n")
            h = json.loads(head)
            c = h["caps"]
            tb = Fraction(c["time_base"])
            caps = Caps(kind=ENCODED_CHUNKS, codec=c["codec"], width=c["width"],
                        height=c["height"], rate=Fraction(c["rate"]), time_base=tb,
                        profile=c["profile"], extradata=bytes.fromhex(c["extradata"]) or None)
            packets, at = [], 0
            for pts, dts, duration, key, size in h["packets"]:
                packets.append(Packet(body[at:at + size], pts, dts, duration, tb, key))
                at += size
            if at != len(body):
                raise ValueError(f"{len(body) - at} bytes beyond the packets")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MediaError(f"kept chunk {name} is unreadable ({exc}); run without "
                             "--resume to encode that file again") from None
        return EncodedChunk(h["index"], h["label"], packets, h["start"], h["end"],
                            h["expected"], h["decoded"], bytes.fromhex(h["extradata"]) or None,
                            {"node": "disk"}, h["corrupt"], caps=caps, source=path,
                            cached=True)
