"""mptop: see Multipath TCP work, live, path by path."""

__version__ = "0.1.0"
