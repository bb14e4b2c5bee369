"""The QoS worker when OVSDB cannot be reached: it backs off, says so once, counts, and
never removes anything it could not read; it says when it works again."""

import threading
import time

from apps import qos_app
from apps.ovs_qos import OvsError


def test_the_worker_backs_off_reports_and_recovers(monkeypatch):
    monkeypatch.setattr(qos_app, "RETRY_MIN", 0.01)
    monkeypatch.setattr(qos_app, "RETRY_MAX", 0.2)
    app = qos_app.QosApp()
    announced: list[str] = []
    monkeypatch.setattr(app, "_announce", lambda kind, msg: announced.append(kind))
    attempts: list[float] = []

    def reconcile() -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 5:
            raise OvsError("ovs-vsctl: unix:/var/run/openvswitch/db.sock: database "
                           "connection failed")

    monkeypatch.setattr(app, "reconcile", reconcile)
    worker = threading.Thread(target=app._worker, daemon=True)
    app._wake.set()
    worker.start()
    deadline = time.monotonic() + 5
    while len(attempts) < 7 and time.monotonic() < deadline:
        app._wake.set()
        time.sleep(0.01)
    app.close()
    worker.join(2)
    assert len(attempts) >= 6
    assert app.errors == 5
    assert announced == ["qos_unavailable", "qos_available"]  # once each, not 5 times
    assert app.failing is None
    gaps = [b - a for a, b in zip(attempts[:5], attempts[1:6], strict=True)]
    assert gaps[3] >= 0.08  # it backed off: 0.01, 0.02, 0.04, 0.08 s


def test_in_a_cluster_only_this_instances_unreferenced_rows_are_removed():
    from apps.ovs_qos import NODE_KEY, OWNER_KEY, OWNER_VALUE, OvsQos

    ours = {OWNER_KEY: OWNER_VALUE}
    alone, n1 = OvsQos(), OvsQos(node="n1")
    assert alone._removable(ours) and n1._removable(ours)  # (made by a lone aifabric)
    assert n1._removable({**ours, NODE_KEY: "n1"})
    assert not n1._removable({**ours, NODE_KEY: "n2"})  # another instance's, maybe in use
    assert not alone._removable({**ours, NODE_KEY: "n2"})
    assert not n1._removable({}) and not n1._removable(None)  # not aifabric's
