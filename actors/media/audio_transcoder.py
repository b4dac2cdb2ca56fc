"""AudioTranscoder: compressed audio in, AAC or Opus out (decode, resample, encode in one
process with PyAV, so raw audio never crosses a process boundary)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.element import Transform
from actors.errors import ConfigError, MediaError
from actors.types import ENCODED_AUDIO, Caps, Packet

log = logging.getLogger("parallax.audio_transcoder")

# codec -> (FFmpeg encoder, sample rates it takes, sample format it wants)
ENCODERS = {
    "aac": ("aac", None, "fltp"),  # FFmpeg's native AAC-LC encoder
    "opus": ("libopus", (48000, 24000, 16000, 12000, 8000), "flt"),
}
DEFAULT_BITRATE = 128_000  # per stereo pair
MAX_BITRATE = 1_024_000
MAX_CHANNELS = 8


def default_bitrate(channels: int, per_pair: int = DEFAULT_BITRATE) -> int:
    """Bits per second for ``channels``: ``per_pair`` for each stereo pair (or mono)."""
    return per_pair * max(1, (channels + 1) // 2)


@dataclass(frozen=True)
class AudioTranscoderSettings:
    codec: str = "aac"
    bitrate: int | None = None
    """Bits per second; None: 128 kb/s per stereo pair."""
    sample_rate: int | None = None
    """None keeps the input's where the encoder takes it (Opus: 48 kHz)."""

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ConfigError(f"audio codec {self.codec!r}: use one of {', '.join(ENCODERS)}")
        b = self.bitrate
        if b is not None and (isinstance(b, bool) or not isinstance(b, int)
                              or not 8_000 <= b <= MAX_BITRATE):
            raise ConfigError(f"--audio-bitrate {b!r}: give 8k to {MAX_BITRATE // 1000}k "
                              "bits per second, e.g. 128k")
        r = self.sample_rate
        if r is not None and not 8_000 <= r <= 192_000:
            raise ConfigError(f"audio sample rate {r!r}: must be 8000-192000 Hz")


class AudioTranscoder(Transform):
    """Decodes one audio stream's packets and encodes them as AAC or Opus.

    Timestamps follow the input: the first encoded sample is where the first decoded
    one was, and the encoder's priming delay shows as a negative start that the MP4
    muxer turns into an edit list, so players start audio and video in sync.
    """

    accepts = (ENCODED_AUDIO,)

    def __init__(self, codec: str = "aac", settings: AudioTranscoderSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or AudioTranscoderSettings(codec=codec, **options)
        self.decoder: Any = None
        self.encoder: Any = None
        self.resampler: Any = None
        self.next_pts: int | None = None
        self.decode_errors = 0
        self.encoded = 0

    def configure(self, caps_in: Caps | None) -> Caps:
        self._open(caps_in)
        enc = self.encoder
        return Caps.encoded_audio(
            self.settings.codec, enc.sample_rate, enc.channels, layout=enc.layout.name,
            extradata=bytes(enc.extradata) if enc.extradata else None,
            time_base=Fraction(1, enc.sample_rate), bit_rate=enc.bit_rate,
            language=caps_in.language, stream_index=caps_in.stream_index)

    def _open(self, caps: Caps) -> None:
        s = self.settings
        name, rates, fmt = ENCODERS[s.codec]
        try:
            dec = av.CodecContext.create(caps.codec, "r")
        except (av.FFmpegError, ValueError):
            raise MediaError(f"audio stream {caps.stream_index}: no decoder for "
                             f"{caps.codec!r}") from None
        dec.sample_rate = caps.sample_rate
        if caps.layout:
            dec.layout = caps.layout
        if caps.extradata:
            dec.extradata = caps.extradata
        channels = min(caps.channels or 2, MAX_CHANNELS)
        rate = s.sample_rate or caps.sample_rate
        if rates and rate not in rates:
            rate = 48000  # Opus runs at 48 kHz; players resample
        enc = av.CodecContext.create(name, "w")
        enc.sample_rate = rate
        # "2 channels" is FFmpeg's name for channels in no known order (PCM in Matroska,
        # often), which encoders refuse: such a stream gets the usual layout for its count.
        named = caps.layout and not caps.layout.endswith(" channels")
        enc.layout = caps.layout if named and caps.channels == channels else (
            "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c")
        enc.format = fmt
        enc.bit_rate = s.bitrate or default_bitrate(channels)
        enc.time_base = Fraction(1, rate)
        try:
            enc.open()
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"audio stream {caps.stream_index}: the {name} encoder refused "
                             f"{rate} Hz {enc.layout.name} at {enc.bit_rate} b/s: {exc}") from None
        self.decoder, self.encoder = dec, enc
        self.resampler = av.AudioResampler(format=fmt, layout=enc.layout.name, rate=rate,
                                           frame_size=enc.frame_size or None)

    def start(self) -> None:
        if self.encoder is None:  # this copy was made after READY
            self._open(self.caps_in)

    def process(self, packet: Packet) -> list[Packet]:
        p = av.Packet(packet.data)
        p.pts, p.dts, p.time_base = packet.pts, packet.dts, packet.time_base
        try:
            frames = self.decoder.decode(p)
        except av.InvalidDataError:
            self.decode_errors += 1  # a damaged packet is a short gap, as in ffmpeg
            return []
        out = []
        for frame in frames:
            if self.next_pts is None and frame.pts is not None:
                self.next_pts = round(frame.pts * frame.time_base * self.encoder.sample_rate)
            out += self._encode(self.resampler.resample(frame))
        return out

    def flush(self) -> list[Packet]:
        out = []
        try:
            for frame in self.decoder.decode(None):
                out += self._encode(self.resampler.resample(frame))
        except av.FFmpegError:
            log.debug("audio decoder flush", exc_info=True)
        out += self._encode(self.resampler.resample(None))
        return out + self._encode([None])

    def _encode(self, frames: list[Any]) -> list[Packet]:
        out = []
        for frame in frames:
            if frame is not None:
                frame.pts = self.next_pts or 0
                frame.time_base = self.encoder.time_base
                self.next_pts = frame.pts + frame.samples
            for pkt in self.encoder.encode(frame):
                self.encoded += 1
                out.append(Packet(bytes(pkt), pts=pkt.pts, dts=pkt.dts,
                                  duration=pkt.duration or None, time_base=pkt.time_base,
                                  keyframe=True, meta={"audio": True}))
        return out

    def results(self) -> dict[str, Any]:
        return {"codec": self.settings.codec, "packets": self.encoded,
                "decode_errors": self.decode_errors,
                "bitrate": self.encoder.bit_rate if self.encoder else None}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(decoder=None, encoder=None, resampler=None)
        return state
