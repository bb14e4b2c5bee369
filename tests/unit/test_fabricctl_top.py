"""fabricctl top's screen, from plain data."""

from controller.cli.top_cmd import top_frame


def link(src, dst, util):
    return {"src_dpid": src, "src_port": 1, "dst_dpid": dst, "dst_port": 2,
            "rate_bps": util * 5e6, "utilization": util, "drops_per_second": 0.0}


def queue(dpid, port, q, errors):
    return {"dpid": dpid, "port": port, "port_name": f"s{dpid}-eth{port}", "queue": q,
            "tx_bytes": 0, "tx_packets": 0, "tx_errors": errors}


def test_busiest_links_first_and_only_queues_that_dropped_since_last_frame():
    links = [link(2001, 1001, 0.1), link(2002, 1002, 0.9), link(2003, 1001, 0.5)]
    queues = [queue(2001, 1, 0, 50), queue(2001, 1, 3, 7)]
    frame = top_frame(links, queues, {(2001, 1, 0): 50, (2001, 1, 3): 2}, 1.0, 8, rows=2)
    lines = frame.splitlines()
    assert "3 link directions, 8 tracked flows" in lines[0]
    body = [x for x in lines if "->" in x]
    assert body[0].startswith("2002:1 -> 1002:2") and "90%" in body[0]
    assert "#" * 18 in body[0] and len(body) == 2  # rows=2: the idlest is left out
    assert any("2001:1 q3" in x and "5.0" in x for x in lines)
    assert not any("2001:1 q0" in x for x in lines)  # no new drops there


def test_first_frame_has_no_drop_rates_yet():
    frame = top_frame([link(2001, 1001, 0.2)], [queue(2001, 1, 0, 9)], {}, 0.0, 0, rows=5)
    assert "no queue dropped packets since the last refresh" in frame
