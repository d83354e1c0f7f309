"""Leadership over time as an SVG picture: `leader-node check-history --svg FILE [--steps STEPS] ...`.

One lane per node, time left to right in seconds from the first event:

- a tall bar per term on its leader's lane (`build_timeline`), coloured and labelled by epoch;
- a thin bar of the same colour on a follower's lane, from its `leader_accepted` until the term ends
  or the follower lets go (`leader_lost`, `quorum_lost`, `stopping`, a restart, another leader);
- a hatched red span where a node logged `quorum_lost` or `election_abandoned`, until it follows or
  leads again (or stops): the `no-quorum` role;
- a grey span while a node is down: from `stopping`/`crashed` until its next `listening`/`started`;
- with a harness `steps.txt` (molecule/shared/faults.py: `<UTC time>  <epoch ms>  <text>` per line),
  faults as orange intervals (SIGSTOP..SIGCONT and `systemctl stop`..`start` on that node's lane,
  `partition`..`heal` across all lanes), a kill as a mark on its lane, and every other step as a dashed
  vertical line labelled with its text (the full text is the element's tooltip).

Plain string building, no dependency. Every drawn item has a `class` and `data-*` attributes (node,
start and end in ms) so tests and other tools can read the picture back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from node.core.actions import EventName
from node.history.model import HistoryEvent, HistoryParseError, ordered
from node.history.timeline import Term, build_timeline

SVG_NS = "http://www.w3.org/2000/svg"

WIDTH = 1500
LEFT = 110  # node labels
RIGHT = 30
LANE_HEIGHT = 54
LEADER_BAR = 24
FOLLOW_BAR = 8
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
STEP_LABEL_CHARS = 70
CHAR_PX = 6.2  # rough width of one 11 px character, to keep step labels from overlapping
STEP_ROW_HEIGHT = 15
MERGE_PX = 3  # harness steps closer than 3 px are drawn as one marker

# Epoch colours: no orange or red, which mean faults and no quorum here.
PALETTE = (
    "#4e79a7",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#a0cbe8",
    "#8cd17d",
    "#d4a6c8",
)
FAULT_COLOUR = "#f28e2b"
NO_QUORUM_COLOUR = "#d62728"
DOWN_COLOUR = "#bdbdbd"

FOLLOW_ENDS = frozenset(
    {
        EventName.LEADER_LOST,
        EventName.QUORUM_LOST,
        EventName.ELECTION_ABANDONED,
        EventName.STOPPING,
        EventName.CRASHED,
        EventName.STARTED,
    }
)
NO_QUORUM_STARTS = frozenset({EventName.QUORUM_LOST, EventName.ELECTION_ABANDONED})
NO_QUORUM_ENDS = frozenset(
    {
        EventName.BECAME_LEADER,
        EventName.LEADER_ACCEPTED,
        EventName.STOPPING,
        EventName.CRASHED,
        EventName.STARTED,
        EventName.LISTENING,
    }
)
DOWN_STARTS = frozenset({EventName.STOPPING, EventName.CRASHED})
DOWN_ENDS = frozenset({EventName.LISTENING, EventName.STARTED})

_STEP_LINE = re.compile(r"^\s*\S+\s+(\d{1,16})\s+(.*?)\s*$")
_NODE_REF = re.compile(r"\bnode (\d+)\b")
_TOGETHER_AT = re.compile(r"\btogether at (\d{1,16})\b")


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a harness's steps.txt: what it did or saw, at a wall-clock time in ms."""

    time_ms: int
    text: str


@dataclass(frozen=True, slots=True)
class Span:
    """Something that lasted: on one node's lane, or on all lanes (node_id None)."""

    kind: str  # "term", "follow", "no-quorum", "down", "fault"
    node_id: int | None
    start_ms: int
    end_ms: int
    label: str
    tooltip: str
    epoch: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """Something instantaneous: a kill on one lane, or a harness step across the picture."""

    kind: str  # "fault-mark", "step"
    node_id: int | None
    time_ms: int
    label: str
    tooltip: str


