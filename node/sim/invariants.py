"""Safety and liveness invariants, checked by the simulator after every step.

The monitors see only observations (what a node persisted, sent, logged and reports in its view), never
the simulator itself, so that tests can feed them hand-made bad observations.

Safety rules (docs/architecture.md, "Safety rules"):
1. one-leader-per-epoch: no two nodes ever lead under the same epoch. Also checked against ground truth:
   a node becomes leader of E only when a majority has *persisted* a promise of E to one candidate
   (itself in Bully, the ring election's initiator in Ring: `leader-without-quorum`), and a node never
   persists two different promises for one epoch (`double-promise`).
2. epochs-monotonic: a node's view epoch and durable epoch never decrease, across restarts too.
   persist-before-send: no message asserts an epoch above the sender's durable epoch at send time, a
   view epoch is never above the durable epoch after a step, and a leader's epoch is durable.
   accept-below-own-epoch: a node never follows (leader_accepted) a leader under an epoch below its
   durable epoch: it promised that epoch to a candidate whose term it would undermine.
3. stale-leader: a live, running node never reports role leader after it has received nothing from
   floor(N/2) distinct peers for more than `failure_timeout_ms + slack_ms`. The scheduler fires a timer
   at exactly its `at_ms`, so the slack the simulator needs is 0 ms (default); a paused node is exempt
   while paused (it cannot act) and is checked again from its first step after resuming.
   stale-claim: once some node has become leader of epoch E, no node claims to lead (HEARTBEAT naming
   itself, COORDINATOR for itself) under an epoch below E: an old leader, resumed from a pause or cut
   off, never acts under its old epoch again (the leader lease makes this hold at equal clock rates).
4. liveness: see `LivenessMonitor`.
With a byzantine member (`distrust`, the opt-in `byzantine-member` nemeses): every per-node rule
(epochs-monotonic, persist-before-send, accept-below-own-epoch, double-promise on the node's own disk,
stale-leader, role-published) holds for every node as before, the liar's own honest algorithm included
(its forgeries bypass its algorithm). A liar that only disturbs (`forges_votes=False`) leaves the global
rules in force for the honest nodes: leader-without-quorum for every leader, one-leader-per-epoch
between two honest leaders, stale-claim for the claims of honest nodes (the liar may claim to lead in
its own name anyway, and it can undercut its own honest process: a forged RESIGN of its own leadership
frees its followers while that process still holds its lease). A liar that forges votes (a granted
PROMISE, CONFIRMED, a lease echo) is one voter that can promise twice, which no crash-fault protocol
survives: from its first forgery to the end of the run, leader-without-quorum counts it as a wildcard
voter (a leader needs quorum - 1 persisted honest promises to one candidate), and one-leader-per-epoch
and stale-claim, whose proofs rest on the one voter that two majorities share, are not checked
(docs/security.md).
Driver contract: a node's view (what /status shows) matches its last RoleChanged (`role-published`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.core.actions import Role
from node.core.messages import Answer, Election, Message, Promise, Propose
from node.core.settings import quorum_size
from node.core.state import DurableState

SAFETY = "safety"
LIVENESS = "liveness"
NEVER_MS = 2**63  # a deadline that never comes


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str  # SAFETY or LIVENESS
    rule: str
    time_ms: int
    node_id: int | None
    detail: str

    def describe(self) -> str:
        where = f"node {self.node_id}" if self.node_id is not None else "cluster"
        return f"{self.kind} violation [{self.rule}] at {self.time_ms} ms, {where}: {self.detail}"


class InvariantViolatedError(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.describe())
        self.violation = violation


def asserted_epochs(message: Message) -> tuple[int, ...]:
    """The epochs a message claims the sender has durably promised or accepted.

    A pre-vote PROPOSE binds no one, so its epoch is not persisted; an answer (PROMISE, PRE_VOTE_ANSWER,
    CONFIRM_REFUSED, TOKEN_REFUSED) echoes the asked epoch, which the voter made durable only when it
    granted a binding PROMISE; a ring token that a node passed on without voting (`abstained`) carries the
    initiator's epoch, not the relay's.
    """
    if isinstance(message, Propose):
        return () if message.pre_vote else (message.epoch,)
    if isinstance(message, Election) and message.sender in message.abstained:
        return ()  # a ring token passed on without a vote: the epoch is the initiator's
    if isinstance(message, Promise) and message.granted:
        return (message.known_epoch, message.epoch)
    if isinstance(message, Answer):
        return (message.known_epoch,)
    return (message.epoch,)


@dataclass(slots=True)
class SafetyMonitor:
    cluster_size: int
    failure_timeout_ms: int
    slack_ms: int = 0
    fail_fast: bool = True
    violations: list[Violation] = field(default_factory=list)
    leader_of_epoch: dict[int, int] = field(default_factory=dict)
    highest_leader_epoch: int = 0
    promises: dict[tuple[int, int], set[int]] = field(default_factory=dict)  # (epoch, candidate)
    max_view_epoch: dict[int, int] = field(default_factory=dict)
    liar: int | None = None  # a byzantine member (`distrust`)
    liar_forges_votes: bool = False

    def distrust(self, liar: int, *, forges_votes: bool) -> None:
        """From now to the end of the run, `liar` sends forged messages; `forges_votes`: among them its
        "I back you" (granted PROMISE, CONFIRMED, lease echoes). Which global rules then still hold: see
        the module's docstring."""
        if self.liar is not None and self.liar != liar:
            raise ValueError(f"one byzantine member per run: {self.liar} already, not {liar}")
        self.liar = liar
        self.liar_forges_votes = self.liar_forges_votes or forges_votes

    def _fail(self, rule: str, now_ms: int, node_id: int | None, detail: str) -> None:
        violation = Violation(SAFETY, rule, now_ms, node_id, detail)
        self.violations.append(violation)
        if self.fail_fast:
            raise InvariantViolatedError(violation)

    def _exempt(self, node_id: int) -> bool:
        """One-leader-per-epoch and stale-claim do not judge this node's leadership (`distrust`)."""
        return self.liar_forges_votes or node_id == self.liar

    def on_persist(self, now_ms: int, node_id: int, old: DurableState, new: DurableState) -> None:
        if new.epoch < old.epoch:
            self._fail(
                "epochs-monotonic", now_ms, node_id, f"durable epoch went from {old.epoch} to {new.epoch}"
            )
        if new.voted_for is None:
            return
        if new.epoch == old.epoch and old.epoch > 0 and new.voted_for != old.voted_for:
            before = f"promised to {old.voted_for}" if old.voted_for is not None else "accepted"
            self._fail(
                "double-promise",
                now_ms,
                node_id,
                f"promised epoch {new.epoch} to {new.voted_for} after it had already {before} it",
            )
        self.promises.setdefault((new.epoch, new.voted_for), set()).add(node_id)

    def on_wipe(self, node_id: int) -> None:
        """The node's disk was lost (a nemesis): its epochs start again from 0, by no fault of its own.
        What must still hold is global: one leader per epoch, and a majority of promises behind each."""
        self.max_view_epoch.pop(node_id, None)

    def on_send(self, now_ms: int, node_id: int, message: Message, durable_epoch: int) -> None:
        if message.epoch <= durable_epoch and getattr(message, "known_epoch", 0) <= durable_epoch:
            return  # the common case, decided without building the tuple
        epoch = max(asserted_epochs(message), default=0)
        if epoch > durable_epoch:
            self._fail(
                "persist-before-send",
                now_ms,
                node_id,
                f"sent {message!r} carrying epoch {epoch} above its durable epoch {durable_epoch}",
            )

    def on_accept(self, now_ms: int, node_id: int, epoch: int, durable_epoch: int) -> None:
        """`node_id` logged leader_accepted for `epoch`. A node never follows a leader under an epoch
        below the one on its disk: it promised that epoch to someone, whose term it would undermine."""
        if epoch < durable_epoch:
            self._fail(
                "accept-below-own-epoch",
                now_ms,
                node_id,
                f"follows a leader of epoch {epoch} with epoch {durable_epoch} on its disk",
            )

    def on_claim(self, now_ms: int, node_id: int, message: Message) -> None:
        """`message` claims that its sender leads under `message.epoch` (a HEARTBEAT naming itself as
        leader, or its COORDINATOR). Once a higher epoch has a leader, an older leader must never act."""
        if self.highest_leader_epoch > message.epoch and not self._exempt(node_id):
            newer = self.highest_leader_epoch
            self._fail(
                "stale-claim",
                now_ms,
                node_id,
                f"claims to lead epoch {message.epoch} ({message!r}) after node"
                f" {self.leader_of_epoch[newer]} became leader of epoch {newer}",
            )

    def on_office(self, now_ms: int, node_id: int, epoch: int, why_not: str | None) -> None:
        """A node published role leader under `epoch`; `why_not` is what should have stopped it."""
        if why_not is not None:
            self._fail("office-when-barred", now_ms, node_id, f"leads epoch {epoch} although {why_not}")

    def on_leader(self, now_ms: int, node_id: int, epoch: int) -> None:
        self.highest_leader_epoch = max(self.highest_leader_epoch, epoch)
        holder = self.leader_of_epoch.setdefault(epoch, node_id)
        if holder != node_id and not (self._exempt(node_id) or self._exempt(holder)):
            self._fail(
                "one-leader-per-epoch", now_ms, node_id, f"leads epoch {epoch}, already led by node {holder}"
            )
        # Bully: the leader collected the promises itself. Ring: the initiator collected them and the
        # winner leads; either way some candidate holds a majority of persisted promises for `epoch`.
        quorum = quorum_size(self.cluster_size)
        backers = {c: v for (e, c), v in self.promises.items() if e == epoch}
        wildcard = {self.liar} if self.liar_forges_votes and self.liar is not None else set()
        if wildcard and not backers:
            backers = {node_id: set()}  # the liar alone may have "promised" to anyone
        if not any(len(voters | wildcard) >= quorum for voters in backers.values()):
            promised = ", ".join(f"to {c}: {sorted(v)}" for c, v in sorted(backers.items())) or "none"
            joker = f", node {self.liar} counted as a wildcard voter" if wildcard else ""
            self._fail(
                "leader-without-quorum",
                now_ms,
                node_id,
                f"leads epoch {epoch} but no candidate holds a majority ({quorum} of {self.cluster_size})"
                f" of persisted promises for it (promises {promised}{joker})",
            )

    def on_view(
        self, now_ms: int, node_id: int, *, role: Role, epoch: int, durable: DurableState, restarted: bool
    ) -> None:
        previous = self.max_view_epoch.get(node_id, 0)
        if epoch < previous:
            how = "across a restart" if restarted else "while running"
            self._fail(
                "epochs-monotonic", now_ms, node_id, f"view epoch went from {previous} to {epoch} {how}"
            )
        self.max_view_epoch[node_id] = max(previous, epoch)
        if epoch > durable.epoch:
            self._fail(
                "persist-before-send",
                now_ms,
                node_id,
                f"reports epoch {epoch} but only {durable.epoch} is durable (accepted without persisting)",
            )
        if role is Role.LEADER and epoch != durable.epoch:
            self._fail(
                "persist-before-send",
                now_ms,
                node_id,
                f"leads under epoch {epoch} but its durable epoch is {durable.epoch}",
            )

    def on_published(
        self,
        now_ms: int,
        node_id: int,
        viewed: tuple[Role, int | None, int],
        published: tuple[Role, int | None, int] | None,
    ) -> None:
        """The view (what /status shows) must match the last RoleChanged (what the driver acts on:
        sd_notify STATUS, metrics); a mismatch means a state change was never announced."""
        if viewed != published:
            self._fail(
                "role-published",
                now_ms,
                node_id,
                f"view shows (role, leader, epoch) = {viewed} but the last RoleChanged said {published}",
            )

    def check_stale_leader(
        self, now_ms: int, node_id: int, epoch: int, heard_ms: dict[int, int], since_ms: int
    ) -> None:
        """`heard_ms`: when this node last received anything from each peer, in its current life;
        `since_ms`: when that life began."""
        if now_ms > self.stale_leader_deadline_ms(heard_ms, since_ms):
            needed = self.cluster_size // 2
            recent = sorted(heard_ms.values(), reverse=True)
            silent_ms = now_ms - (recent[needed - 1] if len(recent) >= needed else since_ms)
            heard = ", ".join(f"{peer}@{at}" for peer, at in sorted(heard_ms.items())) or "nobody"
            self._fail(
                "stale-leader",
                now_ms,
                node_id,
                f"leads epoch {epoch} but has heard from fewer than {needed} peers for {silent_ms} ms"
                f" (failure_timeout {self.failure_timeout_ms} ms; last heard: {heard})",
            )

    def stale_leader_deadline_ms(self, heard_ms: dict[int, int], since_ms: int) -> int:
        """After this time a leader that has heard nothing more breaks the stale-leader rule: the time it
        last heard floor(N/2) distinct peers (or its start), plus failure_timeout and the slack."""
        needed = self.cluster_size // 2
        if needed == 0:
            return NEVER_MS  # a one-node cluster needs nobody
        recent = sorted(heard_ms.values(), reverse=True)
        cut_off_since_ms = recent[needed - 1] if len(recent) >= needed else since_ms
        return cut_off_since_ms + self.failure_timeout_ms + self.slack_ms


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    role: Role
    leader_id: int | None
    epoch: int


