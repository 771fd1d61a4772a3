"""`mptop demo`: the two-path lab, a scripted scenario and the TUI, in one command."""
