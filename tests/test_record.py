"""Screen capture under a real X server (Xvfb) whose content the tests change."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from media import probe_video
from streams import assert_usage_error, parallax

from actors.capture.screen_capture import ScreenCaptureSource
from actors.errors import PipelineError
from actors.media.null_sink import NullSink
from actors.media.video_encoder import VideoEncoder
from actors.media.video_scaler import VideoScaler
from actors.testing import StallingPassThrough
from pipelines.runtime.pipeline import Pipeline

pytestmark = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xsetroot")),
    reason="needs Xvfb and xsetroot (Debian: xvfb, x11-xserver-utils); .ci/run installs them")

COLORS = ["#ff0000", "#0000ff"]


@pytest.fixture(scope="module")
def display():
    proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "320x240x24",
                             "-nolisten", "tcp"], stdout=subprocess.PIPE, text=True)
    number = proc.stdout.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


class Painter:
    """Alternates the root window's colour, so the recorded content changes."""

    def __init__(self, display: str, period: float = 0.5) -> None:
        self.display, self.period = display, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            subprocess.run(["xsetroot", "-display", self.display, "-solid", COLORS[i % 2]],
                           check=True)
            i += 1
            self.stop.wait(self.period)

    def __enter__(self) -> Painter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def decoded_colors(path) -> set[str]:
    import av

    seen = set()
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rgb = f.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
            seen.add("red" if rgb[0] > 150 > rgb[2] else "blue" if rgb[2] > 150 > rgb[0]
                     else "other")
    return seen


def test_record_three_seconds(display, tmp_path):
    out = tmp_path / "rec.mp4"
    with Painter(display):
        run = parallax("record", str(out), "--display", display, "--duration", "3",
                       "--fps", "30", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    info = probe_video(str(out))
    assert abs(info["frames"] - 90) <= 90 * 0.05, info
    assert {"red", "blue"} <= decoded_colors(out)  # the changes are in the recording


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_mid_recording_finalizes_the_output(display, tmp_path, sig):
    """Ctrl-C, or SIGTERM as a service manager stops a recorder: the recording ends and
    is finished, every captured frame in it, exit 0."""
    out = tmp_path / "int.mp4"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "record", str(out),
                             "--display", display, "--fps", "30", "--stats-json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)
    lines = []
    with Painter(display):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(json.loads(line))
            if lines[-1]["frames"] >= 45:
                break
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    final = json.loads(rest.strip().splitlines()[-1])
    captured = final["elements"]["src"]["buffers_out"]
    info = probe_video(str(out))
    assert info["frames"] == captured >= 45  # every captured frame made it to the file
    assert info["duration"] == pytest.approx(captured / 30, abs=2 / 30 + 0.05)
    assert not (tmp_path / ".int.mp4.part").exists()


def capture_pipeline(display, middle, fps=30, duration=4.0, **src_kw):
    p = Pipeline("capture", fusion=False)
    p.add(ScreenCaptureSource(display=display, fps=fps, duration=duration, **src_kw),
          name="src")
    p.add(middle, name="slow")
    p.add(VideoScaler.new(160, 120, "yuv420p"), name="scale")
    p.add(VideoEncoder(), name="encode")
    p.add(NullSink(), name="sink")
    for a, b in zip(["src", "slow", "scale", "encode"], ["slow", "scale", "encode", "sink"]):
        p.link(a, b, window=8 if a == "src" else None)
    return p


def test_stalling_encoder_is_absorbed_by_the_window(ray_session, display):
    """Seed criterion 2: a 150 ms stall once a second costs fewer than 5% of frames."""
    p = capture_pipeline(display, StallingPassThrough(stall_s=0.15, every_s=1.0))
    stats = p.run()
    src = p.results("src")
    assert src["ticks"] == 120
    dropped = stats.elements["src"].drops
    assert dropped < 0.05 * 120, (dropped, src)
    assert stats.elements["sink"].buffers_in == src["captured"]


def test_slow_encoder_bounded_memory_and_counted_drops(ray_session, display):
    p = capture_pipeline(display, StallingPassThrough(delay_s=0.1), max_stall=None)
    stats = p.run()
    edge = next(e for e in stats.edges.values() if e.producer == "src")
    assert edge.high_water_mark() <= edge.window == 8  # in flight never above W
    src = p.results("src")
    assert stats.elements["src"].drops > 0.3 * 120  # a 10 fps consumer loses most frames
    assert stats.elements["sink"].buffers_in == src["captured"]  # what was sent arrived


def test_an_encoder_at_a_quarter_of_the_rate_records_evenly_instead_of_failing(
        ray_session, display):
    """Before pacing, a 4 fps consumer under a 30 fps capture failed the run after 1 s of
    skipped captures in a row; now the capture keeps what the consumer sustains."""
    p = capture_pipeline(display, StallingPassThrough(delay_s=0.25), duration=6.0)
    p.run()
    src = p.results("src")
    assert 3 <= src["kept_fps"] <= 5.5, src
    # Spread out, where skipping while Busy froze the picture for a second and more (the
    # bound leaves room for a loaded machine; tests/test_live_pacing.py checks evenness).
    assert src["longest_freeze_s"] < 1.0, src


def test_a_stalled_encoder_fails_after_max_stall(ray_session, display):
    p = capture_pipeline(display, StallingPassThrough(stall_s=5.0, every_s=1.0), duration=10.0,
                         max_stall=1.5)
    with pytest.raises(PipelineError) as err:
        p.run()
    assert err.value.element == "src"
    assert "finished nothing" in str(err.value) and "frames were captured" in str(err.value)


def test_a_killed_encoder_leaves_the_recording_playable_under_its_name(display, tmp_path):
    """SIGKILL of the process that encodes (and, fused with it, writes), with no restart
    policy (--max-restarts 0): the run fails
    (exit 1), and the MP4, fragmented because its source is live, keeps every complete
    fragment under its final name."""
    from test_batch import descendants
    from test_writer_death import fragments, holder

    out, part = tmp_path / "rec.mp4", tmp_path / ".rec.mp4.part"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "record", str(out),
                             "--display", display, "--fps", "30", "--quiet",
                             "--max-restarts", "0"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        with Painter(display):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and fragments(part) < 2:
                time.sleep(0.2)
            victim = holder(proc.pid, part)
            assert victim, "no process held the recording open"
            cmdline = Path(f"/proc/{victim}/cmdline").read_text(errors="replace")
            assert "ElementHost" in cmdline and victim in descendants(proc.pid)
            os.kill(victim, signal.SIGKILL)
            _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "complete fragment(s) of" in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["rec.mp4"]
    info = probe_video(str(out))
    assert info["frames"] >= 2 * 60 - 1  # two 2 s fragments at least, every frame decoded
    assert {"red", "blue"} & decoded_colors(out)


def test_no_display_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "RAY_ADDRESS")}
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "record",
                          str(tmp_path / "x.mp4"), "--duration", "1"], capture_output=True,
                         text=True, timeout=300, env=env, cwd=tmp_path)
    assert_usage_error(run, "no X display", "Xvfb")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, needle", [
    (["--fps", "0"], "--fps"), (["--fps", "1000"], "--fps"),
    (["--region", "0,0,10"], "X,Y,W,H"), (["--region", "0,0,1,1"], "--region"),
    (["--duration", "-2"], "--duration")])
