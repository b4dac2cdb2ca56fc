"""Test media with sound, generated with PyAV: a white flash at the start of every second
and a beep at the same instants, so that A/V sync can be measured in any output.

Imported by tests (never downloaded, never the ffmpeg CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

BEEP_S = 0.05
BEEP_HZ = 1000


@dataclass(frozen=True)
class Track:
    codec: str = "aac"
    rate: int = 48000
    layout: str = "stereo"
    language: str | None = None


def make_av(path: str, seconds: float = 3.0, vcodec: str = "libx264",
            tracks: tuple[Track, ...] = (Track(),), fmt: str | None = None,
            start_s: float = 0.0, audio_lead_s: float = 0.0, audio_s: float | None = None,
            subtitles: str | None = None,
            width: int = 320, height: int = 240, fps: int = 30, gop: int = 30) -> str:
    """Video with a flash at every whole second, each track a beep at the same instants.

    ``start_s`` shifts every timestamp (an MPEG-TS that starts at 1.4 s);
    ``audio_lead_s`` starts the audio that much earlier than the video (the input's own
    offset, which every output must keep); ``audio_s`` makes the audio that long (a track
    that ends before the video); ``subtitles`` adds a subtitle stream with that language
    (MKV).
    """
    frames = int(seconds * fps)
    with av.open(path, "w", format=fmt) as out:
        v = out.add_stream(vcodec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.time_base = Fraction(1, fps)
        v.codec_context.gop_size = gop
        if vcodec == "libx264":
            v.codec_context.options = {"preset": "veryfast", "bf": "2",
                                       "x264-params": f"keyint={gop}:min-keyint={gop}:"
                                                      "scenecut=0"}
        audio = []
        for t in tracks:
            a = out.add_stream(t.codec, rate=t.rate, layout=t.layout)
            a.codec_context.bit_rate = 128_000 if t.codec != "pcm_s16le" else 0
            if t.language:
                a.metadata["language"] = t.language
            audio.append((a, t))
        sub = srt = None
        if subtitles:  # PyAV cannot encode subtitles: copy them from a generated .srt
            srt_path = f"{path}.srt"
            with open(srt_path, "w") as f:
                f.write("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
            srt = av.open(srt_path)
            sub = out.add_stream_from_template(srt.streams[0])
            sub.metadata["language"] = subtitles
        vstart = round(start_s * fps)
        y = np.arange(height)[:, None]
        for i in range(frames):
            luma = np.full((height, width), 235 if i % fps == 0 else 40, np.uint8)
            luma[(y[:, 0] + 4 * i) % height < 8, :] = 120 if i % fps else 235  # motion
            chroma = np.full((height // 2, width), 128, np.uint8)
            vf = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
            vf.pts = vstart + i
            vf.time_base = Fraction(1, fps)
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
        for a, t in audio:
            _write_beeps(out, a, t, (audio_s or seconds) + audio_lead_s,
                         start_s - audio_lead_s, audio_lead_s)
        if srt is not None:
            for pkt in srt.demux():
                if pkt.size:
                    pkt.stream = sub
                    out.mux(pkt)
            srt.close()
    return path


def _write_beeps(out: av.container.OutputContainer, stream: av.stream.Stream, t: Track,
                 seconds: float, start_s: float, lead_s: float) -> None:
    """Beeps at video's whole seconds: audio time ``lead_s`` is video time 0."""
    ctx = stream.codec_context
    rate, channels = t.rate, ctx.channels
    total = int(seconds * rate)
    n = np.arange(total)
    since = (n / rate - lead_s) % 1.0
    wave = np.where((n / rate >= lead_s) & (since < BEEP_S),
                    0.5 * np.sin(2 * np.pi * BEEP_HZ * n / rate), 0.0).astype(np.float32)
    resampler = av.AudioResampler(format=ctx.format.name, layout=t.layout, rate=rate,
                                  frame_size=ctx.frame_size or 1024)
    start = round(start_s * rate)
    for off in range(0, total, 1024):
        chunk = np.repeat(wave[None, off:off + 1024], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=t.layout)
        frame.sample_rate, frame.pts = rate, start + off
        frame.time_base = Fraction(1, rate)
        for f in resampler.resample(frame):
            out.mux(stream.encode(f))
    for f in resampler.resample(None):
        out.mux(stream.encode(f))
    out.mux(stream.encode(None))


def flash_times(path: str) -> list[float]:
    """Presentation times (s) of the white frames of the first video stream."""
    with av.open(path) as c:
        st = c.streams.video[0]
        return [float(f.pts * f.time_base) for f in c.decode(st)
                if f.to_ndarray(format="gray").mean() > 150]


def beep_times(path: str, stream: int = 0) -> list[float]:
    """Times (s) where the ``stream``th audio stream goes from silence to sound."""
    with av.open(path) as c:
        st = c.streams.audio[stream]
        chunks, start = [], None
        for f in c.decode(st):
            if start is None:
                start = float(f.pts * f.time_base) if f.pts is not None else 0.0
            chunks.append(np.abs(f.to_ndarray().astype(np.float32)).reshape(
                -1 if f.format.is_planar else f.samples, f.samples if f.format.is_planar
                else -1).max(axis=0 if f.format.is_planar else 1))
            rate = f.sample_rate
    level = np.concatenate(chunks)
    level = level / (level.max() or 1)
    loud = level > 0.3
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    times, last = [], -1.0
    for i in onsets:
        t = start + i / rate
        if t - last > 0.5:  # one onset per beep, not one per cycle of the tone
            times.append(t)
        last = t if t - last > 0.5 else last
    return times


def av_offsets(path: str, stream: int = 0) -> list[float]:
    """Beep time minus flash time, for each flash that has a beep within 0.5 s."""
    beeps = beep_times(path, stream)
    out = []
    for f in flash_times(path):
        near = [b - f for b in beeps if abs(b - f) < 0.5]
        if near:
            out.append(min(near, key=abs))
    return out


def packet_digests(path: str, stream: int = 0) -> list[str]:
    """SHA-1 of every packet of the ``stream``th audio stream, in order."""
    import hashlib

    with av.open(path) as c:
        return [hashlib.sha1(bytes(p)).hexdigest() for p in c.demux(c.streams.audio[stream])
                if p.size]


def starts(path: str) -> dict[str, float]:
    """Each stream's first presentation time (s), as ffprobe's start_time."""
    with av.open(path) as c:
        return {f"{st.type}{st.index}": float(st.start_time * st.time_base)
                for st in c.streams if st.start_time is not None}


def durations(path: str) -> dict[str, float]:
    """Seconds of video and of each audio stream, from their decoded frames."""
    out = {}
    with av.open(path) as c:
        wanted = [(st.type, st.index) for st in [c.streams.video[0], *c.streams.audio]]
    for kind, index in wanted:
        with av.open(path) as c:  # a fresh demuxer per stream: fMP4 does not seek back
            st = c.streams[index]
            first = last = None
            for f in c.decode(st):
                t = float(f.pts * f.time_base)
                first = t if first is None else min(first, t)
                end = t + (f.samples / f.sample_rate if kind == "audio"
                           else float(1 / st.average_rate))
                last = end if last is None else max(last, end)
            out[f"{kind}{index}"] = (last or 0) - (first or 0)
    return out
