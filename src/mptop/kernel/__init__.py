"""Decode what Linux knows about MPTCP: socket options, sock_diag, path-manager netlink, host facts.

No Textual, no printing: typed values out (see :mod:`mptop.kernel.types`).
"""
