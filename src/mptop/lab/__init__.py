"""A real two-path MPTCP network on one machine, in network namespaces bound to this process."""
