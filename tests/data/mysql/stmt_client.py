#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small MySQL/MariaDB client of the project's own that speaks the binary
(prepared statement) protocol directly, to record golden captures.

Usage: stmt_client.py PORT USER PASSWORD DATABASE [--deprecate-eof]

It logs in with mysql_native_password, then: COM_INIT_DB, COM_PING,
COM_STMT_PREPARE / COM_STMT_EXECUTE with bound parameters of several types
(integers, double, string, date/time, NULL), COM_STMT_SEND_LONG_DATA,
COM_STMT_RESET, COM_STMT_CLOSE, a COM_STMT_EXECUTE of an id never prepared
(the server answers ERR 1243), a multi-statement COM_QUERY, LOAD DATA LOCAL
INFILE, COM_CHANGE_USER and COM_QUIT.
Protocol: https://mariadb.com/kb/en/clientserver-protocol/
"""
import hashlib
import socket
import struct
import sys

CLIENT_LONG_PASSWORD = 1
CLIENT_CONNECT_WITH_DB = 8
CLIENT_LOCAL_FILES = 128
CLIENT_PROTOCOL_41 = 512
CLIENT_TRANSACTIONS = 8192
CLIENT_SECURE_CONNECTION = 32768
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.seq = 0
        self.deprecate_eof = False

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            part = self.sock.recv(n - len(buf))
            if not part:
                raise EOFError("server closed")
            buf += part
        return buf

    def read(self):
        head = self.recv_exact(4)
        length = head[0] | head[1] << 8 | head[2] << 16
        self.seq = (head[3] + 1) & 0xFF
        return self.recv_exact(length)

    def write(self, payload, seq=None):
        if seq is not None:
            self.seq = seq
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF

    def command(self, payload):
        self.write(payload, seq=0)

    def read_result(self):
        """Reads one complete response; returns the list of packets."""
        pkts = [self.read()]
        first = pkts[0]
        if first[0] in (0x00, 0xFF) or (first[0] == 0xFE and len(first) < 9):
            return pkts
        if first[0] == 0xFB:
            return pkts
        ncols = first[0]
        for _ in range(ncols):
            pkts.append(self.read())
        if not self.deprecate_eof:
            pkts.append(self.read())
        while True:
            p = self.read()
            pkts.append(p)
            if p[0] == 0xFF or (p[0] == 0xFE and len(p) < 0xFFFFFF):
                return pkts

    def read_results(self):
        """All results of one command (SERVER_MORE_RESULTS_EXISTS chains them)."""
        out = []
        while True:
            pkts = self.read_result()
            out.append(pkts)
            last = pkts[-1]
            if last[0] == 0xFF or last[0] == 0xFB:
                return out
            status = status_flags(last)
            if not status & 8:
                return out


def lenenc(b, i):
    c = b[i]
    if c < 0xFB:
        return c, i + 1
    if c == 0xFC:
        return struct.unpack_from("<H", b, i + 1)[0], i + 3
    if c == 0xFD:
        return b[i + 1] | b[i + 2] << 8 | b[i + 3] << 16, i + 4
    return struct.unpack_from("<Q", b, i + 1)[0], i + 9


def status_flags(p):
    if p[0] == 0xFE and len(p) < 9:
        return struct.unpack_from("<H", p, 3)[0]
    _, i = lenenc(p, 1)
    _, i = lenenc(p, i)
    return struct.unpack_from("<H", p, i)[0]


def native_token(password, scramble):
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def login(port, user, password, db, deprecate_eof):
    c = Conn(port)
    greet = c.read()
    i = greet.index(b"\0", 1) + 1 + 4
    part1 = greet[i:i + 8]
    i += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
    part2 = greet[i:i + 12]
    scramble = part1 + part2
    caps = (CLIENT_LONG_PASSWORD | CLIENT_CONNECT_WITH_DB | CLIENT_LOCAL_FILES |
            CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION |
            CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS |
            CLIENT_PLUGIN_AUTH | CLIENT_SESSION_TRACK)
    if deprecate_eof:
        caps |= CLIENT_DEPRECATE_EOF
    c.deprecate_eof = deprecate_eof
    token = native_token(password, scramble)
    resp = (struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23 + user.encode() + b"\0" +
            bytes([len(token)]) + token + db.encode() + b"\0" + b"mysql_native_password\0")
    c.write(resp)
    ok = c.read()
    assert ok[0] == 0, ok
    return c, token, scramble


def prepare(c, sql):
    c.command(b"\x16" + sql.encode())
    ok = c.read()
    if ok[0] == 0xFF:
        return None, ok
    stmt_id, ncols, nparams = struct.unpack_from("<IHH", ok, 1)
    for n in (nparams, ncols):
        if n:
            for _ in range(n):
                c.read()
            if not c.deprecate_eof:
                c.read()
    return (stmt_id, nparams), ok


def execute(c, stmt_id, params, long_data=()):
    """params: list of (type, unsigned, encoded value or None)."""
    body = b"\x17" + struct.pack("<IBI", stmt_id, 0, 1)
    if params:
        bitmap = bytearray((len(params) + 7) // 8)
        for n, (_, _, v) in enumerate(params):
            if v is None:
                bitmap[n // 8] |= 1 << (n % 8)
        body += bytes(bitmap) + b"\x01"
        for t, uns, _ in params:
            body += bytes([t, 0x80 if uns else 0])
        for n, (_, _, v) in enumerate(params):
            if v is not None and n not in long_data:
                body += v
    c.command(body)
    return c.read_results()


def lenstr(s):
    b = s.encode() if isinstance(s, str) else s
    assert len(b) < 251
    return bytes([len(b)]) + b


def main():
    port, user, password, db = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    deprecate_eof = "--deprecate-eof" in sys.argv
    c, _, _ = login(port, user, password, "", deprecate_eof)
    c.command(b"\x02" + db.encode())  # COM_INIT_DB
    c.read()
    c.command(b"\x0e")  # COM_PING
    c.read()
    c.command(b"\x03" + b"DELETE FROM items WHERE id > 100")
    c.read_results()

    (ins, nparams), _ = prepare(c, "INSERT INTO items(id, name, price, added, note) VALUES (?, ?, ?, ?, ?)")
    assert nparams == 5
    date = struct.pack("<BHBBBBB", 7, 2024, 2, 29, 13, 45, 30)
    execute(c, ins, [(8, False, struct.pack("<q", 101)), (253, False, lenstr("O'Brien widget")),
                     (5, False, struct.pack("<d", 19.5)), (12, False, date), (6, False, None)])
    execute(c, ins, [(3, True, struct.pack("<I", 102)), (253, False, lenstr("gadget")),
                     (253, False, lenstr("7.25")), (10, False, struct.pack("<BHBB", 4, 2023, 12, 1)),
                     (252, False, lenstr("blob\x00bytes"))])
    # Long data for the note of row 103, then execute without the value inline.
    c.command(b"\x18" + struct.pack("<IH", ins, 4) + b"long note part 1; ")
    c.command(b"\x18" + struct.pack("<IH", ins, 4) + b"part 2")
    execute(c, ins, [(1, False, struct.pack("<b", 103)), (253, False, lenstr("gizmo")),
                     (4, False, struct.pack("<f", 2.5)), (11, False, struct.pack("<BBIBBB", 8, 1, 1, 2, 3, 4)),
                     (252, False, b"")],
            long_data=(4,))
    # Duplicate key: ERR 1062 on execute.
    execute(c, ins, [(8, False, struct.pack("<q", 101)), (253, False, lenstr("dup")),
                     (6, False, None), (6, False, None), (6, False, None)])

    (sel, nparams), _ = prepare(c, "SELECT id, name, price, added FROM items WHERE id >= ? ORDER BY id")
    execute(c, sel, [(8, False, struct.pack("<q", 101))])
    c.command(b"\x1a" + struct.pack("<I", sel))  # COM_STMT_RESET
    c.read()
    execute(c, sel, [(2, False, struct.pack("<h", 102))])
    c.command(b"\x19" + struct.pack("<I", sel))  # COM_STMT_CLOSE: no answer
    c.command(b"\x19" + struct.pack("<I", ins))

    _, err = prepare(c, "SELEKT nothing")  # ERR 1064 on prepare
    execute(c, 4242, [])  # never prepared: ERR 1243

    # A multi-statement query: one OK, one result set, one OK.
    c.command(b"\x03" + b"UPDATE items SET price = price + 1 WHERE id = 101; "
              b"SELECT name FROM items WHERE id IN (101, 102); DO 1")
    c.read_results()

    # LOAD DATA LOCAL INFILE: the server asks for the file, we send its content.
    c.command(b"\x03" + b"LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE items FIELDS TERMINATED BY ',' (id, name)")
    req = c.read()
    assert req[0] == 0xFB, req
    c.write(b"201,secret-file-row-a\n202,secret-file-row-b\n")
    c.write(b"")
    c.read()

    # COM_CHANGE_USER to the same user (auth data in the payload is never recorded).
    c2, token, scramble = None, None, None
    c.command(b"\x11" + user.encode() + b"\0" + bytes([20]) + native_token(password, b"x" * 20) +
              db.encode() + b"\0" + struct.pack("<H", 45) + b"mysql_native_password\0")
    r = c.read()
    if r[0] == 0xFE:  # auth switch: answer with the token for the new scramble
        name_end = r.index(b"\0", 1)
        new_scramble = r[name_end + 1:name_end + 21]
        c.write(native_token(password, new_scramble))
        r = c.read()
    assert r[0] == 0, r
    c.command(b"\x03" + b"SELECT COUNT(*) FROM items")
    c.read_results()
    c.command(b"\x01")  # COM_QUIT
    c.sock.close()


if __name__ == "__main__":
    main()
