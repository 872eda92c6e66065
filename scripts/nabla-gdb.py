# gdb commands for nabla guests. Load it into gdb with
#
#     gdb -x scripts/nabla-gdb.py ...      (or, inside gdb: source scripts/nabla-gdb.py)
#
# A guest started under gdb (`gdb --args tender APP ...`) needs none of
# this: the tender hands gdb the guest's symbols itself (GDB's JIT
# interface; docs/debugging.md). These commands are for the other cases:
#
#   nabla-symbols [APP]     loads the guest's symbols when the tender did not
#                           hand them over: gdb attached to a running guest
#                           (`gdb -p PID`), a core file, or a debugger
#                           without the JIT interface. Without APP, the image
#                           is the one on the running tender's command line.
#   nabla-catch-forbidden   stops at every system call the guest makes that
#                           is not one of the hypercalls the filter may
#                           allow, before the filter kills the process for it.
#   $_nabla_in_guest()      true in guest code: a condition for catchpoints
#                           that should skip the tender's own system calls
#                           (catch syscall write; condition 2 $_nabla_in_guest()).

import os
import re
import struct
import subprocess

import gdb

# No guest address lies at or above this: guest memory starts at 1 MiB and
# is at most 64 GiB (--mem); the tender, its libraries and its stack lie far
# above.
GUEST_LIMIT = (1 << 20) + (64 << 30)
# Where every guest is linked (abi::GUEST_BASE).
GUEST_BASE = 0x100000

# The system calls the filter may allow (docs/seccomp.md), on x86-64; which
# ones, and with which arguments, depends on the devices attached:
# `tender --print-seccomp` shows the exact rules.
HYPERCALLS = {
    "read": 0,
    "write": 1,
    "pread64": 17,
    "pwrite64": 18,
    "fdatasync": 75,
    "clock_gettime": 228,
    "exit_group": 231,
    "ppoll": 271,
}


def _proc(pid, name):
    return "/proc/%d/%s" % (pid, name)


def _value_options(tender):
    """The tender's options that take a value, from its --help."""
    text = subprocess.run(
        [tender, "--help"], capture_output=True, text=True, check=True
    ).stdout
    options = set()
    for line in text.splitlines():
        m = re.match(r"\s+(?:(-\w), )?(--[\w-]+) <", line)
        if m:
            options.update(o for o in m.groups() if o)
    return options


def guest_image(pid):
    """The path of the image APP on the tender's command line."""
    with open(_proc(pid, "cmdline"), "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
    tender = os.readlink(_proc(pid, "exe"))
    takes_value = _value_options(tender)
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in takes_value:
            i += 1
        i += 1
    if i >= len(argv):
        raise gdb.GdbError("no APP on the tender's command line: %r" % argv)
    return os.path.join(os.readlink(_proc(pid, "cwd")), argv[i])


def _has_guest_symbols():
    # `_start`, the guest's first symbol, lies at GUEST_BASE; nothing of the
    # tender's does.
    return not gdb.execute("info symbol %#x" % GUEST_BASE, to_string=True).startswith("No symbol")


class NablaSymbols(gdb.Command):
    """Load the guest's symbols: nabla-symbols [APP].

The image is linked at the addresses it runs at, so its symbols, line
tables and call-frame information apply as they are. Without APP, the
image named on the tender's command line (relative to the tender's
working directory). Only needed when gdb attached to a guest that was
already running, or for a debugger without GDB's JIT interface: a guest
started under gdb gets its symbols from the tender."""

    def __init__(self):
        super().__init__("nabla-symbols", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        inferior = gdb.selected_inferior()
        # A live process of this machine's (not a core file, not remote).
        live = (
            inferior.pid != 0
            and inferior.connection is not None
            and inferior.connection.type == "native"
        )
        if _has_guest_symbols():
            print("nabla: the guest's symbols are already loaded")
            return
        path = arg.strip()
        if not path:
            if not live:
                raise gdb.GdbError("no running tender: give the image, nabla-symbols APP")
            path = guest_image(inferior.pid)
        if live:
            self._check(inferior, path)
        gdb.execute("add-symbol-file %s" % gdb_quote(path), from_tty=False, to_string=False)

    @staticmethod
    def _check(inferior, path):
        # The first bytes of the guest's text, in the file and in memory:
        # the image may have been rebuilt since the guest started.
        with open(path, "rb") as f:
            offset = _text_offset(f)
            if offset is None:
                print("nabla: warning: %s is not a guest image" % path)
                return
            f.seek(offset)
            expected = f.read(256)
        try:
            actual = bytes(inferior.read_memory(GUEST_BASE, len(expected)))
        except gdb.MemoryError:
            print("nabla: no guest mapped yet at %#x" % GUEST_BASE)
            return
        if actual != expected:
            print("nabla: warning: %s is not the image this guest runs "
                  "(its code differs): the symbols may be wrong" % path)


def _text_offset(f):
    """The file offset of the segment loaded at GUEST_BASE, or None."""
    header = f.read(64)
    if header[:4] != b"\x7fELF" or header[4] != 2:
        return None
    phoff, = struct.unpack_from("<Q", header, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
    for i in range(phnum):
        f.seek(phoff + i * phentsize)
        p_type, _, p_offset, p_vaddr = struct.unpack("<IIQQ", f.read(24))
        if p_type == 1 and p_vaddr == GUEST_BASE:
            return p_offset
    return None


def gdb_quote(path):
    return '"%s"' % path.replace("\\", "\\\\").replace('"', '\\"')


class NablaCatchForbidden(gdb.Command):
    """Stop at the guest's system calls that the filter never allows.

Sets a catchpoint on every system call made from guest code (below the
tender) whose number is not one of the hypercalls (read, write, pread64,
pwrite64, fdatasync, clock_gettime, exit_group, ppoll). gdb stops at the
call before the kernel's filter sees it: `bt` shows who made it. A
hypercall with arguments the filter refuses (a write to fd 2) is not
caught: catch that call by name (catch syscall write)."""

    def __init__(self):
        super().__init__("nabla-catch-forbidden", gdb.COMMAND_BREAKPOINTS)

    def invoke(self, arg, from_tty):
        gdb.execute("catch syscall", to_string=True)
        number = int(gdb.parse_and_eval("$bpnum"))
        gdb.execute("condition %d $_nabla_forbidden()" % number)
        print("Catchpoint %d: the guest's system calls other than the hypercalls" % number)


class NablaInGuest(gdb.Function):
    """$_nabla_in_guest(): whether the thread is in guest code (below the
tender), e.g. as the condition of a catchpoint that should not stop at the
tender's own system calls before the jump."""

    def __init__(self):
        super().__init__("_nabla_in_guest")

    def invoke(self):
        return _pc() < GUEST_LIMIT


class NablaForbidden(gdb.Function):
    """$_nabla_forbidden(): whether the thread is at a system call of the
guest's that is not a hypercall (the condition of nabla-catch-forbidden)."""

    def __init__(self):
        super().__init__("_nabla_forbidden")

    def invoke(self):
        number = int(gdb.parse_and_eval("$orig_rax")) & (2**64 - 1)
        return _pc() < GUEST_LIMIT and number not in HYPERCALLS.values()


def _pc():
    return int(gdb.parse_and_eval("$pc")) & (2**64 - 1)


NablaSymbols()
NablaCatchForbidden()
NablaForbidden()
NablaInGuest()
