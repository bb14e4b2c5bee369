import pytest

from controller.core.model.monitor import LoadMonitor, PortCounters, utilization


def counters(tx, rx=0, drops=0, errors=0):
    return PortCounters(tx, rx, drops, 0, errors, 0)


def test_rate_from_deltas_and_smoothing():
    m = LoadMonitor(alpha=0.5)
    m.update(1, 1, counters(0), 10.0)
    assert m.tx_bps(1, 1) == 0.0  # one reading is no rate yet
    m.update(1, 1, counters(1_250_000), 11.0)  # 10 Mbit in 1 s
    assert m.tx_bps(1, 1) == pytest.approx(10e6)  # the first rate is taken as it is
    m.update(1, 1, counters(1_250_000), 12.0)  # idle second
    assert m.tx_bps(1, 1) == pytest.approx(5e6)  # halfway with alpha 0.5
    assert utilization(m.tx_bps(1, 1), 10e6) == pytest.approx(0.5)


def test_counter_reset_does_not_produce_a_negative_rate():
    m = LoadMonitor(alpha=1.0)
    m.update(1, 1, counters(0), 1.0)
    m.update(1, 1, counters(1_250_000), 2.0)
    m.update(1, 1, counters(100), 3.0)  # the switch restarted: no sample from this pair
    assert m.tx_bps(1, 1) == pytest.approx(10e6)
    m.update(1, 1, counters(625_100), 4.0)  # rates resume from the new baseline
    assert m.tx_bps(1, 1) == pytest.approx(5e6)


def test_drops_and_errors_per_second():
    m = LoadMonitor(alpha=1.0)
    m.update(1, 2, counters(0, drops=0, errors=0), 0.0)
    m.update(1, 2, counters(0, drops=50, errors=4), 2.0)
    load = m.load(1, 2)
    assert load.drops_per_s == pytest.approx(25) and load.errors_per_s == pytest.approx(2)


def test_forget_switch_and_unknown_speed():
    m = LoadMonitor()
    m.update(1, 1, counters(0), 0.0)
    m.update(2, 1, counters(0), 0.0)
    m.forget_switch(1)
    assert m.load(1, 1) is None and m.load(2, 1) is not None
    assert utilization(5e6, 0) == 0.0


def test_link_stats_from_the_source_port_of_each_direction():
    from controller.core.model.monitor import link_stats
    from controller.core.snapshot import LinkInfo

    m = LoadMonitor(alpha=1.0)
    m.update(2001, 1, PortCounters(0, 0, 0, 0, 0, 0), 1.0)
    m.update(2001, 1, PortCounters(625_000, 0, 10, 0, 2, 0), 2.0)  # 5 Mbit/s, 10 drops/s
    links = [LinkInfo(2001, 1, 1001, 1, 0.0), LinkInfo(1001, 1, 2001, 1, 0.0)]
    speeds = {(2001, 1): 10e6}  # the other end's speed is unknown
    up, down = link_stats(links, m, lambda d, p: speeds.get((d, p), 0.0))
    assert (up.rate_bps, up.utilization, up.drops_per_second, up.errors_per_second) == (
        pytest.approx(5e6), pytest.approx(0.5), pytest.approx(10.0), pytest.approx(2.0))
    assert (down.rate_bps, down.utilization) == (0.0, 0.0)  # no reading: nothing made up
