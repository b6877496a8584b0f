"""Seed inputs for each target, made from the pass test vectors and the fuzz world.

Seeds are generated, not committed: they follow the vectors (tests/core/pass_vectors.json)
and the formats as they change. ``mutations`` is a small deterministic mutator for the
smoke run in ``make test``, where atheris does not run.
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from collections.abc import Iterator

import cv2
import numpy as np
import segno

from fuzz.targets import World, world


def seeds(target: str) -> list[bytes]:
    """The seed inputs of one target."""
    w = world()
    if target == "pass_text":
        texts = sorted(w.signed_passes) + list(w.other_passes)
        return [t.encode("ascii") for t in texts] + [b"", b"GP1:", bytes(range(256))]
    if target == "lists_import":
        return [*w.lists_documents, b"{}", b"[]"]
    if target == "bundle_import":
        return [*w.bundles, gzip.compress(b"{}", mtime=0), b""]
    if target == "image_decode":
        return _images(w)
    raise ValueError(f"unknown target {target!r}")


def _images(w: World) -> list[bytes]:
    text = sorted(w.signed_passes)[0]
    qr = segno.make(text, error="m", boost_error=False)
    matrix = np.array(list(qr.matrix_iter(scale=3, border=4)), dtype=np.uint8)
    gray = np.where(matrix == 1, 0, 255).astype(np.uint8)
    png = bytes(cv2.imencode(".png", gray)[1])
    jpeg = bytes(cv2.imencode(".jpg", gray)[1])
    bmp = bytes(cv2.imencode(".bmp", gray)[1])
    return [png, jpeg, bmp, png[: len(png) // 2], jpeg[:200], huge_png(100_000, 100_000), b""]


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def rng(seed: int | str) -> random.Random:
    """A seeded generator for ``mutations``: the same mutants on every run."""
    return random.Random(seed)  # noqa: S311 - picks mutations, guards no secret


def mutations(seed: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    """``count`` mutants of ``seed``: flipped, replaced, inserted, deleted bytes, cuts,
    extensions and spliced runs (what libFuzzer's mutators do, without coverage)."""
    for _ in range(count):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            i = rng.randrange(len(data) + 1)
            if op == 0 and i < len(data):
                data[i] ^= 1 << rng.randrange(8)
            elif op == 1 and i < len(data):
                data[i] = rng.randrange(256)
            elif op == 2:
                data[i:i] = bytes([rng.randrange(256)]) * rng.randint(1, 8)
            elif op == 3:
                del data[i : i + rng.randint(1, 8)]
            elif op == 4:
                data = data[:i]
            else:
                j = rng.randrange(len(data) + 1)
                data[i:i] = data[j : j + rng.randint(1, 32)]
        yield bytes(data)
