"""The sock_ops program's assembly (every jump lands inside it, it ends in ``exit``) and the map
key's decoding, without the kernel (tests/kernel/test_sockops_lab.py loads it)."""

from __future__ import annotations

import socket
import struct

from mptop.kernel.sockops import _KEY, KEY_SIZE, addresses, program


def test_every_jump_lands_inside_the_program_and_it_ends_in_exit() -> None:
    code = program(7)
    insns = [struct.unpack_from("<BBhi", code, at) for at in range(0, len(code), 8)]
    assert insns[-1][0] == 0x95 and insns[-2] == (0xB7, 0, 0, 1)            # return 1
    wide = {i + 1 for i, (op, *_rest) in enumerate(insns) if op == 0x18}    # ld_imm64's second half
    targets = set()
    for i, (op, _regs, off, _imm) in enumerate(insns):
        if i not in wide and op & 0x07 == 0x05 and op not in (0x85, 0x95):  # BPF_JMP, not call/exit
            target = i + 1 + off
            assert 0 <= target < len(insns) and target not in wide, (i, off)
            targets.add(target)
    assert len(insns) - 2 in targets                                        # the way out is jumped to
    [(_, regs, _, imm)] = [insn for insn in insns if insn[0] == 0x18]
    assert (regs >> 4, imm) == (1, 7)                                       # the map, by fd (pseudo)


def test_a_key_gives_the_address_pair() -> None:
    key = _KEY.pack(socket.AF_INET, socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2"), b"\0" * 16,
                    b"\0" * 16, socket.htons(80) << 16, 50856)
    assert len(key) == KEY_SIZE
    assert addresses(key) == (("192.0.2.2", 50856), ("192.0.2.1", 80))
    six = _KEY.pack(socket.AF_INET6, b"\0" * 4, b"\0" * 4, socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
                    socket.inet_pton(socket.AF_INET6, "2001:db8::2"), socket.htons(443) << 16, 40000)
    assert addresses(six) == (("2001:db8::2", 40000), ("2001:db8::1", 443))
