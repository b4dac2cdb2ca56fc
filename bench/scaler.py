"""VideoScaler (swscale via PyAV) per algorithm and factor, 1080p rgba and yuv420p,
against OpenCV's cv2.resize where comparable (rgba).

Run: python bench/scaler.py
"""

from __future__ import annotations

import time

from actors.media.test_pattern import TestPatternSource
from actors.media.video_scaler import ScaleAlgorithm, VideoScaler
from actors.types import Caps

FACTORS = (0.25, 0.5, 0.667, 1.5)
REPEAT = 20

try:
    import cv2

    CV2 = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
           "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "area": cv2.INTER_AREA}
except ImportError:
    cv2 = None


def per_frame_ms(fn) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(REPEAT):
        fn()
    return (time.perf_counter() - t0) / REPEAT * 1000


def main() -> None:
    print(f"{'format':8} {'algorithm':9} {'factor':>6} {'parallax ms':>11} {'cv2 ms':>7} "
          f"{'ratio':>6}")
    for fmt in ("rgba", "yuv420p"):
        frame = TestPatternSource(pattern="smpte", width=1920, height=1080, format=fmt,
                                  num_frames=1).produce()
        for alg in ScaleAlgorithm:
            for f in FACTORS:
                s = VideoScaler.by_factor(f, algorithm=alg)
                caps = s.configure(Caps.raw_video(fmt, 1920, 1080, 30))
                ours = per_frame_ms(lambda s=s, fr=frame: s.process(fr))
                theirs = None
                if cv2 is not None and fmt == "rgba":
                    size = (caps.width, caps.height)
                    theirs = per_frame_ms(lambda size=size, a=alg, fr=frame: cv2.resize(
                        fr.data, size, interpolation=CV2[a.value]))
                ratio = f"{theirs / ours:6.2f}" if theirs else "     -"
                cv = f"{theirs:7.2f}" if theirs else "      -"
                print(f"{fmt:8} {alg.value:9} {f:6.3f} {ours:11.2f} {cv} {ratio}")
    if cv2 is None:
        print("(cv2 not installed: pip install opencv-python-headless for the comparison)")


if __name__ == "__main__":
    main()
