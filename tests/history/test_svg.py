"""`check-history --svg`: the picture is SVG and shows terms, followings, no-quorum spans and faults."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from node.history.cli import EXIT_BAD_INPUT, EXIT_OK, main
from node.history.model import HistoryEvent as E
from node.history.model import HistoryParseError
from node.history.svg import SVG_NS, Step, faults_and_markers, parse_steps, render_svg

from .test_cli import journal_line, write

T0 = 1_796_165_800_000  # wall-clock ms, as in a real journal

HISTORY = [
    E(T0 + 0, 1, "listening", epoch=0),
    E(T0 + 0, 2, "listening", epoch=0),
    E(T0 + 0, 3, "listening", epoch=0),
    E(T0 + 1_000, 3, "became_leader", epoch=1, leader_id=3),
    E(T0 + 1_010, 1, "leader_accepted", epoch=1, leader_id=3),
    E(T0 + 1_020, 2, "leader_accepted", epoch=1, leader_id=3),
    E(T0 + 4_000, 3, "quorum_lost", epoch=1, leader_id=3),  # ends the term; node 3 has no quorum
    E(T0 + 4_100, 1, "leader_lost", epoch=1),
    E(T0 + 4_200, 2, "election_abandoned", epoch=1),  # node 2 has no quorum either
    E(T0 + 5_500, 2, "became_leader", epoch=2, leader_id=2),
    E(T0 + 5_510, 1, "leader_accepted", epoch=2, leader_id=2),
    E(T0 + 6_000, 3, "leader_accepted", epoch=2, leader_id=2),
    E(T0 + 8_000, 2, "stopping", epoch=2),
    E(T0 + 8_010, 2, "resigned", epoch=2, leader_id=2),
    E(T0 + 8_100, 1, "leader_lost", epoch=2),
    E(T0 + 8_500, 1, "became_leader", epoch=3, leader_id=1),
    E(T0 + 8_600, 3, "leader_accepted", epoch=3, leader_id=1),
    E(T0 + 9_000, 2, "listening", epoch=3),
    E(T0 + 9_100, 2, "leader_accepted", epoch=3, leader_id=1),
]

STEPS = f"""\
22:56:40.000Z  {T0 + 100}  cluster: 1=a, 2=b, 3=c
22:56:43.000Z  {T0 + 3_000}  partition {{3}} | {{1, 2}}
22:56:45.000Z  {T0 + 5_000}  heal: flush LNMOL on 1, 2, 3
22:56:47.000Z  {T0 + 7_000}  SIGSTOP MainPID 99 on node 1 (host-1)
22:56:47.500Z  {T0 + 7_500}  SIGCONT MainPID 99 on node 1 (host-1)
22:56:48.000Z  {T0 + 7_900}  systemctl stop leader-node on node 2 (host-2)
22:56:49.000Z  {T0 + 8_900}  systemctl start leader-node on node 2 (host-2)
22:56:49.500Z  {T0 + 9_500}  systemctl kill -s SIGKILL leader-node on node 3 (host-3)
22:56:50.000Z  {T0 + 9_600}  settled: leader 1, epoch 3 & <done>
"""


def drawn(svg: str, kind: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get("class") == kind]


def spans(svg: str, kind: str) -> list[tuple[str, int, int]]:
    return [
        (g.get("data-node", ""), int(g.get("data-start-ms", "0")) - T0, int(g.get("data-end-ms", "0")) - T0)
        for g in drawn(svg, kind)
    ]


def test_the_picture_is_svg_with_a_lane_per_node_and_a_bar_per_term() -> None:
    svg = render_svg(HISTORY, title="a title")
    root = ET.fromstring(svg)
    assert root.tag == f"{{{SVG_NS}}}svg"
    labels = [t.text for t in root.iter(f"{{{SVG_NS}}}text") if t.get("class") == "node-label"]
    assert labels == ["node 1", "node 2", "node 3"]
    assert sorted(spans(svg, "term")) == [("1", 8_500, 9_100), ("2", 5_500, 8_000), ("3", 1_000, 4_000)]
    epochs = [g.get("data-epoch") for g in drawn(svg, "term")]
    texts = ["".join(g.itertext()) for g in drawn(svg, "term")]
    assert all(
        f"epoch {epoch}" in text or text.endswith(str(epoch))
        for epoch, text in zip(epochs, texts, strict=True)
    )
    assert "seconds from the first event" in svg


def test_followers_are_drawn_until_they_let_go_or_the_term_ends() -> None:
    svg = render_svg(HISTORY)
    assert sorted(spans(svg, "follow")) == [
        ("1", 1_010, 4_000),  # the term ended (quorum_lost) before node 1's leader_lost
        ("1", 5_510, 8_000),
        ("2", 1_020, 4_000),
        ("2", 9_100, 9_100),  # the term is open: to the end of the history
        ("3", 6_000, 8_000),
        ("3", 8_600, 9_100),
    ]


def test_no_quorum_and_down_spans() -> None:
    svg = render_svg(HISTORY)
    assert sorted(spans(svg, "no-quorum")) == [("2", 4_200, 5_500), ("3", 4_000, 6_000)]
    assert spans(svg, "down") == [("2", 8_000, 9_000)]


def test_harness_faults_are_intervals_and_other_steps_markers(tmp_path: Path) -> None:
    steps = parse_steps(STEPS.splitlines(), "steps.txt")
    svg = render_svg(HISTORY, steps)
    ET.fromstring(svg)
    assert sorted(spans(svg, "fault")) == [("1", 7_000, 7_500), ("2", 7_900, 8_900), ("all", 3_000, 5_000)]
    fault_text = " ".join("".join(g.itertext()) for g in drawn(svg, "fault"))
    assert "SIGSTOP" in fault_text and "partition {3} | {1, 2}" in fault_text and "stopped" in fault_text
    kills = drawn(svg, "fault-mark")
    assert [(g.get("data-node"), "SIGKILL" in "".join(g.itertext())) for g in kills] == [("3", True)]
    markers = drawn(svg, "step")
    assert [int(g.get("data-time-ms", "0")) - T0 for g in markers] == [100, 9_600]
    titles = [g.find(f"{{{SVG_NS}}}title") for g in markers]
    assert [t.text for t in titles if t is not None][1] == "settled: leader 1, epoch 3 & <done>"


def test_an_unended_fault_runs_to_the_end_and_bursts_of_steps_merge() -> None:
    steps = [Step(T0 + 7_000, "SIGSTOP MainPID 9 on node 1 (h)")]
    faults, _ = faults_and_markers(steps, T0 + 9_100)
    assert [(f.node_id, f.start_ms - T0, f.end_ms - T0) for f in faults] == [(1, 7_000, 9_100)]
    burst = [Step(T0 + 9_000 + i, f"measured m{i} = 0.1 s") for i in range(5)]
    markers = drawn(render_svg(HISTORY, burst), "step")
    assert len(markers) == 1
    assert "(+4 more)" in "".join(markers[0].itertext())


def test_steps_file_lines_must_carry_a_time() -> None:
    assert parse_steps(["", f"x  {T0}  a  b  "], "s") == [Step(T0, "a  b")]
    with pytest.raises(HistoryParseError, match="s:1"):
        parse_steps(["no time here"], "s")


def test_cli_writes_the_svg_and_still_prints_the_verdict(tmp_path: Path) -> None:
    journal = write(
        tmp_path,
        "n.json",
        [
            journal_line(T0, 2, "became_leader", 1, leader_id=2),
            journal_line(T0 + 5, 1, "leader_accepted", 1, leader_id=2),
        ],
    )
    steps = tmp_path / "steps.txt"
    steps.write_text(STEPS)
    out = io.StringIO()
    svg_path = tmp_path / "h.svg"
    assert main(["--svg", str(svg_path), "--steps", str(steps), journal], out=out) == EXIT_OK
    assert out.getvalue().startswith("ok: 2 events from 2 nodes")
    svg = svg_path.read_text()
    assert len(drawn(svg, "term")) == 1
    assert len(drawn(svg, "fault")) == 3

    out = io.StringIO()
    assert main(["--svg=-", journal], out=out) == EXIT_OK
    assert ET.fromstring(out.getvalue()).tag == f"{{{SVG_NS}}}svg"


@pytest.mark.parametrize(
    "argv",
    [["--svg"], ["--svg", "x.svg"], ["--steps", "/nonexistent/steps.txt", "J"], ["--bogus", "J"]],
)
def test_cli_bad_usage_exits_2(argv: list[str], tmp_path: Path) -> None:
    journal = write(tmp_path, "n.json", [journal_line(T0, 2, "became_leader", 1, leader_id=2)])
    argv = [journal if arg == "J" else arg for arg in argv]
    assert main(argv, out=io.StringIO()) == EXIT_BAD_INPUT
