from controller.core.model.fabric_model import Cable, LinkEnd
from controller.core.model.roles import LEAF, SPINE, infer_roles


def cable(a, pa, b, pb):
    x, y = LinkEnd(a, pa), LinkEnd(b, pb)
    return Cable(min(x, y), max(x, y))


def clos(spines, leaves):
    cables = []
    for j, leaf in enumerate(leaves, 1):
        for i, spine in enumerate(spines, 1):
            cables.append(cable(leaf, i, spine, j))
    return cables


def test_clean_clos_roles_from_edge_ports():
    spines, leaves = [1, 2], [11, 12, 13, 14]
    edges = {d: 2 for d in leaves} | {d: 0 for d in spines}
    res = infer_roles(spines + leaves, clos(spines, leaves), edges)
    assert {d for d, r in res.roles.items() if r == SPINE} == set(spines)
    assert {d for d, r in res.roles.items() if r == LEAF} == set(leaves)
    assert res.warnings == ()


def test_square_fabric_without_hosts_picks_side_without_edge_ports():
    # 2x2: both sides equal in size; the leaves have (empty) host ports
    spines, leaves = [5, 6], [1, 2]
    res = infer_roles(spines + leaves, clos(spines, leaves), {1: 1, 2: 1, 5: 0, 6: 0})
    assert res.roles == {1: LEAF, 2: LEAF, 5: SPINE, 6: SPINE}


def test_smaller_side_is_spine_when_nothing_else_tells():
    spines, leaves = [1, 2], [11, 12, 13]
    res = infer_roles(spines + leaves, clos(spines, leaves), {})
    assert {d for d, r in res.roles.items() if r == SPINE} == {1, 2}


def test_overrides_win():
    spines, leaves = [1, 2], [11, 12, 13]
    res = infer_roles(spines + leaves, clos(spines, leaves), {}, {11: SPINE})
    assert res.roles[11] == SPINE
    assert {d for d, r in res.roles.items() if r == SPINE} >= {11, 12, 13}


def test_leaf_to_leaf_link_is_warned():
    spines, leaves = [1, 2], [11, 12, 13, 14]
    cables = clos(spines, leaves) + [cable(11, 9, 12, 9)]
    edges = {d: 2 for d in leaves}
    res = infer_roles(spines + leaves, cables, edges)
    assert res.roles[11] == LEAF and res.roles[12] == LEAF
    assert any("leaf-to-leaf link 11:9 <-> 12:9" in w for w in res.warnings)


def test_leaf_without_uplinks_and_partial_mesh_are_warned():
    spines, leaves = [1, 2], [11, 12, 13]
    cables = [c for c in clos(spines, leaves) if not (c.a.dpid == 2 and c.b.dpid == 13)]
    edges = {d: 2 for d in leaves + [14]}
    res = infer_roles(spines + leaves + [14], cables, edges)
    assert res.roles[14] == LEAF
    assert "leaf 14 has no uplinks to any spine" in res.warnings
    assert "leaf 13 has no link to spine(s) 2" in res.warnings


def test_spine_to_spine_link_is_warned():
    spines, leaves = [1, 2], [11, 12]
    cables = clos(spines, leaves) + [cable(1, 9, 2, 9)]
    res = infer_roles(spines + leaves, cables, {11: 1, 12: 1})
    assert res.roles[1] == SPINE and res.roles[2] == SPINE
    assert any("spine-to-spine" in w for w in res.warnings)


def test_isolated_switch_keeps_its_previous_role():
    res = infer_roles([1, 11], [], {11: 2}, previous={1: SPINE})
    assert res.roles == {1: SPINE, 11: LEAF}
    assert "spine 1 has no links to any leaf" in res.warnings


def test_cabling_plan_reports_missing_and_unexpected_links():
    from controller.core.model.cabling import cabling_warnings

    plan = clos([1, 2], [11, 12])
    found = [c for c in plan if c != cable(12, 2, 2, 2)] + [cable(11, 9, 12, 9)]
    warnings = cabling_warnings(plan, found)
    assert warnings == [
        "missing link 2:2 <-> 12:2 (in the cabling plan, not found)",
        "unexpected link 11:9 <-> 12:9 (not in the cabling plan)",
    ]
    assert cabling_warnings([], found) == []
