#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Loopback TCP relay that records both directions of each connection.

Usage: relay.py {pgsql|mysql} LISTEN_PORT SERVER_PORT OUT_PREFIX
Connection n is written to OUT_PREFIX-n.<ext> as a sequence of records:
  Byte1 direction tag, Int32 big-endian length, then that many bytes exactly
  as one recv() returned them.
The protocol only picks the tags the decoder's tests read and the file ending:
  pgsql: 'F' client->server, 'B' server->client, .pgcap
  mysql: 'C' client->server, 'S' server->client, .mycap
"""
import socket
import struct
import sys
import threading

# protocol -> (client tag, server tag, file ending)
PROTOCOLS = {
    "pgsql": (b"F", b"B", "pgcap"),
    "mysql": (b"C", b"S", "mycap"),
}


def pump(src, dst, tag, out, lock):
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        # Record before forwarding so the file keeps capture order: a request
        # is on disk before the server can answer it.
        with lock:
            out.write(struct.pack(">cI", tag, len(data)) + data)
            out.flush()
        dst.sendall(data)


def serve(client, server_port, path, client_tag, server_tag):
    server = socket.create_connection(("127.0.0.1", server_port))
    lock = threading.Lock()
    with open(path, "wb") as out:
        threads = [
            threading.Thread(target=pump, args=(client, server, client_tag, out, lock)),
            threading.Thread(target=pump, args=(server, client, server_tag, out, lock)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    client.close()
    server.close()


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in PROTOCOLS:
        sys.exit(__doc__)
    client_tag, server_tag, ext = PROTOCOLS[sys.argv[1]]
    listen_port, server_port, prefix = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(8)
    n = 0
    while True:
        client, _ = lsock.accept()
        n += 1
        threading.Thread(target=serve,
                         args=(client, server_port, f"{prefix}-{n}.{ext}", client_tag, server_tag),
                         daemon=True).start()


if __name__ == "__main__":
    main()
