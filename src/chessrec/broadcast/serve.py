"""The current PGN over HTTP, for a broadcast platform or a viewer to poll (GET /game.pgn)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chessrec.errors import UserError


class PgnServer:
    """Serves ``current()`` (the PGN text) at ``/`` and ``/game.pgn`` from a background thread."""

    def __init__(self, current: Callable[[], str], port: int, host: str = "127.0.0.1"):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server name
                if self.path.split("?")[0] not in ("/", "/game.pgn"):
                    self.send_error(404, "the PGN is at /game.pgn")
                    return
                body = current().encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/x-chess-pgn; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # requests are not the broadcast's log
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise UserError(f"--serve {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
        self.thread = threading.Thread(target=self.server.serve_forever, name="pgn-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/game.pgn"

    def __enter__(self) -> PgnServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