def parse_steps(lines: Iterable[str], source: str) -> list[Step]:
    """steps.txt lines (`22:56:40.113Z  1796165800113  text`) -> steps; blank lines are skipped."""
    steps = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _STEP_LINE.match(line)
        if match is None:
            raise HistoryParseError(f"{source}:{line_no}: not `<time>  <epoch ms>  <text>`")
        steps.append(Step(int(match.group(1)), match.group(2)))
    return steps


def faults_and_markers(steps: Iterable[Step], end_ms: int) -> tuple[list[Span], list[Mark]]:
    """Pair the harness's fault steps into intervals; the rest become markers. An interval the
    steps never close runs to `end_ms`."""
    spans: list[Span] = []
    marks: list[Mark] = []
    opened: dict[tuple[str, int | None], Step] = {}

    def close(key: tuple[str, int | None], label: str, step: Step, end: int) -> bool:
        began = opened.pop(key, None)
        if began is None:
            return False
        spans.append(Span("fault", key[1], began.time_ms, end, label, f"{began.text}\n… {step.text}"))
        return True

    for step in sorted(steps, key=lambda s: s.time_ms):
        text = step.text
        nodes = [int(n) for n in _NODE_REF.findall(text)]
        lowered = text.lower()
        if text.startswith("SIGSTOP") and nodes:
            opened[("SIGSTOP", nodes[0])] = step
        elif (
            text.startswith("SIGCONT")
            and nodes
            and close(("SIGSTOP", nodes[0]), "SIGSTOP", step, step.time_ms)
        ):
            pass
        elif lowered.startswith("partition"):
            opened[("partition", None)] = step
        elif lowered.startswith("heal") and close(
            ("partition", None), opened.get(("partition", None), step).text, step, step.time_ms
        ):
            pass
        elif "systemctl stop" in lowered and nodes:
            for node in nodes:
                opened[("stopped", node)] = step
        elif "systemctl start" in lowered and any(("stopped", n) in opened for n in nodes):
            together = _TOGETHER_AT.search(text)
            at = int(together.group(1)) if together else step.time_ms
            unmatched = [node for node in nodes if not close(("stopped", node), "stopped", step, at)]
            if unmatched:
                marks.append(Mark("step", None, step.time_ms, text, text))
        elif "systemctl kill" in lowered and nodes:
            signal = re.search(r"-s (\S+)", text)
            for node in nodes:
                marks.append(
                    Mark("fault-mark", node, step.time_ms, signal.group(1) if signal else "kill", text)
                )
        else:
            marks.append(Mark("step", None, step.time_ms, text, text))
    for (what, lane), began in opened.items():
        label = "stopped" if what == "stopped" else ("SIGSTOP" if what == "SIGSTOP" else began.text)
        spans.append(Span("fault", lane, began.time_ms, end_ms, label, f"{began.text}\n(not ended)"))
    return spans, marks


def _lane_spans(events: list[HistoryEvent], terms: list[Term], end_ms: int) -> list[Span]:
    """Terms, followings, no-quorum and down spans, from one ordered history."""
    spans: list[Span] = []
    term_end = {id(term): end_ms if term.end_ms is None else term.end_ms for term in terms}
    for term in terms:
        ends = "open at the end of the history" if term.end_ms is None else f"ended by {term.end_reason}"
        spans.append(
            Span(
                "term",
                term.leader_id,
                term.start_ms,
                term_end[id(term)],
                f"epoch {term.epoch}",
                f"node {term.leader_id} leads epoch {term.epoch}, {ends}; followers {sorted(term.followers)}",
                term.epoch,
            )
        )
    by_key: dict[tuple[int, int], Term] = {}
    for term in terms:
        by_key.setdefault((term.epoch, term.leader_id), term)  # as build_timeline: the first such term
    for index, accepted in enumerate(events):
        if (
            accepted.event != EventName.LEADER_ACCEPTED
            or accepted.epoch is None
            or accepted.leader_id is None
        ):
            continue
        key = (accepted.epoch, accepted.leader_id)
        led = by_key.get(key)
        until = end_ms if led is None else term_end[id(led)]
        for event in events[index + 1 :]:
            if event.time_ms >= until:
                break
            if event.node_id != accepted.node_id:
                continue
            other_leader = event.event == EventName.LEADER_ACCEPTED and (event.epoch, event.leader_id) != key
            if event.event in FOLLOW_ENDS or event.event == EventName.BECAME_LEADER or other_leader:
                until = event.time_ms
                break
        spans.append(
            Span(
                "follow",
                accepted.node_id,
                accepted.time_ms,
                max(until, accepted.time_ms),
                f"→{accepted.leader_id}",
                f"node {accepted.node_id} follows leader {accepted.leader_id} of epoch {accepted.epoch}",
                accepted.epoch,
            )
        )
    for node in sorted({event.node_id for event in events}):
        mine = [event for event in events if event.node_id == node]
        spans += _state_spans(
            mine,
            node,
            end_ms,
            starts=NO_QUORUM_STARTS,
            ends=NO_QUORUM_ENDS,
            kind="no-quorum",
            label="no quorum",
        )
        spans += _state_spans(
            mine, node, end_ms, starts=DOWN_STARTS, ends=DOWN_ENDS, kind="down", label="down"
        )
    return spans


