#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/ (a few small inputs per target).

Run from anywhere: python3 fuzz/seeds.py. The FAT seed needs mkfs.fat and
mcopy (dosfstools, mtools).
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ABI_VERSION = 2
GUEST_BASE = 0x100000


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def note(n_type, desc):
    name = b"nabla-guest\0"
    return struct.pack("<III", len(name), len(desc), n_type) + name + desc


def manifest(devices):
    out = struct.pack("<II", ABI_VERSION, len(devices))
    for i in range(63):
        if i < len(devices):
            name, kind = devices[i]
            out += name.ljust(16, b"\0") + struct.pack("<II", kind, 0)
        else:
            out += b"\0" * 24
    return out


def elf(devices, note_align=4):
    """A minimal nabla image: one R+X PT_LOAD from offset 0 (headers, notes
    and code), and the PT_NOTE."""
    phnum = 2
    notes_off = 64 + 56 * phnum
    notes = note(1, struct.pack("<II", ABI_VERSION, 1)) + note(2, manifest(devices))
    code_off = notes_off + len(notes)
    code = b"\xf4" * 16  # hlt
    size = code_off + len(code)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, GUEST_BASE + code_off, 64, 0, 0, 64, 56,
                        phnum, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, GUEST_BASE, GUEST_BASE, size, size, 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, notes_off, GUEST_BASE + notes_off,
                        GUEST_BASE + notes_off, len(notes), len(notes), note_align)
    return ehdr + load + pnote + notes + code


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack(">H", ethertype) + payload


GUEST_MAC = bytes([2, 0, 0, 0, 0, 2])
PEER_MAC = bytes([2, 0, 0, 0, 0, 1])
GUEST_IP = bytes([10, 0, 0, 2])
PEER_IP = bytes([10, 0, 0, 1])


def ipv4(proto, payload, dst=GUEST_IP):
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                      PEER_IP, dst)
    return eth(GUEST_MAC, PEER_MAC, 0x0800, hdr + payload)


def dhcp_reply(msg_type):
    """A DHCP OFFER (2) or ACK (5) of 10.0.0.2/24 from 10.0.0.1, broadcast;
    the transaction id is left 0 for the target to fix up."""
    bootp = struct.pack(">BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, 0, 0, 0, bytes(4), GUEST_IP,
                        PEER_IP, bytes(4), GUEST_MAC + bytes(10), bytes(64), bytes(128))
    options = (b"\x63\x82\x53\x63" + bytes([53, 1, msg_type]) + bytes([54, 4]) + PEER_IP
               + bytes([51, 4]) + struct.pack(">I", 3600) + bytes([1, 4, 255, 255, 255, 0])
               + bytes([3, 4]) + PEER_IP + b"\xff")
    payload = bootp + options
    udp = struct.pack(">HHHH", 67, 68, 8 + len(payload), 0) + payload
    return ipv4(17, udp, dst=b"\xff" * 4)


def tcp(sport, dport, seq, ack, flags, data=b""):
    return ipv4(6, struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
                + data)


def record(frame, dt=1, fix=False):
    return bytes([(dt & 0x7f) | (0x80 if fix else 0)]) + struct.pack("<H", len(frame)) + frame


