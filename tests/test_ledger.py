"""The ledger of a client's submissions, without a cluster (futures are plain objects)."""

from __future__ import annotations

import operator

from pydispatch import Op
from pydispatch.dask_adapter.ledger import Ledger


def test_identical_node_objects_share_a_key_and_each_is_known():
    ledger: Ledger[str] = Ledger()
    a, b = Op(operator.add, 1, 2), Op(operator.add, 1, 2)
    ledger.record(a, "add-1", [])
    ledger.record(b, "add-1", [])
    ledger.hold("add-1", "future-1")
    assert ledger.key_of(a) == ledger.key_of(b) == "add-1"
    assert ledger.key_of(Op(operator.add, 1, 2)) is None  # a third object was never submitted
    assert ledger.keys == {"add-1"} and ledger.futures() == ["future-1"]


def test_cancel_reaches_everything_downstream_and_resubmission_clears_it():
    ledger: Ledger[str] = Ledger()
    x, y, z, other = (Op(abs, i) for i in range(4))
    ledger.record(x, "x", [])
    ledger.record(y, "y", ["x"])
    ledger.record(z, "z", ["y"])
    ledger.record(other, "other", [])
    for key in ("x", "y", "z", "other"):
        ledger.hold(key, f"f-{key}")
    assert ledger.downstream(["x"]) == {"x", "y", "z"}
    assert sorted(ledger.cancel(ledger.downstream(["y"]))) == ["f-y", "f-z"]
    assert ledger.is_cancelled("z") and not ledger.is_cancelled("x")
    assert ledger.keys == {"x", "other"}
    ledger.record(z, "z", ["y"])  # submitted again
    assert not ledger.is_cancelled("z")


def test_a_reused_id_is_not_mistaken_for_the_submitted_node():
    ledger: Ledger[str] = Ledger()
    node = Op(abs, 1)
    ledger.record(node, "abs-1", [])
    del node  # the ledger keeps the node alive, so its id cannot be reused meanwhile
    assert all(ledger.key_of(Op(abs, 1)) is None for _ in range(100))


def test_drop_and_clear():
    ledger: Ledger[str] = Ledger()
    node = Op(abs, 1)
    ledger.record(node, "k", [])
    ledger.hold("k", "f")
    ledger.drop("k")
    assert ledger.future("k") is None
    ledger.hold("k", "f")
    ledger.clear()
    assert ledger.keys == set() and ledger.key_of(node) is None
