"""The fabric picture: valid SVG, every switch and host drawn, links coloured by load."""

import xml.etree.ElementTree as ET

from controller.cli.picture import render_svg, util_colour

NS = "{http://www.w3.org/2000/svg}"


def topo():
    switches = [{"dpid": 1001, "role": "spine", "connected": True, "drained": False},
                {"dpid": 1002, "role": "spine", "connected": False, "drained": True},
                {"dpid": 2001, "role": "leaf", "connected": True, "drained": False},
                {"dpid": 2002, "role": "leaf", "connected": True, "drained": False}]
    links = []
    for leaf in (2001, 2002):
        for spine, sp in ((1001, leaf - 2000), (1002, leaf - 2000)):
            links += [{"src_dpid": leaf, "src_port": spine - 1000, "dst_dpid": spine,
                       "dst_port": sp, "drained": False},
                      {"src_dpid": spine, "src_port": sp, "dst_dpid": leaf,
                       "dst_port": spine - 1000, "drained": False}]
    hosts = [{"mac": "00:00:00:00:00:01", "ip": "10.0.0.1", "dpid": 2001, "port": 3},
             {"mac": "00:00:00:00:00:02", "ip": "10.0.0.2", "dpid": 2002, "port": 3}]
    return {"switches": switches, "links": links, "hosts": hosts, "warnings": []}


def test_picture_is_valid_svg_with_every_node_and_link():
    load = [{"src_dpid": 2001, "src_port": 1, "dst_dpid": 1001, "dst_port": 1,
             "utilization": 0.95}]
    root = ET.fromstring(render_svg(topo(), load))
    assert root.tag == f"{NS}svg"
    rects = root.findall(f"{NS}rect")
    assert len(rects) == 1 + 4  # background + switches
    assert len(root.findall(f"{NS}circle")) == 2
    lines = root.findall(f"{NS}line")
    fabric = [x for x in lines if x.get("stroke-width") == "3" and x.find(f"{NS}title")
              is not None]
    assert len(fabric) == 4  # one per cable, both directions drawn once
    hot = [x for x in fabric if "2001:1 - 1001:1" in x.find(f"{NS}title").text]
    assert hot[0].get("stroke") == util_colour(0.95)
    drained = [x for x in fabric if x.get("stroke-dasharray")]
    assert len(drained) == 2  # spine 1002 is drained: both its cables dashed
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "10.0.0.1" in texts and "2002" in texts


def test_colour_scale_goes_from_green_to_red():
    assert util_colour(0.0) == "#00aa30"
    assert util_colour(1.0) == "#ff0030"
    assert util_colour(7.0) == util_colour(1.0)


def test_three_tiers_are_drawn_in_four_rows():
    t = topo()
    t["switches"].append({"dpid": 3001, "role": "super-spine", "connected": True,
                          "drained": False})
    t["links"] += [{"src_dpid": 1001, "src_port": 9, "dst_dpid": 3001, "dst_port": 1,
                    "drained": False}]
    root = ET.fromstring(render_svg(t, []))
    ys = {}
    for rect, text in zip(root.findall(f"{NS}rect")[1:], root.findall(f"{NS}text")[1:],
                          strict=False):
        ys[int(text.text)] = float(rect.get("y"))
    assert ys[3001] < ys[1001] < ys[2001]
    up = [x for x in root.findall(f"{NS}line") if x.find(f"{NS}title") is not None
          and "1001:9 - 3001:1" in x.find(f"{NS}title").text]
    assert float(up[0].get("y2")) < float(up[0].get("y1"))