def net_seeds():
    arp = eth(b"\xff" * 6, PEER_MAC, 0x0806,
              struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, PEER_IP, b"\0" * 6,
                          GUEST_IP))
    ping = ipv4(1, struct.pack(">BBHHH", 8, 0, 0, 1, 1) + b"ping")
    udp = ipv4(17, struct.pack(">HHHH", 5000, 7, 8 + 5, 0) + b"hello")
    put("net", "arp-ping-udp", b"\x00" + record(arp) + record(ping) + record(udp))
    put("net", "pod-arp-ping", b"\x02" + record(arp) + record(ping))
    syn = tcp(40000, 80, 1000, 0, 0x02)
    ack = tcp(40000, 80, 1001, 0, 0x10)
    req = tcp(40000, 80, 1001, 0, 0x18, b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
    fin = tcp(40000, 80, 0, 0, 0x11)
    # The ARP request first: smoltcp learns the peer's MAC from it (not from
    # IP frames), so that it can answer the SYN.
    put("net", "http", b"\x00" + record(arp) + record(syn) + record(ack, fix=True) + record(req, fix=True)
        + record(fin, dt=10, fix=True))
    # DHCP (mode 3): the guest's DISCOVER goes out on the first turn; the
    # OFFER and the ACK get its transaction id; then a ping to the lease.
    put("net", "dhcp", b"\x03" + record(arp) + record(dhcp_reply(2), fix=True)
        + record(dhcp_reply(5), fix=True) + record(arp) + record(ping))
    # (corpus/net/dhcp-offer-from-nowhere is not written here: it is the
    # input the fuzzer found, kept as it was, in which an OFFER from 0.0.0.0
    # made smoltcp's DHCP client renew towards 0.0.0.0 and panic; libos's
    # tap now drops IPv4 packets from no address.)
    # The same with virtio-net headers (mode bit 7): plain, and the request
    # with a checksum left to the guest (NEEDS_CSUM from the TCP header on).
    plain = bytes(10)
    needs_csum = struct.pack("<BBHHHH", 1, 0, 0, 0, 34, 16)
    put("net", "http-vnet", b"\x80" + record(plain + arp) + record(plain + syn)
        + record(plain + ack, fix=True) + record(needs_csum + req, fix=True)
        + record(plain + fin, dt=10, fix=True))


def fat_image(fat, size_kib, keep_kib, label, sector="512"):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "disk.img")
        # libos mounts partition 1 of an MBR, as `nabla disk create` makes it.
        # FAT16 needs 4085 clusters, FAT32 65525: the seeds keep only the
        # start of the disk (the tables, the root directory and the first
        # files); the fat target's disk is zeros after its input.
        subprocess.run(["mkfs.fat", "-C", "-F", fat, "-S", sector, "--mbr=y", "--invariant",
                        "-s", "1", "-n", label, img, str(size_kib)], check=True,
                       stdout=subprocess.DEVNULL)
        src = os.path.join(d, "index.html")
        with open(src, "wb") as f:
            f.write(b"<h1>hello</h1>\n")
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        subprocess.run(["mmd", "-i", img, "::/css"], check=True, env=env)
        subprocess.run(["mcopy", "-m", "-i", img, src, "::/index.html"], check=True,
                       env=env)
        subprocess.run(["mcopy", "-m", "-i", img, src, "::/css/site.css"], check=True,
                       env=env)
        # A long name (VFAT slots) and a file of several clusters.
        subprocess.run(["mcopy", "-m", "-i", img, src, "::/css/A Long File Name.html"],
                       check=True, env=env)
        with open(src, "wb") as f:
            f.write(bytes(range(256)) * 24)
        subprocess.run(["mcopy", "-m", "-i", img, src, "::/big.bin"], check=True, env=env)
        with open(img, "rb") as f:
            return f.read(keep_kib * 1024)


def fat_seed():
    put("fat", "fat16", b"\x00" + fat_image("16", 4096, 40, "SEED16"))
    put("fat", "fat32", b"\x00" + fat_image("32", 40 * 1024, 24, "SEED32"))
    put("fat", "fat12", b"\x00" + fat_image("12", 1024, 40, "SEED12"))
    # Mode byte 3: 4 KiB device sectors, for a volume of 4 KiB sectors.
    put("fat", "fat16-4k", b"\x03" + fat_image("16", 64 * 1024, 112, "SEED4K", "4096"))


