"""Set each VM's clock from the controller's, over one SSH session per VM (molecule/vm/prepare.yml).

A VM's clock starts from its emulated RTC, which has whole seconds. The fault tests compare the hosts'
journal times with the controller's times of their steps, so each VM's clock is stepped by its measured
offset: the controller asks the VM for its time several times over one open session, takes the sample
with the shortest round trip (offset = VM time - midpoint of the round trip, error at most half of it),
tells the VM to step its clock by that much, and measures again.

  python set_clocks.py <molecule instance config>      prints one line per VM: offset before and after
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import IO

import yaml

# Runs on the VM as root: "get" answers the clock; "step S" moves it by S seconds.
AGENT = """
import sys, time
for line in sys.stdin:
    words = line.split()
    if words[:1] == ["step"]:
        time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME) + float(words[1]))
    print(repr(time.time()), flush=True)
"""
SAMPLES = 7


def offset_s(agent_in: IO[str], agent_out: IO[str]) -> tuple[float, float]:
    """(VM clock - controller clock, round trip) of the sample with the shortest round trip."""
    best: tuple[float, float] | None = None
    for _ in range(SAMPLES):
        sent = time.time()
        agent_in.write("get\n")
        agent_in.flush()
        vm_time = float(agent_out.readline())
        received = time.time()
        sample = (vm_time - (sent + received) / 2, received - sent)
        if best is None or sample[1] < best[1]:
            best = sample
    assert best is not None
    return best


def set_clock(instance: dict[str, object]) -> str:
    command = [
        "ssh", "-T", "-i", str(instance["identity_file"]), "-p", str(instance["port"]),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        f"{instance['user']}@{instance['address']}", "sudo", "python3", "-u", "-c", f"'{AGENT}'",
    ]  # fmt: skip
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as agent:
        assert agent.stdin is not None and agent.stdout is not None
        before, _ = offset_s(agent.stdin, agent.stdout)
        agent.stdin.write(f"step {-before!r}\n")
        agent.stdin.flush()
        agent.stdout.readline()
        after, rtt = offset_s(agent.stdin, agent.stdout)
        agent.stdin.close()
        agent.wait(timeout=30)
    if abs(after) > 0.05:
        raise SystemExit(f"{instance['instance']}: clock still {after * 1000:+.0f} ms off after the step")
    return (
        f"{instance['instance']}: offset {before * 1000:+.1f} ms before, {after * 1000:+.1f} ms after "
        f"(round trip {rtt * 1000:.1f} ms)"
    )


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as config:
        instances = yaml.safe_load(config)
    for instance in instances:
        print(set_clock(instance))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
