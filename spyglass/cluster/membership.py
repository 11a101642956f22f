"""Which satellite owns a trace: rendezvous (highest random weight) hashing over the cluster's members.

Every member scores every trace id with a hash of (member, trace id); the highest score owns the trace. A
member joining takes from each other member only the traces it now outscores them on, and a member leaving
hands only its own traces to the runners-up: about 1/N of the traces move, never more. Computed for a whole
batch's ``trace_id`` column at once with numpy, no Python step per span.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

log = logging.getLogger(__name__)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finalizer: every input bit flips about half the output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def member_seed(url: str) -> int:
    """A stable 64-bit seed per member URL (the same on every satellite, whatever the process)."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "little")


def trace_keys(trace_ids: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.uint64]:
    """One well-mixed 64-bit key per 16-byte trace id, read straight from the Arrow buffer."""
    if isinstance(trace_ids, pa.ChunkedArray):
        trace_ids = trace_ids.combine_chunks()
    if trace_ids.type != pa.binary(16):
        trace_ids = trace_ids.cast(pa.binary(16))
    n = len(trace_ids)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    words = np.frombuffer(trace_ids.buffers()[1], dtype=np.uint64)
    words = words[2 * trace_ids.offset : 2 * (trace_ids.offset + n)].reshape(n, 2)
    with np.errstate(over="ignore"):
        return _mix(words[:, 0] ^ _mix(words[:, 1] + _GOLDEN))


def rendezvous_owners(keys: npt.NDArray[np.uint64], seeds: Sequence[int]) -> npt.NDArray[np.intp]:
    """Index (into ``seeds``) of the owning member of each trace key."""
    if len(seeds) == 1 or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.intp)
    seed_array = np.asarray(seeds, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        scores = _mix(keys[None, :] ^ seed_array)
    owners: npt.NDArray[np.intp] = np.argmax(scores, axis=0)
    return owners


@dataclass(frozen=True)
class Ring:
    """One view of the cluster: the members that own traces now (configured and believed up), and which one
    of them this satellite is (``None`` when it is not among them: it then owns nothing and forwards all)."""

    members: tuple[str, ...]
    self_url: str
    seeds: tuple[int, ...]

    @classmethod
    def of(cls, members: Sequence[str], self_url: str) -> Ring:
        ordered = tuple(sorted(set(members)))
        return cls(ordered, self_url, tuple(member_seed(m) for m in ordered))

    @property
    def self_index(self) -> int | None:
        return self.members.index(self.self_url) if self.self_url in self.members else None

    def owners(self, trace_ids: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.intp]:
        return rendezvous_owners(trace_keys(trace_ids), self.seeds)

    def owner_of(self, trace_id: bytes) -> str:
        return self.members[int(self.owners(pa.array([trace_id], pa.binary(16)))[0])]


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def read_peers_file(path: Path) -> tuple[str, ...]:
    """One member URL per line; blank lines and ``#`` comments are ignored."""
    urls = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            urls.append(normalize_url(text))
    return tuple(urls)


class Membership:
    """The configured members (``--peers`` or ``--peers-file``), those found down, and this satellite's URL.

    Ownership follows the members believed up, so while a satellite is down its share of new traces is
    decided by the others instead of being lost; when it answers again its share comes back to it. The
    peers file is re-read when it changes (``poll``), so members join and leave without a restart.
    """

    def __init__(self, peers: Sequence[str] = (), self_url: str = "", peers_file: Path | None = None) -> None:
        self.peers_file = peers_file
        self._lock = threading.Lock()
        self._configured: tuple[str, ...] = tuple(normalize_url(p) for p in peers)
        self._self_url = normalize_url(self_url)
        self._down: set[str] = set()
        self._file_mtime_ns: int | None = None
        self._ring = Ring.of(self._configured, self._self_url)
        if peers_file is not None:
            self.poll()

    @property
    def self_url(self) -> str:
        return self._self_url

    @property
    def configured(self) -> tuple[str, ...]:
        """Every member as configured, this one included when listed."""
        return self._configured

    @property
    def peers(self) -> tuple[str, ...]:
        """The other configured members (whom queries ask), up or not."""
        return tuple(m for m in self._configured if m != self._self_url)

    @property
    def down(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._down)

    def ring(self) -> Ring:
        """The current view, immutable: route a whole batch with one."""
        return self._ring

    def set_self_url(self, url: str) -> None:
        """Known only once the API port is bound when it was 0 (tests) and ``--advertise`` is unset."""
        with self._lock:
            self._self_url = normalize_url(url)
            self._rebuild()

    def set_members(self, members: Sequence[str]) -> None:
        with self._lock:
            new = tuple(dict.fromkeys(normalize_url(m) for m in members))
            if new != self._configured:
                log.info("cluster members: %s", ", ".join(new) or "(none)")
            self._configured = new
            self._down &= set(new)
            self._rebuild()

    def mark_down(self, url: str) -> bool:
        """True when this changed the view (the member was believed up)."""
        with self._lock:
            if url in self._down or url == self._self_url or url not in self._configured:
                return False
            self._down.add(url)
            log.warning("cluster member %s is down; its share of traces goes to the others", url)
            self._rebuild()
            return True

    def mark_up(self, url: str) -> bool:
        with self._lock:
            if url not in self._down:
                return False
            self._down.discard(url)
            log.info("cluster member %s is back", url)
            self._rebuild()
            return True

    def poll(self) -> bool:
        """Re-read the peers file if it changed; True when it did. A missing or unreadable file keeps the
        members as they were (an editor's save is not atomic)."""
        if self.peers_file is None:
            return False
        try:
            mtime = self.peers_file.stat().st_mtime_ns
            if mtime == self._file_mtime_ns:
                return False
            members = read_peers_file(self.peers_file)
        except OSError as exc:
            log.warning("cannot read --peers-file %s: %s", self.peers_file, exc)
            return False
        self._file_mtime_ns = mtime
        self.set_members(members)
        return True

    def _rebuild(self) -> None:
        up = [m for m in self._configured if m not in self._down]
        if not up:
            up = [self._self_url]
        self._ring = Ring.of(up, self._self_url)
