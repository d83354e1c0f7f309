"""Hostile input from a member (issue 13): a well-signed frame can say anything. No sequence of valid but
arbitrary messages, timers and hints may make `step()` raise (in the daemon that ends the process), and
an epoch implausibly far above a node's own is rejected at the door instead of being persisted."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.algorithms import make_algorithm
from node.algorithms.base import EPOCH_JUMP_MAX, EPOCH_MAX
from node.core.actions import Log, Persist, Role
from node.core.events import Event, MessageReceived, PeerUnreachable, Start, TimerFired, TimerId
from node.core.messages import (
    MAX_INTEGER,
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    Election,
    Heartbeat,
    Message,
    Ok,
    PreVoteAnswer,
    Promise,
    Propose,
    Resign,
    TokenRefused,
)
from node.core.protocol import Algorithm
from node.core.settings import Settings
from node.core.state import DurableState

from .states import leader
from .test_ring_transitions import leading

MEMBERS = (1, 2, 3, 4, 5)
ME = 3

members = st.sampled_from(MEMBERS)
any_id = st.one_of(members, st.integers(0, 9), st.just(MAX_INTEGER))
epochs = st.one_of(st.integers(0, 40), st.integers(0, MAX_INTEGER), st.just(MAX_INTEGER))
stamps = st.one_of(st.none(), st.integers(0, 60_000), st.just(MAX_INTEGER))
id_lists = st.lists(any_id, max_size=7).map(tuple)

hostile_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Heartbeat,
        sender=members,
        epoch=epochs,
        leader_id=st.none() | any_id,
        sent_ms=stamps,
        echo_ms=stamps,
    ),
    st.builds(Election, sender=members, epoch=epochs, initiator=any_id, ids=id_lists, abstained=id_lists),
    st.builds(Ok, sender=members, epoch=epochs),
    st.builds(Coordinator, sender=members, epoch=epochs, leader_id=any_id, initiator=any_id),
    st.builds(
        Propose,
        sender=members,
        epoch=epochs,
        pre_vote=st.booleans(),
        resigned_leader=st.none() | any_id,
        sent_ms=stamps,
    ),
    st.builds(
        Promise, sender=members, epoch=epochs, granted=st.booleans(), known_epoch=epochs, echo_ms=stamps
    ),
    st.builds(
        PreVoteAnswer, sender=members, epoch=epochs, granted=st.booleans(), known_epoch=epochs, echo_ms=stamps
    ),
    st.builds(ConfirmRefused, sender=members, epoch=epochs, known_epoch=epochs),
    st.builds(TokenRefused, sender=members, epoch=epochs, known_epoch=epochs),
    st.builds(Resign, sender=members, epoch=epochs),
    st.builds(Confirm, sender=members, epoch=epochs, initiator=any_id, sent_ms=st.integers(0, MAX_INTEGER)),
    st.builds(Confirmed, sender=members, epoch=epochs, echo_ms=st.integers(0, MAX_INTEGER)),
)

# (milliseconds later, what happens then)
inputs = st.lists(
    st.tuples(
        st.integers(0, 3_000),
        st.one_of(
            hostile_messages,
            st.sampled_from(list(TimerId)),
            st.builds(PeerUnreachable, now_ms=st.just(0), peer_id=any_id),
        ),
    ),
    max_size=60,
)


def drive(algorithm: str, epoch: int, script: list[tuple[int, object]]) -> None:
    settings_ = Settings(node_id=ME, member_ids=MEMBERS)
    node = make_algorithm(algorithm, settings_, DurableState(epoch, None), random.Random(0))
    now_ms = 0
    node.step(Start(now_ms))
    for delay_ms, item in script:
        now_ms += delay_ms
        event: Event
        if isinstance(item, TimerId):
            event = TimerFired(now_ms, item)
        elif isinstance(item, PeerUnreachable):
            event = PeerUnreachable(now_ms, item.peer_id)
        else:
            assert not isinstance(item, TimerId | PeerUnreachable)
            event = MessageReceived(now_ms, item)  # type: ignore[arg-type]
        for action in node.step(event):  # every action it builds is valid (construction validates)
            if isinstance(action, Persist):
                assert action.state.epoch <= EPOCH_MAX + 2 * len(MEMBERS), action


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["bully", "ring"]), st.sampled_from([0, 7]), inputs)
def test_no_sequence_of_valid_messages_makes_step_raise(algorithm: str, epoch: int, script: list) -> None:
    drive(algorithm, epoch, script)


def _leader(algorithm: str) -> tuple[Algorithm, int]:
    """Node 5 of 1..5 leading, built by real events (the transition tables' given-states)."""
    driven = leader(5, epoch=4) if algorithm == "bully" else leading(5)
    return driven.algorithm, driven.now_ms


def test_a_signed_claim_to_our_own_epoch_is_rejected_and_we_keep_leading() -> None:
    for algorithm in ("bully", "ring"):
        node, now_ms = _leader(algorithm)
        epoch = node.view(now_ms).epoch
        actions = node.step(MessageReceived(now_ms + 1, Heartbeat(4, epoch, 4, sent_ms=now_ms)))
        assert [a.event for a in actions if isinstance(a, Log)] == ["message_rejected"], actions
        assert node.view(now_ms + 1).role is Role.LEADER


def test_an_epoch_implausibly_far_ahead_is_rejected_at_the_door() -> None:
    for algorithm in ("bully", "ring"):
        node, now_ms = _leader(algorithm)
        epoch = node.view(now_ms).epoch
        for claimed in (epoch + EPOCH_JUMP_MAX + 1, MAX_INTEGER):
            for message in (Coordinator(4, claimed, 4, 4), Heartbeat(4, claimed, None)):
                actions = node.step(MessageReceived(now_ms + 1, message))
                assert [a.event for a in actions if isinstance(a, Log)] == ["message_rejected"], actions
                assert not [a for a in actions if isinstance(a, Persist)]
                assert node.view(now_ms + 1).role is Role.LEADER
        # a big but plausible jump is still followed: a rejoining cluster may be far ahead
        actions = node.step(MessageReceived(now_ms + 2, Coordinator(4, epoch + EPOCH_JUMP_MAX, 4, 4)))
        assert Persist(DurableState(epoch + EPOCH_JUMP_MAX, None)) in actions
