"""The fabric app's published value: the TE flows list is not rebuilt after every
placement (it is a pass over every tracked flow), but never waits more than a tick."""

from types import SimpleNamespace

from apps.publisher import FLOWS_INTERVAL, Publisher


class Traffic:
    def __init__(self) -> None:
        self.te = object()
        self.builds = 0
        self.placed: tuple[str, ...] = ()

    def flows(self, now: float) -> tuple[str, ...]:
        self.builds += 1
        return self.placed

    def job_infos(self) -> tuple:
        return ()


def publisher() -> tuple[Publisher, Traffic]:
    traffic = Traffic()
    core = SimpleNamespace(qos=None, traffic=traffic, snapshot=lambda now: None)
    return Publisher(core), traffic  # type: ignore[arg-type]


def test_placements_in_quick_succession_publish_the_flows_once_then_on_the_tick():
    pub, traffic = publisher()
    traffic.placed = ("a",)
    pub.synced(10.0, everything=False)
    assert pub.value.flows == ("a",) and traffic.builds == 1
    for k in range(1, 20):  # a burst of placements, each synced on its own
        traffic.placed = tuple("a" * (k + 1))
        pub.synced(10.0 + k * FLOWS_INTERVAL / 20, everything=False)
    assert traffic.builds == 1 and pub.value.flows == ("a",)
    pub.refresh(10.0 + FLOWS_INTERVAL)  # (the next tick)
    assert traffic.builds == 2 and pub.value.flows == traffic.placed
    pub.refresh(10.0 + 2 * FLOWS_INTERVAL)  # nothing new: no rebuild
    assert traffic.builds == 2


def test_a_sync_of_everything_and_a_late_placement_publish_at_once():
    pub, traffic = publisher()
    pub.synced(10.0, everything=False)
    traffic.placed = ("b",)
    pub.synced(10.01, everything=True)
    assert pub.value.flows == ("b",)
    traffic.placed = ("c",)
    pub.synced(10.01 + FLOWS_INTERVAL, everything=False)
    assert pub.value.flows == ("c",) and traffic.builds == 3
