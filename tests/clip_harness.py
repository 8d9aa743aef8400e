"""Broken video for the fault tests (ingest and reliability)."""

from __future__ import annotations

import random
from pathlib import Path

import av

__all__ = ["corrupt_copy"]


def corrupt_copy(clip: Path, target: Path) -> Path:
    """``clip`` with the slice data of every tenth packet overwritten by noise (the NAL
    lengths and headers stay, so the stream still parses and only the pictures break)."""
    rng = random.Random(3)
    with av.open(str(clip)) as src, av.open(str(target), "w") as out:
        stream = src.streams.video[0]
        out_stream = out.add_stream_from_template(stream)
        for i, packet in enumerate(src.demux(stream)):
            if packet.size == 0:
                continue
            if i % 10 == 5:
                data = bytearray(bytes(packet))
                for j in range(40, len(data), 7):
                    data[j] = rng.randrange(256)
                broken = av.Packet(bytes(data))
                broken.pts, broken.dts, broken.time_base = packet.pts, packet.dts, packet.time_base
                broken.stream = out_stream
                out.mux(broken)
            else:
                packet.stream = out_stream
                out.mux(packet)
    return target
