"""``python -m era5cache.bench.serve ROOT PORT``: a threaded HTTP server of a folder on
127.0.0.1 for the Zarr benchmark, as a store's object server answers: HTTP/1.1 (connections
kept alive, no Nagle delay), each file sent with ``sendfile`` (no copy through Python). The standard
library's ``http.server`` copies every byte through a 64 KiB Python loop, which on a 2-core
machine takes a core away from the paths measured."""

from __future__ import annotations

import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class SendfileHandler(SimpleHTTPRequestHandler):
    """Serves files with ``socket.sendfile``; keeps connections alive; logs nothing."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each response's headers wait for a delayed ACK

    def copyfile(self, source, outputfile) -> None:
        outputfile.flush()
        self.connection.sendfile(source)

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        return


def main(argv: list[str]) -> None:
    root, port = argv[0], int(argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(SendfileHandler, directory=root))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
