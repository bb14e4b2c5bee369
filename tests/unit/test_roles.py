from controller.core.model.fabric_model import Cable, LinkEnd
from controller.core.model.roles import LEAF, SPINE, SUPER_SPINE, Place, infer_roles


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


# --- three tiers and planes -------------------------------------------------------------
def three_tier(pods=2, leaves=2, spines=2, supers=2):
    """Pod p: leaves 100p+j, spines 10p+i; spine plane i: super-spines 1000i+k. Every leaf
    wired to its pod's spines, spine i of every pod to the super-spines of plane i."""
    leaf_ids, spine_ids, super_ids, cables = [], [], [], []
    for p in range(1, pods + 1):
        for i in range(1, spines + 1):
            spine_ids.append(10 * p + i)
        for j in range(1, leaves + 1):
            leaf = 100 * p + j
            leaf_ids.append(leaf)
            for i in range(1, spines + 1):
                cables.append(cable(leaf, i, 10 * p + i, j))
    for i in range(1, spines + 1):
        for k in range(1, supers + 1):
            ss = 1000 * i + k
            super_ids.append(ss)
            for p in range(1, pods + 1):
                cables.append(cable(10 * p + i, leaves + k, ss, p))
    return leaf_ids, spine_ids, super_ids, cables


def test_three_tier_roles_pods_and_spine_planes():
    leaves, spines, supers, cables = three_tier()
    res = infer_roles(leaves + spines + supers, cables, {d: 1 for d in leaves})
    assert {d for d, r in res.roles.items() if r == LEAF} == set(leaves)
    assert {d for d, r in res.roles.items() if r == SPINE} == set(spines)
    assert {d for d, r in res.roles.items() if r == SUPER_SPINE} == set(supers)
    assert res.warnings == ()
    assert res.places[101] == Place(1, pod=1) and res.places[202] == Place(1, pod=2)
    assert res.places[11] == Place(1, pod=1, spine_plane=1)
    assert res.places[22] == Place(1, pod=2, spine_plane=2)
    assert res.places[1002] == Place(1, spine_plane=1)
    assert res.places[2001] == Place(1, spine_plane=2)


def test_three_tier_leaf_without_hosts_is_a_leaf_and_two_tiers_stay_two():
    leaves, spines, supers, cables = three_tier(pods=3, leaves=3)
    edges = {d: 1 for d in leaves if d != 202}
    res = infer_roles(leaves + spines + supers, cables, edges)
    assert res.roles[202] == LEAF and res.roles[1001] == SUPER_SPINE
    # a two-tier fabric with a leaf without hosts: no super-spine
    res = infer_roles([1, 2, 11, 12, 13], clos([1, 2], [11, 12, 13]), {11: 1, 12: 1})
    assert res.roles == {1: SPINE, 2: SPINE, 11: LEAF, 12: LEAF, 13: LEAF}
    assert res.places[13] == Place(1)


def test_three_tier_miswiring_is_warned_by_name():
    leaves, spines, supers, cables = three_tier(pods=2, leaves=2, spines=2, supers=2)
    cables = [c for c in cables if c != cable(21, 3, 1001, 2)]  # pod 2 misses plane 1's 1001
    cables.append(cable(101, 7, 1002, 7))  # a leaf cabled to a super-spine
    res = infer_roles(leaves + spines + supers, cables, {d: 1 for d in leaves})
    # (1001 reaches one pod only now, but one spine plane only: not a leaf)
    assert res.roles[1001] == SUPER_SPINE and res.roles[1002] == SUPER_SPINE
    assert all(res.roles[s] == SPINE for s in spines)
    assert "leaf-to-super-spine link 101:7 <-> 1002:7 (not a Clos)" in res.warnings
    assert "spine 21 has no link to super-spine(s) 1001 (spine plane 1)" in res.warnings


def test_a_spine_in_two_spine_planes_is_warned():
    leaves, spines, supers, cables = three_tier(pods=2, leaves=2, spines=2, supers=2)
    cables.append(cable(12, 9, 1001, 9))  # pod 1's spine 2 also in spine plane 1
    res = infer_roles(leaves + spines + supers, cables, {d: 1 for d in leaves})
    assert res.roles[1001] == SUPER_SPINE and res.roles[12] == SPINE
    assert ("super-spine 1001 is wired to two spines of pod 1 (11 and 12): a spine in two "
            "spine planes?") in res.warnings


def test_a_pod_missing_a_spine_plane_is_warned():
    leaves, spines, supers, cables = three_tier(pods=3, spines=2)
    cables = [c for c in cables if not (c.a.dpid == 32 or c.b.dpid == 32)]
    res = infer_roles(leaves + spines + supers, cables, {d: 1 for d in leaves})
    assert "pod 3 has no spine in spine plane 2" in res.warnings
    assert res.roles[2001] == SUPER_SPINE


def test_disconnected_planes_are_each_a_clean_clos():
    a = clos([1, 2], [11, 12])
    b = clos([3, 4], [13, 14])
    res = infer_roles([1, 2, 3, 4, 11, 12, 13, 14], a + b, {d: 1 for d in (11, 12, 13, 14)})
    assert res.warnings == ()
    assert {d: p.plane for d, p in res.places.items()} == {
        1: 1, 2: 1, 11: 1, 12: 1, 3: 2, 4: 2, 13: 2, 14: 2}


def test_super_spine_override():
    leaves, spines, supers, cables = three_tier()
    res = infer_roles(leaves + spines + supers, cables, {}, {1001: SUPER_SPINE})
    assert res.roles[1001] == SUPER_SPINE
    assert all(res.roles[s] == SPINE for s in spines)


def test_a_spine_whose_links_are_still_being_found_does_not_make_a_leaf_a_super_spine():
    """Spine 3 connected late: its only link found yet is to leaf 13, which has no
    hosts (servers off). 13 is no super-spine: spine 3 is in no pod yet."""
    cables = clos([1, 2], [11, 12, 13]) + [cable(13, 5, 3, 3)]
    res = infer_roles([1, 2, 3, 11, 12, 13], cables, {11: 1, 12: 1})
    assert res.roles == {1: SPINE, 2: SPINE, 3: SPINE, 11: LEAF, 12: LEAF, 13: LEAF}


def test_a_super_spine_with_a_port_facing_a_router_stays_a_super_spine():
    """Super-spine 1001 has an up port with no link (an uplink to a border router):
    with hosts learnt on the leaves, it still joins two pods."""
    leaves, spines, supers, cables = three_tier()
    edges = {d: 1 for d in leaves} | {1001: 1}
    res = infer_roles(leaves + spines + supers, cables, edges, hosted=leaves)
    assert res.roles[1001] == SUPER_SPINE and res.warnings == ()


def test_a_pod_whose_leaves_lost_their_sessions_keeps_its_super_spines():
    """Pod 2's leaves are disconnected (no port counts), their hosts still known; or,
    after a restart, no host is known yet and the super-spines' previous role (read
    back from what they hold) says they are above the leaves."""
    leaves, spines, supers, cables = three_tier()
    pod1 = [d for d in leaves if d < 200]
    res = infer_roles(leaves + spines + supers, cables, {d: 1 for d in pod1}, hosted=leaves)
    assert {d for d, r in res.roles.items() if r == SUPER_SPINE} == set(supers)
    res = infer_roles(leaves + spines + supers, cables, {},
                      previous={d: SPINE for d in spines + supers})
    assert {d for d, r in res.roles.items() if r == SUPER_SPINE} == set(supers)
    assert {d for d, r in res.roles.items() if r == LEAF} == set(leaves)