def _state_spans(
    events: list[HistoryEvent],
    node: int,
    end_ms: int,
    *,
    starts: frozenset[str],
    ends: frozenset[str],
    kind: str,
    label: str,
) -> list[Span]:
    spans = []
    began: HistoryEvent | None = None
    for event in events:
        if began is None and event.event in starts:
            began = event
        elif began is not None and event.event in ends:
            why = f"node {node}: {began.event} at epoch {began.epoch} until {event.event}"
            spans.append(Span(kind, node, began.time_ms, event.time_ms, label, why))
            began = None
    if began is not None:
        why = f"node {node}: {began.event} at epoch {began.epoch}, still at the end of the history"
        spans.append(Span(kind, node, began.time_ms, end_ms, label, why))
    return spans


def _merge_close(marks: list[Mark], within_ms: float) -> list[Mark]:
    """Steps logged in a burst (within a few pixels) become one marker: `first text (+N more)`, with
    every text in its tooltip."""
    merged: list[Mark] = []
    group: list[Mark] = []
    for mark in sorted(marks, key=lambda m: m.time_ms):
        if group and mark.time_ms - group[0].time_ms > within_ms:
            merged.append(_one_mark(group))
            group = []
        group.append(mark)
    if group:
        merged.append(_one_mark(group))
    return merged


def _one_mark(group: list[Mark]) -> Mark:
    first = group[0]
    if len(group) == 1:
        return first
    label = f"{first.label} (+{len(group) - 1} more)"
    return Mark(first.kind, first.node_id, first.time_ms, label, "\n".join(m.tooltip for m in group))


