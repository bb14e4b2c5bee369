"""Who may hold a dpid (controller.core.southbound.claims): the allow-list, and a second
connection claiming a connected switch's dpid."""

from controller.core.southbound.claims import ASK, ECHO_DATA, REFUSE, DpidClaims


class Conn:  # (an opaque connection: compared by identity)
    def __init__(self, name: str) -> None:
        self.name = name


def test_any_dpid_without_an_allow_list_and_only_those_listed_with_one():
    assert DpidClaims(1.0).admits(7)
    claims = DpidClaims(1.0, allowed=frozenset({1001, 2001}))
    assert claims.admits(2001) and not claims.admits(2002) and not claims.admits(0)
    assert claims.not_allowed == 2


def test_a_holder_that_answers_keeps_its_dpid_and_the_newcomer_is_refused():
    claims, holder, newcomer = DpidClaims(1.0), Conn("switch"), Conn("impostor")
    assert claims.claim(2001, holder, newcomer, now=10.0) == ASK
    assert claims.pending(2001).newcomer is newcomer and claims.pending(2001).holder is holder
    claims.pending(2001).xid = 77  # (the echo's, once sent)
    assert claims.answered(holder, b"someone else's echo", 77) is None  # (not ours)
    assert claims.answered(newcomer, ECHO_DATA, 77) is None  # (only the holder's answer)
    assert claims.answered(holder, ECHO_DATA, 76) is None  # (a late reply to an older one)
    claim = claims.answered(holder, ECHO_DATA, 77)
    assert claim is not None and claim.newcomer is newcomer and claim.dpid == 2001
    assert claims.pending(2001) is None and claims.refused == 1
    assert claims.expired(now=100.0) == []  # (settled: nothing left to time out)
    assert claims.taken_over == 0


def test_a_holder_that_does_not_answer_in_time_gives_the_dpid_to_the_newcomer():
    claims, holder, newcomer = DpidClaims(1.0), Conn("dead session"), Conn("switch")
    claims.claim(2001, holder, newcomer, now=10.0)
    claims.pending(2001).xid = 5
    assert claims.expired(now=10.9) == []
    [claim] = claims.expired(now=11.0)
    assert claim.newcomer is newcomer and claim.holder is holder
    assert claims.taken_over == 1 and claims.pending(2001) is None
    assert claims.answered(holder, ECHO_DATA, 5) is None  # (too late: no refusal)


def test_one_claim_per_dpid_at_a_time_a_further_one_is_refused_at_once():
    claims, holder = DpidClaims(1.0), Conn("switch")
    first, second = Conn("a"), Conn("b")
    assert claims.claim(2001, holder, first, now=0.0) == ASK
    assert claims.claim(2001, holder, second, now=0.1) == REFUSE
    assert claims.pending(2001).newcomer is first
    assert claims.claim(2002, Conn("other switch"), second, now=0.1) == ASK  # (per dpid)
    assert claims.refused == 1


def test_sessions_that_end_while_a_claim_waits():
    claims, holder, newcomer = DpidClaims(1.0), Conn("switch"), Conn("newcomer")
    claims.claim(2001, holder, newcomer, now=0.0)
    assert claims.ended(newcomer) is None  # the newcomer gave up: nothing to take over
    assert claims.pending(2001) is None and claims.taken_over == 0
    claims.claim(2001, holder, newcomer, now=1.0)
    claim = claims.ended(holder)  # the holder's session ended: the newcomer takes it
    assert claim is not None and claim.newcomer is newcomer and claims.taken_over == 1
    assert claims.ended(Conn("anyone")) is None
