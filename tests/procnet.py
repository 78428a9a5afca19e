"""Which TCP ports a process listens on, and where: read from /proc, no tools needed."""

import contextlib
import os
import pathlib
import socket
import struct

# Loopback as /proc shows it (an IPv6 socket bound to 127.0.0.1 shows it IPv4-mapped).
LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, from /proc."""
    inodes = set()
    try:
        fds = list(pathlib.Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process is gone
        return []
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in pathlib.Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            # /proc prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(
                struct.pack("<I", int(hex_ip[i : i + 8], 16)) for i in range(0, len(hex_ip), 8)
            )
            found.append((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid``, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def command(pid: int) -> str:
    """The process's command line, or '' once it is gone."""
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