def _nice_tick(span_s: float, width_px: float) -> float:
    """A round tick interval giving roughly one tick per 90 px."""
    raw = span_s / max(1.0, width_px / 90)
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if step >= raw:
            return step
    return 3600 * (int(raw // 3600) + 1)


def _text_colour(fill: str) -> str:
    red, green, blue = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return "#111111" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#ffffff"


def render_svg(events: list[HistoryEvent], steps: list[Step] | None = None, title: str = "") -> str:
    """The picture of a history (and of the harness's steps) as one SVG document."""
    history = ordered(events)
    steps = steps or []
    times = [event.time_ms for event in history] + [step.time_ms for step in steps]
    origin = history[0].time_ms if history else (min(times) if times else 0)
    first = min(times) if times else 0
    last = max(times) if times else 1
    last = max(last, first + 1)
    terms = build_timeline(history)
    nodes = sorted({event.node_id for event in history})
    lane_of = {node: index for index, node in enumerate(nodes)}
    fault_spans, marks = faults_and_markers(steps, last)
    for mark in marks:
        if mark.node_id is not None and mark.node_id not in lane_of:
            lane_of[mark.node_id] = len(lane_of)
    for span in fault_spans:
        if span.node_id is not None and span.node_id not in lane_of:
            lane_of[span.node_id] = len(lane_of)
    nodes = sorted(lane_of, key=lambda n: lane_of[n])

    plot_w = WIDTH - LEFT - RIGHT
    scale = plot_w / (last - first)

    def x(time_ms: int) -> float:
        return round(LEFT + (time_ms - first) * scale, 1)

    # Step labels: greedy rows so that no two labels overlap.
    step_marks = _merge_close([mark for mark in marks if mark.kind == "step"], MERGE_PX / scale)
    row_ends: list[float] = []
    placed: list[tuple[Mark, int, str]] = []
    for mark in sorted(step_marks, key=lambda m: m.time_ms):
        more = re.search(r" \(\+\d+ more\)$", mark.label)
        suffix = more.group(0) if more else ""
        text = mark.label[: len(mark.label) - len(suffix)]
        if len(text) + len(suffix) > STEP_LABEL_CHARS:
            text = text[: STEP_LABEL_CHARS - len(suffix) - 1] + "…"
        text += suffix
        left = x(mark.time_ms) + 3
        width = len(text) * CHAR_PX
        if left + width > WIDTH - 4:  # near the right edge: the label ends at its line
            left = x(mark.time_ms) - 3 - width
        for row, row_end in enumerate(row_ends):
            if row_end < left:
                row_ends[row] = max(left + width, x(mark.time_ms)) + 8
                placed.append((mark, row, text))
                break
        else:
            row_ends.append(max(left + width, x(mark.time_ms)) + 8)
            placed.append((mark, len(row_ends) - 1, text))

    title_h = 28
    legend_h = 26
    steps_h = len(row_ends) * STEP_ROW_HEIGHT + (10 if row_ends else 0)
    lanes_top = title_h + legend_h + steps_h + 8
    lanes_h = LANE_HEIGHT * max(1, len(nodes))
    axis_y = lanes_top + lanes_h
    height = axis_y + 48

    def lane_top(node: int) -> int:
        return lanes_top + LANE_HEIGHT * lane_of[node]

    epochs = sorted(
        {term.epoch for term in terms}
        | {e.epoch for e in history if e.event == EventName.LEADER_ACCEPTED and e.epoch is not None}
    )
    colour = {epoch: PALETTE[index % len(PALETTE)] for index, epoch in enumerate(epochs)}

    out: list[str] = [
        f"<svg xmlns='{SVG_NS}' width='{WIDTH}' height='{height}' viewBox='0 0 {WIDTH} {height}' {FONT}"
        " font-size='12'>",
        "<defs>"
        "<pattern id='noquorum' width='7' height='7' patternUnits='userSpaceOnUse'"
        " patternTransform='rotate(45)'>"
        f"<rect width='7' height='7' fill='{NO_QUORUM_COLOUR}' fill-opacity='0.12'/>"
        f"<line x1='0' y1='0' x2='0' y2='7' stroke='{NO_QUORUM_COLOUR}' stroke-width='3'/></pattern>"
        "</defs>",
        f"<rect width='{WIDTH}' height='{height}' fill='#ffffff'/>",
        f"<text x='{LEFT}' y='19' font-size='15' font-weight='bold'>"
        f"{escape(title or 'leader-node history')}</text>",
    ]

    # Legend: one row, each swatch drawn as in the picture.
    legend_y = title_h + 4
    lx = LEFT
    legend = [
        (
            f"<rect x='{lx}' y='{legend_y}' width='26' height='14' fill='{PALETTE[0]}' rx='2'/>",
            "leader (epoch on the bar)",
        ),
        (
            f"<rect y='{legend_y + 8}' width='26' height='6' fill='{PALETTE[0]}' fill-opacity='0.6'/>",
            "follows it",
        ),
        (f"<rect y='{legend_y}' width='26' height='14' fill='url(#noquorum)'/>", "no quorum"),
        (f"<rect y='{legend_y}' width='26' height='14' fill='{DOWN_COLOUR}'/>", "down (stopped / crashed)"),
        (
            f"<rect y='{legend_y}' width='26' height='14' fill='{FAULT_COLOUR}' fill-opacity='0.25'"
            f" stroke='{FAULT_COLOUR}' stroke-dasharray='3 2'/>",
            "fault injected (steps)",
        ),
        (
            f"<line y1='{legend_y}' y2='{legend_y + 14}' stroke='#555' stroke-dasharray='3 3'/>",
            "harness step",
        ),
    ]
    out.append("<g class='legend'>")
    for swatch, words in legend:
        if swatch.startswith("<line"):
            out.append(swatch.replace("<line ", f"<line x1='{lx + 13}' x2='{lx + 13}' ", 1))
        else:
            out.append(re.sub(r"<rect( x='[^']*')?", f"<rect x='{lx}'", swatch, count=1))
        out.append(f"<text x='{lx + 32}' y='{legend_y + 12}'>{escape(words)}</text>")
        lx += 32 + int(len(words) * 6.6) + 22
    out.append("</g>")

    # Lanes and grid.
    for node in nodes:
        top = lane_top(node)
        shade = "#f6f6f6" if lane_of[node] % 2 == 0 else "#ffffff"
        out.append(f"<rect x='{LEFT}' y='{top}' width='{plot_w}' height='{LANE_HEIGHT}' fill='{shade}'/>")
        out.append(
            f"<text class='node-label' x='{LEFT - 10}' y='{top + LANE_HEIGHT / 2 + 5}' text-anchor='end'"
            f" font-size='14' font-weight='bold'>node {node}</text>"
        )
    tick = _nice_tick((last - first) / 1000, plot_w)
    start_tick = int((first - origin) / 1000 // tick)
    t = start_tick * tick
    out.append("<g class='axis' font-size='11' fill='#444'>")
    while origin + t * 1000 <= last:
        if origin + t * 1000 >= first:
            gx = x(int(origin + t * 1000))
            out.append(
                f"<line x1='{gx}' y1='{lanes_top}' x2='{gx}' y2='{axis_y + 4}' stroke='#dddddd'/>"
                f"<text x='{gx}' y='{axis_y + 17}' text-anchor='middle'>{t:g}</text>"
            )
        t = round(t + tick, 6)
    when = ""
    if origin > 10**12:  # wall-clock milliseconds (a real history), not simulated time
        when = f" (t=0: {datetime.fromtimestamp(origin / 1000, UTC).isoformat(timespec='milliseconds')})"
    out.append(
        f"<line x1='{LEFT}' y1='{axis_y}' x2='{LEFT + plot_w}' y2='{axis_y}' stroke='#444'/>"
        f"<text x='{LEFT + plot_w / 2}' y='{axis_y + 36}' text-anchor='middle' font-size='12'>"
        f"seconds from the first event{escape(when)}</text>"
    )
    out.append("</g>")

    def span_attrs(span: Span) -> str:
        node = "all" if span.node_id is None else span.node_id
        epoch = "" if span.epoch is None else f" data-epoch='{span.epoch}'"
        times = f"data-start-ms='{span.start_ms}' data-end-ms='{span.end_ms}'"
        return f"class='{span.kind}' data-node='{node}' {times}{epoch}"

    def tip(text: str) -> str:
        return f"<title>{escape(text)}</title>"

    # Faults under everything else.
    for span in fault_spans:
        x0, x1 = x(span.start_ms), x(span.end_ms)
        if span.node_id is None:
            top, h = lanes_top, lanes_h
        else:
            top, h = lane_top(span.node_id), LANE_HEIGHT
        out.append(
            f"<g {span_attrs(span)}>{tip(span.tooltip)}"
            f"<rect x='{x0}' y='{top + 1}' width='{max(1.5, x1 - x0)}' height='{h - 2}' fill='{FAULT_COLOUR}'"
            f" fill-opacity='0.22' stroke='{FAULT_COLOUR}' stroke-width='1.5' stroke-dasharray='5 3'/>"
            f"<text x='{x0 + 3}' y='{top + 11}' font-size='10' font-weight='bold' fill='#b35806'>"
            f"{escape(span.label)}</text></g>"
        )

    lane_kinds = [s for s in _lane_spans(history, terms, last) if s.node_id in lane_of]
    for kind in ("down", "no-quorum", "follow", "term"):
        for span in (s for s in lane_kinds if s.kind == kind):
            assert span.node_id is not None
            top = lane_top(span.node_id)
            x0, x1 = x(span.start_ms), x(span.end_ms)
            w = max(1.5, round(x1 - x0, 1))
            if kind == "term":
                assert span.epoch is not None
                fill = colour[span.epoch]
                y = top + 14
                label_fits = w >= len(span.label) * 7 + 6
                label = span.label if label_fits else str(span.epoch)
                fits = w >= len(label) * 7 + 6
                text_fill = _text_colour(fill) if fits else "#111111"
                text_x = x0 + 4 if fits else x0 + w + 3
                out.append(
                    f"<g {span_attrs(span)}>{tip(span.tooltip)}"
                    f"<rect x='{x0}' y='{y}' width='{w}' height='{LEADER_BAR}' fill='{fill}' rx='3'"
                    " stroke='#333' stroke-width='0.6'/>"
                    f"<text x='{text_x}' y='{y + 17}' font-size='13' font-weight='bold' fill='{text_fill}'"
                    f" stroke='{'none' if fits else '#ffffff'}' stroke-width='3' paint-order='stroke'>"
                    f"{escape(label)}</text></g>"
                )
            elif kind == "follow":
                assert span.epoch is not None
                out.append(
                    f"<g {span_attrs(span)}>{tip(span.tooltip)}"
                    f"<rect x='{x0}' y='{top + LANE_HEIGHT - 14}' width='{w}' height='{FOLLOW_BAR}'"
                    f" fill='{colour[span.epoch]}' fill-opacity='0.65' rx='2'/></g>"
                )
            elif kind == "no-quorum":
                out.append(
                    f"<g {span_attrs(span)}>{tip(span.tooltip)}"
                    f"<rect x='{x0}' y='{top + 16}' width='{w}' height='{LANE_HEIGHT - 22}'"
                    " fill='url(#noquorum)'"
                    f" stroke='{NO_QUORUM_COLOUR}' stroke-width='0.8'/>"
                    + (
                        f"<text x='{x0 + 3}' y='{top + 30}' font-size='10' fill='{NO_QUORUM_COLOUR}'"
                        " stroke='#ffffff' stroke-width='3' paint-order='stroke'>no quorum</text>"
                        if w > 60
                        else ""
                    )
                    + "</g>"
                )
            else:
                out.append(
                    f"<g {span_attrs(span)}>{tip(span.tooltip)}"
                    f"<rect x='{x0}' y='{top + 18}' width='{w}' height='{LANE_HEIGHT - 26}'"
                    f" fill='{DOWN_COLOUR}'"
                    " fill-opacity='0.8'/>"
                    + (
                        f"<text x='{x0 + 4}' y='{top + 32}' font-size='11' fill='#333'>down</text>"
                        if w > 40
                        else ""
                    )
                    + "</g>"
                )

    for mark in marks:
        mx = x(mark.time_ms)
        attrs = f"class='{mark.kind}' data-node='{mark.node_id if mark.node_id is not None else 'all'}'"
        attrs += f" data-time-ms='{mark.time_ms}'"
        if mark.kind == "fault-mark" and mark.node_id is not None:
            top = lane_top(mark.node_id)
            out.append(
                f"<g {attrs}>{tip(mark.tooltip)}"
                f"<line x1='{mx}' y1='{top + 2}' x2='{mx}' y2='{top + LANE_HEIGHT - 2}'"
                f" stroke='{FAULT_COLOUR}'"
                " stroke-width='3'/>"
                f"<text x='{mx + 4}' y='{top + 11}' font-size='10' font-weight='bold' fill='#b35806'>"
                f"✕ {escape(mark.label)}</text></g>"
            )
    steps_top = title_h + legend_h + 6
    for mark, row, text in placed:
        mx = x(mark.time_ms)
        label_y = steps_top + row * STEP_ROW_HEIGHT + 10
        right_side = mx + 3 + len(text) * CHAR_PX <= WIDTH - 4
        anchor = "start" if right_side else "end"
        tx = mx + 3 if right_side else mx - 3
        out.append(
            f"<g class='step' data-time-ms='{mark.time_ms}'>{tip(mark.tooltip)}"
            f"<line x1='{mx}' y1='{label_y - 9}' x2='{mx}' y2='{axis_y}' stroke='#555555' stroke-width='0.8'"
            " stroke-dasharray='3 3'/>"
            f"<text x='{tx}' y='{label_y}' font-size='11' fill='#333333' text-anchor='{anchor}'>"
            f"{escape(text)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