def http_connection_seeds():
    """The `http` target's connections mode (0xff, then records; see
    fuzz/fuzz_targets/http/connections.rs): clients that pipeline requests
    and never read, trickle a head, send a body, and one that reads."""
    def send(client, data):
        return bytes([0x20 | client, len(data)]) + data
    def ack(client, window, all_=True):
        return bytes([(0x70 if all_ else 0x90) | client]) + window.to_bytes(2, "little")
    def wait(units):
        return bytes([0xd0, units])
    get = b"GET /some/long/path/to/a/file.html HTTP/1.1\r\n\r\n"
    noread = b"\xff" + bytes([0x00]) + send(0, get * 4) + ack(0, 0) + wait(10)
    noread += bytes([0x01]) + send(1, get * 4) + ack(1, 512) + wait(10) + ack(1, 512)
    put("http", "connections-noread", noread)
    slow = b"\xff" + bytes([0x02]) + send(2, b"GET / HT") + wait(15) + send(2, b"T") + wait(15)
    slow += bytes([0x03]) + send(3, b"GET / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
    slow += ack(3, 65535) + wait(30) + send(3, b"d")
    slow += bytes([0x04]) + send(4, b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
    slow += ack(4, 65535) + bytes([0xb4, 0xc2])
    put("http", "connections-slow", slow)
    many = b"\xff" + b"".join(bytes([c]) for c in range(10))
    many += b"".join(send(c, get) + bytes([0x80 | c, 0xff, 0xff]) for c in range(10)) + wait(100)
    put("http", "connections-many", many)


def kv_connections(password):
    """kv's many-connections mode: client 0 sets a 4 KiB value, clients 1-3
    pipeline GETs of it and read little or nothing while time passes."""
    def send(k, data):
        out = b""
        for i in range(0, len(data), 255):
            part = data[i:i + 255]
            out += bytes([k, len(part)]) + part
        return out
    def read(k, n): return bytes([0x08 | k, n])
    def wait(n): return bytes([0x10, n])
    value = b"v" * 4096
    rec = bytes([0xC0 if password else 0x80])
    auth = b"AUTH pw\r\n" if password else b""
    rec += send(0, auth + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4096\r\n" + value + b"\r\n")
    rec += read(0, 1)
    for k in (1, 2, 3):
        rec += send(k, auth + b"GET k\r\n" * 20)
    rec += read(1, 255) + wait(30) + read(2, 4) + wait(30) + read(1, 255)
    rec += bytes([0x18 | 3, 0]) + send(4, b"PING\r\n" + b"*11\r\n")
    return rec


def main():
    """All seeds; the FAT image differs from run to run (volume ID, times):
    leave corpus/fat alone unless it should change (`seeds.py fat`)."""
    put("elf", "minimal", elf([]))
    put("elf", "two-devices", elf([(b"service0", 1), (b"storage", 2)], note_align=8))
    put("manifest", "two-devices", manifest([(b"service0", 1), (b"storage", 2)]))
    put("manifest", "empty", manifest([]))
    put("boot", "net-config",
        b"\x02\x02service0\0\x01\0storage\0\x02\0/app\0arg\0"
        b"NET_SERVICE0_IPV4=10.0.0.2/24\0NET_SERVICE0_GATEWAY=10.0.0.1")
    put("boot", "dhcp", b"\x01\x01eth0\0\x01\0/app\0NET_ETH0_IPV4=dhcp\0A=1=2\0NOEQ")
    put("http", "get-range",
        b"GET /a%20b/index.html?x=1 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-10\r\n"
        b"If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: keep-alive\r\n\r\n"
        b"HEAD / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\n\r\n")
    put("http", "post", b"POST /form HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    http_connection_seeds()
    put("kv", "set-get",
        b"\x07*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        b"PING\r\nINCR n\r\nEXPIRE k 10\r\nLPUSH l a b c\r\nLRANGE l 0 -1\r\n"
        b"HSET h f v\r\nSADD s x y\r\nSPOP s\r\nSET t v EX 5\r\nKEYS *\r\nDEL k\r\n")
    put("kv", "scan-config", b"\x03SCAN 0 MATCH * COUNT 5\r\nCONFIG GET *\r\nINFO\r\nQUIT\r\n")
    put("kv", "slow-readers", kv_connections(False))
    put("kv", "slow-readers-auth", kv_connections(True))
    net_seeds()
    if "fat" in sys.argv[1:]:
        fat_seed()


main()
