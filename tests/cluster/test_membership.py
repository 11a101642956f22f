"""Rendezvous hashing: balanced, stable, and a member joining or leaving moves only its own share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from spyglass.cluster.membership import Membership, Ring, read_peers_file

MEMBERS = [f"http://10.0.0.{i}:8686" for i in range(1, 5)]
IDS = pa.array([os.urandom(16) for _ in range(60_000)], pa.binary(16))


def test_each_member_owns_about_its_share() -> None:
    ring = Ring.of(MEMBERS[:3], MEMBERS[0])
    shares = np.bincount(ring.owners(IDS), minlength=3) / len(IDS)
    assert np.allclose(shares, 1 / 3, atol=0.015)


def test_joining_moves_only_about_one_share_and_only_to_the_newcomer() -> None:
    before = Ring.of(MEMBERS[:3], MEMBERS[0])
    after = Ring.of(MEMBERS, MEMBERS[0])
    old = np.asarray(before.members)[before.owners(IDS)]
    new = np.asarray(after.members)[after.owners(IDS)]
    moved = old != new
    assert abs(moved.mean() - 1 / 4) < 0.015
    assert set(new[moved]) == {MEMBERS[3]}


def test_leaving_moves_only_the_leavers_traces() -> None:
    before = Ring.of(MEMBERS, MEMBERS[0])
    after = Ring.of([m for m in MEMBERS if m != MEMBERS[2]], MEMBERS[0])
    old = np.asarray(before.members)[before.owners(IDS)]
    new = np.asarray(after.members)[after.owners(IDS)]
    moved = old != new
    assert set(old[moved]) == {MEMBERS[2]}
    assert abs(moved.mean() - 1 / 4) < 0.015


def test_same_owner_whatever_the_order_or_the_slice() -> None:
    ring = Ring.of(MEMBERS, MEMBERS[1])
    shuffled = Ring.of(list(reversed(MEMBERS)), MEMBERS[1])
    assert (ring.owners(IDS) == shuffled.owners(IDS)).all()
    assert (ring.owners(IDS.slice(1000, 50)) == ring.owners(IDS)[1000:1050]).all()
    assert ring.owner_of(IDS[7].as_py()) == ring.members[int(ring.owners(IDS)[7])]


def test_down_members_own_nothing_until_back(tmp_path: Path) -> None:
    peers_file = tmp_path / "peers"
    peers_file.write_text("# members\nhttp://a:1/\n\nhttp://b:1  # this one\nhttp://c:1\n")
    assert read_peers_file(peers_file) == ("http://a:1", "http://b:1", "http://c:1")
    membership = Membership(self_url="http://b:1", peers_file=peers_file)
    assert membership.ring().members == ("http://a:1", "http://b:1", "http://c:1")
    assert membership.peers == ("http://a:1", "http://c:1")
    assert membership.mark_down("http://c:1")
    assert membership.ring().members == ("http://a:1", "http://b:1")
    assert not membership.mark_down("http://b:1")  # never itself
    assert membership.mark_up("http://c:1")
    assert membership.ring().self_index == 1
    peers_file.write_text("http://a:1\nhttp://c:1\n")
    os.utime(peers_file, ns=(1, 1))
    assert membership.poll()
    assert membership.ring().self_index is None  # removed from the file: owns nothing, forwards all
