"""``parallax serve DIR``: an HLS directory over HTTP, with our own player page."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from actors.errors import ConfigError, MediaError
from actors.streaming.fmp4 import codecs_string
from actors.streaming.hls import parse_playlist

log = logging.getLogger("parallax.serve")

TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment",
         ".mp4": "video/mp4", ".html": "text/html; charset=utf-8"}


def list_streams(directory: str) -> list[dict[str, str]]:
    """Playlists in ``directory`` with the codecs of their init segment (every track)."""
    streams = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".m3u8") or name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                playlist = parse_playlist(f.read())
            map_uri = next(s.map_uri for s in playlist.segments)
            with open(os.path.join(directory, os.path.basename(map_uri)), "rb") as f:
                codec = codecs_string(f.read())
        except (OSError, ValueError, StopIteration, MediaError) as exc:
            log.debug("skipping %s: %s", name, exc)
            continue
        streams.append({"playlist": name, "codec": codec})
    return streams


class Handler(SimpleHTTPRequestHandler):
    """Static files from the directory, the player at /, and /api/streams."""

    player: bytes = b""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, self.player, TYPES[".html"])
        if path == "/api/streams":
            body = json.dumps(list_streams(self.directory)).encode()
            return self._send(HTTPStatus.OK, body, "application/json")
        return super().do_GET()

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def list_directory(self, path: str) -> None:  # type: ignore[override]
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings")
        return None

    def guess_type(self, path: Any) -> str:
        return TYPES.get(os.path.splitext(str(path))[1].lower()) or super().guess_type(path)

    def end_headers(self) -> None:
        if self.path.endswith(".m3u8"):  # live playlists change; segments never do
            self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def make_server(directory: str, port: int = 8000, bind: str = "127.0.0.1") -> ThreadingHTTPServer:
    if not os.path.isdir(directory):
        raise ConfigError(f"serve {directory!r}: not a directory; give the folder that holds "
                          "the .m3u8 playlist")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be 0-65535 (0 picks a free port)")
    player = resources.files("pipelines").joinpath("player.html").read_bytes()
    handler = partial(type("PlayerHandler", (Handler,), {"player": player}),
                      directory=os.path.abspath(directory))
    try:
        return ThreadingHTTPServer((bind, port), handler)
    except OSError as exc:
        # A name that does not resolve, or an address of no interface here, is the
        # address's fault; anything else (in use, privileged) the port's.
        fix = ("give --bind an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
               if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
               else "pick another --port")
        raise ConfigError(f"cannot listen on {bind}:{port} ({exc.strerror}); {fix}") from None


def serve(directory: str, port: int = 8000, bind: str = "127.0.0.1") -> int:
    server = make_server(directory, port, bind)
    host, real_port = server.server_address[:2]
    print(f"serving {os.path.abspath(directory)} at http://{host}:{real_port}/ "
          "(Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
