"""Mitogen's linear strategy for the scenario vm (molecule.yml names this directory in strategy_plugins).

Mitogen for Ansible (the `mitogen` package, pinned in requirements-dev.txt) runs each host's modules in
one Python interpreter it keeps for the play, over the same SSH connection, instead of starting a fresh
interpreter that imports Ansible's module_utils from a zip for every task. Under QEMU's emulation that
import costs about 2.6 s of the VM's CPU per task and host, which made a converge take 6 minutes and the
idempotence run 4. The playbook, the role and the inventory are unchanged; only the scenario vm uses it
(docs/deploy.md, "Molecule on VMs").
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    pass
