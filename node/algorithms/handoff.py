"""Who may lead, and handing leadership on: eligibility, the before_lead gate, switchover and RESIGN.

- Eligible: a node runs for leader (and takes office) only while nothing rules it out: a failing
  health check or maintenance (EligibilityChanged, from the runtime), or the back-off after it declined
  or handed off (`_hold_off`). An ineligible node still votes and follows. Its heartbeats say so
  (`eligible`), so a peer does not wait for it: Bully asks only eligible higher ids, a resigned leader's
  successor is the highest live eligible id, a ring election chooses the highest eligible id listed.
- The gate: with before_lead configured (`settings.gated`) a winner runs it (RunGate) after the
  majority's promises and before it asks them to confirm; it takes office only if it passed. A failed
  gate, or a winner that became ineligible, declines: it hands the epoch on (RESIGN, `staying`) so that
  its voters elect another node at once, and holds off elections for a back-off.
- Switchover: the leader hands off (RESIGN naming the `successor`, or none: the best eligible node), the
  same path as `systemctl stop` except that it stays, a follower held off for election_timeout.

None of this weakens a safety rule: a RESIGN only starts an election early, and an election still needs
a majority's promises and confirmations (docs/algorithms.md, "Eligibility, the gate and switchover").
"""

from __future__ import annotations

from node.algorithms.machine import Machine, Phase
from node.core.actions import EventName, LogLevel, RunGate
from node.core.events import TimerId
from node.core.messages import Resign
from node.core.state import DurableState

GATE_MARGIN_MS = 1_000  # the runtime reports a gate it killed at gate_timeout; the core waits this longer