@dataclass(slots=True)
class LivenessMonitor:
    """Rule 4: after faults stop at `healed_ms`, the `expected` nodes (alive and connected: all of them
    or a majority) must agree on one leader among them, with one epoch, no later than
    `healed_ms + bound_ms`, and keep agreeing until the run ends (no churn once faults are over).

    Views can agree right at the heal and then fall apart as the last fault's effects (a delayed
    heartbeat, a detector deadline) play out; that is allowed, so what counts is the start of the
    agreement that lasts to the end."""

    healed_ms: int
    bound_ms: int
    expected: frozenset[int]
    converged_ms: int | None = None  # start of the current agreement
    leader_id: int | None = None
    epoch: int | None = None
    lost_after_deadline_ms: int | None = None  # an agreement reached in time broke afterwards
    lost_detail: str = ""

    def observe(self, now_ms: int, nodes: dict[int, NodeSnapshot]) -> None:
        agreed = self._agreement(nodes)
        if agreed is not None and agreed == (self.leader_id, self.epoch) and self.converged_ms is not None:
            return
        deadline_ms = self.healed_ms + self.bound_ms
        if self.converged_ms is not None and self.lost_after_deadline_ms is None and now_ms > deadline_ms:
            self.lost_after_deadline_ms = now_ms
            self.lost_detail = (
                f"leader {self.leader_id} epoch {self.epoch} agreed since {self.converged_ms} ms, then: "
                + _describe(nodes, self.expected)
            )
        if agreed is None:
            self.converged_ms, self.leader_id, self.epoch = None, None, None
        else:
            self.converged_ms = now_ms
            self.leader_id, self.epoch = agreed

    def _agreement(self, nodes: dict[int, NodeSnapshot]) -> tuple[int, int] | None:
        leaders = [node_id for node_id, snap in nodes.items() if snap.role is Role.LEADER]
        if len(leaders) != 1 or leaders[0] not in self.expected:
            return None
        leader_id = leaders[0]
        epoch = nodes[leader_id].epoch
        for node_id in self.expected:
            snap = nodes.get(node_id)
            if snap is None or snap.leader_id != leader_id or snap.epoch != epoch:
                return None
        return leader_id, epoch

    def finish(self, now_ms: int, nodes: dict[int, NodeSnapshot]) -> list[Violation]:
        deadline_ms = self.healed_ms + self.bound_ms
        if self.lost_after_deadline_ms is not None:
            return [
                Violation(
                    LIVENESS,
                    "leader-churn",
                    self.lost_after_deadline_ms,
                    None,
                    f"healed at {self.healed_ms} ms, agreement lost without any fault: {self.lost_detail}",
                )
            ]
        if self.converged_ms is None or self.converged_ms > deadline_ms:
            when = "at the end" if self.converged_ms is None else f"from {self.converged_ms} ms"
            return [
                Violation(
                    LIVENESS,
                    "no-single-leader",
                    min(now_ms, deadline_ms),
                    None,
                    f"healed at {self.healed_ms} ms; nodes {sorted(self.expected)} did not agree on one"
                    f" leader by {deadline_ms} ms (bound {self.bound_ms} ms) {when}:"
                    f" {_describe(nodes, self.expected)}",
                )
            ]
        return []


def _describe(nodes: dict[int, NodeSnapshot], expected: frozenset[int]) -> str:
    parts = []
    for node_id, snap in sorted(nodes.items()):
        mark = "" if node_id in expected else " (not expected)"
        parts.append(f"{node_id}:{snap.role.value}/leader={snap.leader_id}/epoch={snap.epoch}{mark}")
    return "; ".join(parts)