def test_record_bad_options(tmp_path, args, needle):
    assert_usage_error(parallax("record", "x.mp4", *args, cwd=tmp_path), needle)


def test_region_must_fit_the_monitor(display, tmp_path):
    run = parallax("record", "x.mp4", "--display", display, "--region", "0,0,4000,100",
                   "--duration", "1", cwd=tmp_path)
    assert_usage_error(run, "does not fit monitor")


def test_frames_are_bgra_with_capture_times(display):
    src = ScreenCaptureSource(display=display, fps=10, duration=0.5)
    caps = src.negotiate([], [])
    assert (caps.format, caps.width, caps.height) == ("bgra", 320, 240)
    src.start()
    frames = []
    while len(frames) < 5:
        item = src.handle_produce()
        if item is not None:
            frames.append(item)
    src.close(True)
    assert [f.pts for f in frames] == list(range(5))
    times = np.diff([f.meta["capture_time"] for f in frames])
    assert np.all(times > 0.05) and np.all(times < 0.2)  # on a 10 fps schedule


def test_a_recording_whose_encoder_dies_goes_on_to_its_end(ray_session, display, tmp_path):
    """The default restart policy: SIGKILL of the process that encodes, mid-recording;
    the recording runs to its --duration, one file, decodable through the restart, with
    the colours painted after the kill, and the restart counted."""
    from pipelines.outputs import OutputOptions
    from pipelines.record import RecordOptions, build_record

    out = tmp_path / "rec.mp4"
    pipeline = build_record(RecordOptions(str(out), fps=30, duration=8, display=display,
                                          out=OutputOptions()))
    with Painter(display):
        pipeline.start()
        part = tmp_path / ".rec.mp4.part"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pipeline.stats().frames < 60:
            time.sleep(0.1)
        assert part.exists()
        host = next(h for h in pipeline._hosts if "encode" in h.split("+"))
        assert "mux" not in host.split("+")  # the writer lives apart from the encoder
        os.kill(pipeline._node_of[host]["pid"], signal.SIGKILL)
        stats = pipeline.wait(timeout=120)
    assert stats.restarts == {name: 1 for name in host.split("+")}
    assert sorted(os.listdir(tmp_path)) == ["rec.mp4"]
    info = probe_video(str(out))
    assert info["frames"] >= (8 - 3) * 30, info  # what the restart cost is under 3 s
    assert {"red", "blue"} <= decoded_colors(out)