class Handoff(Machine):
    # ------------------------------------------------------------------ eligibility

    def _eligible(self) -> bool:
        return self._ineligible_reason is None and self._held_off_until_ms is None

    def _why_ineligible(self) -> str | None:
        if self._ineligible_reason is not None:
            return self._ineligible_reason
        if self._held_off_until_ms is not None:
            return f"held off after handing leadership on, for {self._held_off_until_ms - self._now_ms} ms"
        return None

    def _peer_eligible(self, peer_id: int) -> bool:
        return peer_id not in self._ineligible_peers

    def _on_eligibility_changed(self, reason: str | None) -> None:
        if reason == self._ineligible_reason:
            return
        was_eligible = self._eligible()
        self._ineligible_reason = reason
        if reason is not None:
            self._log(
                EventName.ELIGIBILITY_CHANGED,
                f"may not run for leader: {reason}",
                LogLevel.WARNING,
            )
            self._give_up_office(f"not eligible: {reason}")
        else:
            self._log(EventName.ELIGIBILITY_CHANGED, "may run for leader again", LogLevel.NOTICE)
            if not was_eligible and self._eligible():
                self._elect_unless_led("eligible again")

    def _hold_off(self, delay_ms: int) -> None:
        """Run for nobody for `delay_ms` (after declining or handing off): the others elect meanwhile."""
        self._held_off_until_ms = self._now_ms + delay_ms
        self._set_timer(TimerId.HOLD_OFF, delay_ms)

    def _on_hold_off_over(self) -> None:
        self._held_off_until_ms = None
        if self._eligible():
            self._elect_unless_led("its hold-off after handing leadership on is over")

    def _give_up_office(self, reason: str) -> None:
        """This node may no longer lead: a leader hands off, a winner declines, a candidate withdraws."""
        if self._is_leader:
            self._resign(reason, successor=None, staying=True)
            return
        if self._confirming is not None:
            self._decline(self._confirming.epoch, reason)
            return
        if self._gating is not None:
            self._decline(self._gating[0], reason)
            return
        if self._phase in (Phase.AWAIT_COORDINATOR, Phase.AWAIT_TOKEN):
            return  # a voter keeps its promise; a ring initiator's round elects the best eligible node
        if self._proposal is not None and not self._proposal.pre_vote:
            self._decline(self._proposal.epoch, reason)  # voters promised us: hand the epoch on
        elif self._electing():
            self._abandon_election()

    # ------------------------------------------------------------------ the before_lead gate

    def _gate_holds_office(self, epoch: int, initiator: int) -> bool:
        """Called by a winner before it asks for confirmations: True when it may not go on now (it is
        not eligible and declined, or its gate runs; GateFinished continues)."""
        if not self._eligible():
            self._decline(epoch, f"not eligible: {self._why_ineligible()}")
            return True
        if not self.settings.gated or self._gate_passed == epoch:
            return False
        if self._gating is not None and self._gating[0] == epoch:
            return True  # a copy of the message that chose us: the gate already runs
        self._abandon_election()
        self._gating = (epoch, initiator)
        self._emit(RunGate(epoch))
        self._set_timer(TimerId.GATE, self.settings.gate_timeout_ms + GATE_MARGIN_MS)
        return True

    def _on_gate_finished(self, epoch: int, passed: bool, detail: str) -> None:
        gating = self._gating
        if gating is None or gating[0] != epoch:
            return  # the gate of an attempt this node gave up since
        self._gating = None
        self._cancel_timer(TimerId.GATE)
        if self._durable != DurableState(epoch, gating[1]):
            # Its promise moved on while the gate ran (a claim it preempts): run again from there.
            self._begin_election(f"its promise moved past epoch {epoch} while its before_lead gate ran")
            return
        if not passed:
            self._decline(epoch, f"its before_lead gate failed ({detail})")
            return
        self._gate_passed = epoch
        self._seek_confirmation(epoch, gating[1])

    def _on_gate_timeout(self) -> None:
        gating = self._gating
        if gating is not None:
            self._on_gate_finished(gating[0], False, "no answer in time")

    def _decline(self, epoch: int, reason: str) -> None:
        """Won `epoch` (or is winning it) but will not lead: hand the epoch on and hold off."""
        self._abandon_election()
        hold_ms = self.settings.election_timeout_ms
        self._log(
            EventName.LEAD_DECLINED,
            f"declines to lead epoch {epoch}: {reason}; hands the epoch on and runs for nobody "
            f"for {hold_ms} ms",
            LogLevel.WARNING,
            epoch=epoch,
        )
        self._broadcast(Resign(self.node_id, epoch, staying=True))
        self._hold_off(hold_ms)

    # ------------------------------------------------------------------ switchover and RESIGN

    def switchover_refusal(self, target: int | None) -> str | None:
        """Why a switchover to `target` (None: the best eligible node) cannot happen now; None if it can.
        Pure: the runtime asks before it sends SwitchoverRequested, so a refused request changes nothing."""
        if not self._is_leader:
            leader = "it knows no leader" if self._leader_id is None else f"node {self._leader_id} leads"
            return f"node {self.node_id} is not the leader ({leader})"
        if self._lease_supporters() < self.settings.quorum_size:
            return f"node {self.node_id} is about to step down: its lease from a majority ran out"
        if target is None:
            if not any(self._may_succeed(peer_id) for peer_id in self.settings.peer_ids):
                return "no other member is reachable and eligible"
            return None
        if target == self.node_id:
            return f"node {target} already leads"
        if target not in self.settings.peer_ids:
            return f"{target} is not a member (members: {', '.join(map(str, self.settings.member_ids))})"
        if not self._detector.is_available(target):
            return f"node {target} is not reachable from the leader"
        if not self._peer_eligible(target):
            return f"node {target} is not eligible (health check, maintenance or a recent hand-off)"
        return None

    def _may_succeed(self, peer_id: int) -> bool:
        return self._detector.is_available(peer_id) and self._peer_eligible(peer_id)

    def _on_switchover(self, target: int | None) -> None:
        refusal = self.switchover_refusal(target)
        if refusal is not None:
            self._log(EventName.MESSAGE_REJECTED, f"refuses a switchover: {refusal}", LogLevel.WARNING)
            return
        to = "the best eligible node" if target is None else f"node {target}"
        self._resign(f"switchover to {to}", successor=target, staying=True)

    def _resign(self, why: str, *, successor: int | None, staying: bool) -> None:
        """Leave office and tell every peer, so that they elect a successor at once (RESIGN)."""
        self._broadcast(Resign(self.node_id, self.epoch, successor=successor, staying=staying))
        self._log(EventName.RESIGNED, f"resigns leadership of epoch {self.epoch} ({why})", LogLevel.NOTICE)
        self._leader_id = None
        if staying:
            self._hold_off(self.settings.election_timeout_ms)
