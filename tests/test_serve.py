"""parallax serve: the HTTP side, and headless Chromium playing the page for real."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from avsync import make_av
from streams import assert_usage_error, parallax

from pipelines.serve import make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def hls_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hls")
    src = make_av(str(tmp_path_factory.mktemp("src") / "show.mp4"), seconds=6.0)
    run = parallax("transcode", src, str(d / "show.m3u8"), "--quiet", cwd=d)
    assert run.returncode == 0, run.stderr
    return d


@pytest.fixture(scope="module")
def server(hls_dir):
    srv = make_server(str(hls_dir), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers, r.read()


def test_streams_api_lists_playlists_with_codecs(server):
    status, _, body = get(server + "/api/streams")
    streams = json.loads(body)
    assert status == 200 and len(streams) == 1
    assert streams[0]["playlist"] == "show.m3u8"
    assert streams[0]["codec"].startswith("avc1.")
    assert streams[0]["codec"].endswith(",mp4a.40.2")  # the sound is in the segments


def test_files_types_and_no_listing_or_escape(server):
    _, headers, body = get(server + "/show.m3u8")
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "no-store" and body.startswith(b"#EXTM3U")
    _, headers, _ = get(server + "/show00000.m4s")
    assert headers["Content-Type"] == "video/iso.segment"
    _, headers, page = get(server + "/")
    assert b"MediaSource" in page and headers["Content-Type"].startswith("text/html")
    for bad in ("/subdir/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as err:
            get(server + bad)
        assert err.value.code == 404


def test_serve_bad_input(tmp_path):
    assert_usage_error(parallax("serve", str(tmp_path / "missing")), "not a directory")
    assert_usage_error(parallax("serve", str(tmp_path), "--port", "70000"), "--port")
    for bind in ("999.1.1.1", "no.such.host.invalid", "192.0.2.1"):  # 192.0.2.1: TEST-NET
        assert_usage_error(parallax("serve", str(tmp_path), "--bind", bind, "--port", "0"),
                           bind, "give --bind an address of this machine")


PROBE = """(() => {
  const v = document.getElementById('video'), s = document.getElementById('status');
  return v && s ? JSON.stringify({t: v.currentTime, status: s.textContent,
                                   audio: v.webkitAudioDecodedByteCount || 0}) : null;
})()"""


async def _evaluate(ws, expression, ident):
    await ws.send_json({"id": ident, "method": "Runtime.evaluate",
                        "params": {"expression": expression, "returnByValue": True}})
    while True:
        msg = await ws.receive_json()
        if msg.get("id") == ident:
            return msg["result"]["result"].get("value")


async def _watch_playback(profile, url_timeout=30.0, play_timeout=40.0):
    import aiohttp

    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + url_timeout
    while not (os.path.exists(port_file) and Path(port_file).read_text().count("\n")):
        assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
        await asyncio.sleep(0.1)
    port = Path(port_file).read_text().split()[0]
    async with aiohttp.ClientSession() as http:
        targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            deadline, seen, ident = time.monotonic() + play_timeout, [], 0
            while time.monotonic() < deadline:
                ident += 1
                state = await _evaluate(ws, PROBE, ident)
                if state:  # None until the page has loaded
                    seen.append(json.loads(state))
                    if seen[-1]["t"] > 2.0:
                        return seen
                await asyncio.sleep(0.25)
            return seen


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package 'chromium'); "
                    ".ci/run installs it")
def test_chromium_plays_the_served_stream(server):
    profile = tempfile.mkdtemp(prefix="parallax-chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         server + "/?src=show.m3u8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = asyncio.run(_watch_playback(profile))
    finally:
        browser.terminate()
        browser.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    assert seen and seen[-1]["t"] > 2.0, f"video.currentTime never passed 2 s: {seen[-3:]}"
    assert "error" not in seen[-1]["status"], seen[-1]["status"]
    assert seen[-1]["audio"] > 0, f"no audio was decoded: {seen[-3:]}"
