"""What the views show, accumulated from every record (pure Python: no Textual).

Every record is ingested, even while the display is paused or behind; the widgets then render
the latest state.  Rate history is kept per path for the chart window.
"""

from __future__ import annotations

from mptop.core.compare import Comparison
from mptop.core.history import History
from mptop.core.model import (
    ConnectionSample,
    Event,
    HostInfo,
    Record,
    Sample,
    SubflowSample,
    Summary,
    TransferSample,
)
from mptop.tui.story import Narrator

WINDOW_S = 60.0
MIN_WINDOW_S = 5.0

# Paths get stable colour slots: each link type its own (by label for records without a type),
# others the next free slot.
TYPE_SLOTS = {"wifi": 0, "cellular": 1, "ethernet": 2, "tether": 3, "bluetooth": 4, "ppp": 5}
PREFERRED_SLOTS = {"Wi-Fi": 0, "Cellular": 1, "Ethernet": 2}
SLOTS = 6


class ViewState:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.host: HostInfo | None = None
        self.sample: Sample | None = None
        self.summary: Summary | None = None
        self.labels: dict[str, str] = {}
        self.slots: dict[str, int] = {}
        self.history: dict[str, History] = {}
        self.total = History(window_s)
        self.story = Narrator(self.label)
        self.comparison = Comparison()      # --compare-tcp: both sides' stalls and ends (inactive otherwise)
        self.records = 0
        self.first_t: float | None = None

    # -- input ---------------------------------------------------------------------------------
    def ingest(self, record: Record) -> None:
        self.records += 1
        self.comparison.ingest(record)      # its words are in the stream already: only its state is kept
        if isinstance(record, Sample):
            self._ingest_sample(record)
        elif isinstance(record, Event):
            self.story.on_event(record)
        elif isinstance(record, HostInfo):
            self.host = record
            for iface, label in record.labels.items():
                self._learn(iface, label, record.link_types.get(iface))
        elif isinstance(record, Summary):
            self.summary = record
            self.story.on_summary(record)

    def _ingest_sample(self, sample: Sample) -> None:
        self.sample = sample
        if self.first_t is None:
            self.first_t = sample.t
        for iface, path in sample.paths.items():
            self._learn(iface, path.label, path.link_type)
            self.history.setdefault(iface, History(self.window_s)).add(sample.t, path.rate_bps)
        for sub in self._all_subflows(sample):
            self._learn(sub.iface, sub.path)
        self.total.add(sample.t, sum(p.rate_bps for p in sample.paths.values()))
        self.story.on_sample(sample)

    def _learn(self, iface: str, label: str, link_type: str | None = None) -> None:
        if iface not in self.labels or self.labels[iface] == iface:
            self.labels[iface] = label or iface
        if iface not in self.slots:
            taken = set(self.slots.values())
            preferred = TYPE_SLOTS.get(link_type or "", PREFERRED_SLOTS.get(label))
            free = [s for s in range(SLOTS) if s not in taken]
            slot = preferred if preferred is not None and preferred not in taken else None
            if slot is None:
                slot = free[0] if free else len(self.slots) % SLOTS
            self.slots[iface] = slot

    @staticmethod
    def _all_subflows(sample: Sample) -> list[SubflowSample]:
        subs = [s for t in sample.transfers for s in t.subflows]
        return subs + [s for c in sample.connections or [] for s in c.subflows]

    # -- queries -------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.sample.t if self.sample else 0.0

    @property
    def chart_window(self) -> float:
        """Seconds the charts span: the run so far (at least 5 s) until it is a full window long.

        A young run fills the chart instead of sitting in its right-hand corner.
        """
        elapsed = self.now - (self.first_t if self.first_t is not None else self.now)
        return max(MIN_WINDOW_S, min(self.window_s, elapsed))

    def label(self, iface: str) -> str:
        return self.labels.get(iface, iface)

    def slot(self, iface: str) -> int:
        return self.slots.get(iface, 0)

    @property
    def transfers(self) -> list[TransferSample]:
        return self.sample.transfers if self.sample else []

    @property
    def connections(self) -> list[ConnectionSample]:
        """The live connections (a ``closed`` one's last listing is not)."""
        return [c for c in self.sample.connections or [] if not c.closed] if self.sample else []

    def transfer(self, transfer_id: int) -> TransferSample | None:
        return next((t for t in self.transfers if t.id == transfer_id), None)

    def connection(self, token: int) -> ConnectionSample | None:
        return next((c for c in self.connections if c.token == token), None)
