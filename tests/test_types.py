"""One frame-rate parser for every element and option, and the init attachment reader."""

import re
from fractions import Fraction

import pytest

from actors.errors import ConfigError
from actors.media.test_pattern import TestPatternSource
from actors.media.video_rate import VideoRate
from actors.types import Caps, parse_rate
from actors.zenoh.link import InitState, decode_init_attachment, encode_attachment
from pipelines.transcode import TranscodeOptions, build_transcode, parse_testsrc


@pytest.mark.parametrize("value, rate", [(30, Fraction(30)), ("30000/1001", Fraction(30000, 1001)),
                                         (29.97, Fraction(2997, 100)), (Fraction(25), 25)])
def test_parse_rate_accepts_numbers_strings_and_fractions(value, rate):
    assert parse_rate(value) == rate


@pytest.mark.parametrize("value", ["fast", "1/0", 0, -5, None])
def test_parse_rate_names_the_option_in_its_error(value):
    with pytest.raises(ConfigError, match=r"^fps="):
        parse_rate(value, "fps")


def test_every_rate_parser_is_the_same_one():
    for make in (lambda v: Caps.raw_video("rgba", 2, 2, v),
                 lambda v: TestPatternSource(rate=v),
                 lambda v: VideoRate(v)):
        with pytest.raises(ConfigError, match="frames per second"):
            make("abc")
    assert VideoRate("30000/1001").rate == Caps.raw_video("rgba", 2, 2, "30000/1001").rate


def test_init_attachment_gives_its_time_base_and_seq_or_none():
    raw = encode_attachment(time_base="1/90000", seq=12)
    assert decode_init_attachment(raw) == InitState(Fraction(1, 90000), 12, ended=False)
    ended = encode_attachment(seq=3, ended=True)
    assert decode_init_attachment(ended) == InitState(None, 3, ended=True)
    assert decode_init_attachment(b'{"v": 1, "seq": -1, "time_base": "x", "ended": true}') \
        == InitState()
    for raw in (None, b"\xff\xfe", b"[1]", b"{}", b'{"time_base": "0/1", "seq": true}',
                b"[" * 3000 + b"]" * 3000, b"x" * 100_000):
        assert decode_init_attachment(raw) == InitState()


def test_bare_testsrc_is_a_moving_1080p_pattern_scaled_to_720p(tmp_path):
    src = parse_testsrc("testsrc")
    s = src.settings
    assert (s.pattern, s.width, s.height, s.total) == ("ball", 1920, 1080, 300)
    scale = build_transcode(TranscodeOptions("testsrc", str(tmp_path / "o.mp4"))).graph \
        .nodes["scale"].element
    assert scale.configure(src.configure(None)).height == 720
    sized = build_transcode(TranscodeOptions("testsrc:size=320x240", str(tmp_path / "o.mp4")))
    assert sized.graph.nodes["scale"].element.configure(
        parse_testsrc("testsrc:size=320x240").configure(None)).height == 240


@pytest.mark.parametrize("spec, needle", [
    ("testsrc:frames=0", "testsrc frames=0: must be 1 or more"),  # the key the user wrote
    ("testsrc:frames=-3", "testsrc frames=-3"),
    ("testsrc:frames=two", "testsrc options 'frames=two'"),
    ("testsrc:colour=red", "use key=value with keys"),
])
def test_testsrc_options_are_refused_in_the_user_s_words(spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        parse_testsrc(spec)
