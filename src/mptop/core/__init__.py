"""The headless core: kernel readings → records for every view.  Never imports Textual or Rich.

Data flows one way (see ARCHITECTURE.md): :mod:`mptop.kernel` reads → the modules below → records
(:mod:`model`) → sinks (:mod:`mptop.sinks`) and the TUI (:mod:`mptop.tui`).  The facts the code relies
on are in ``docs/``.

Records — what views and files see
    model          Sample, Event, HostInfo, Summary…: the records, their NDJSON form and its inverse
    recording      NDJSON recordings (``--record``) read back for ``mptop replay``
    moments        named moments found in a recording (sharing, stalled, fallen back) for screenshots
    badge          the words every view puts on a transfer's status
    units          human-readable sizes, rates and durations
    safe_text      text from outside (servers, recordings) with control characters spelled out

Measuring — shared by our transfers and the system-wide view (never the HTTP client)
    rates          kernel byte counters → rates (resets, smoothing, ETA)
    paths          interfaces and addresses → paths keyed by the local interface, labels, link types
    events         small state machines: stalls, link up/down, subflow ledger, fallback reasons and counters
    stalls         path, subflow and transfer stalls judged once per poll from bytes and link states
    missing        a path that is up, has an endpoint, and lost its subflow (the kernel never re-adds it)
    history        the one time series behind charts and sparklines
    polling        a poll that re-arms itself, and path-manager events on the side
    hostinfo       the host record (sysctls, path manager, limits, interface labels) for every header

Our transfers — the sockets mptop opened itself
    sampler        every interval: each transfer's sockets → a Sample and new Events
    tracking       per-transfer bookkeeping between polls (subflows, path bytes, TransferLike)
    transfer_ends  our transfers' subflows to their last byte (destroy broadcasts); finished ones wait for them
    subflow_flags  our subflows' own flags (backup) from sock_diag, which FULL_INFO lacks
    pm_router      path-manager events → the transfers they belong to, by token
    threads        blocking work on a daemon thread, awaited on the loop (DNS, the bodies' threads)
    upload         ``mptop put``: uploads over MPTCP sockets, on the download engine
    sendbody       an upload's body: read and hashed on one thread, sent to the socket by another
    session        one download (or upload) run: transfers and sampler side by side, records to the sinks
    compare        ``--compare-tcp``: the MPTCP and the plain-TCP download of one URL, side by side and in words

System-wide — every MPTCP connection of the network namespace
    watch          ``mptop watch``: the sampler over sock_diag dumps
    watch_filter   which connections watch shows (--process, --port, the TUI's / filter)
    watch_open     can MPTCP connections be listed here: watch's check before its TUI starts
    watch_track    each dump → ConnectionSamples, paths and events (pure)
    watch_ends     watch's connection tracks; destroyed subflows' final counters matched to them (pure)
    export         ``mptop export``: the namespace's MPTCP state as Prometheus metrics
    export_paths   per-path counters that stay monotonic across closed subflows
    exposition     the Prometheus text format

One command's connections — ``mptop run -- CMD``
    launch         CMD with mptcpize's library preloaded, its signals and exit code; the run around it
    proctree       which connections CMD's process tree holds (inode → /proc/PID/fd); the run's summary
    lookout        a small process forked first: asks each new connection's cgroup the moment it is created

Download engine — HTTP over MPTCP sockets (aiohttp)
    transfer       TransferManager and Transfer: downloads, the MPTCP socket factory
    urls           the URLs accepted (http, https, a host) and the hint for a missing scheme
    resolver       DNS in the calling thread's network namespace, never waited for at exit
    output         where the bytes go: naming, ``-o``, ``NAME.part`` and resume
    writer         the writer thread: writes and hashes a body off the event loop (or without a hash)
    digest         which hash of a body: sha256 (default), blake3, or none (``--hash``)
    sockbody       a plain-HTTP body read from the socket into preallocated buffers, on its own thread
    partfile       ``NAME.part`` files, opened without following links
    failures       whatever a download raised → one plain line naming the cause

Host admin — MPTCP on this host, checked and changed
    doctor         ``mptop doctor``: is MPTCP usable here, and the exact fix where not
    doctor_fix     who manages endpoints here, and the command that adds one their way
    doctor_url     ``doctor --url``: does a server speak MPTCP, how many subflows came up
    bundle         ``doctor --bundle``: a bug-report archive
    endpoints      the path manager's endpoints and limits, planned then applied (Endpoints screen)
"""
