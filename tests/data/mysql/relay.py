#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Loopback TCP relay that records both directions of each MySQL connection.

Usage: relay.py LISTEN_PORT SERVER_PORT OUT_PREFIX
Connection n is written to OUT_PREFIX-n.mycap as a sequence of records:
  Byte1 direction ('C' client->server, 'S' server->client), Int32 big-endian
  length, then that many bytes exactly as one recv() returned them.
"""
import socket
import struct
import sys
import threading


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
        # Written before forwarding: a request is on file before its answer.
        with lock:
            out.write(struct.pack(">cI", tag, len(data)) + data)
            out.flush()
        dst.sendall(data)


def serve(client, server_port, path):
    server = socket.create_connection(("127.0.0.1", server_port))
    lock = threading.Lock()
    with open(path, "wb") as out:
        threads = [threading.Thread(target=pump, args=(client, server, b"C", out, lock)),
                   threading.Thread(target=pump, args=(server, client, b"S", out, lock))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    client.close()
    server.close()


def main():
    listen_port, server_port, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(8)
    n = 0
    while True:
        client, _ = lsock.accept()
        n += 1
        threading.Thread(target=serve, args=(client, server_port, f"{prefix}-{n}.mycap"),
                         daemon=True).start()


if __name__ == "__main__":
    main()
