"""Git deploy to 20 sshd hosts: Quayside's ``git_deploy`` / ``rollback`` flows against a serial
rsync loop, 20 parallel rsyncs, Ansible (default forks and forks=20) and parallel
``rsync --link-dest``, all in one run on the same generated app.

Three results: ``git_deploy_fanout`` (first deploy), ``git_deploy_incremental`` (a release with
one changed file) and ``git_deploy_rollback`` (back to the previous release).

One module per job:

- :mod:`.app` generates the git repository, its two tags and their exported trees;
- :mod:`.fleet` starts the namespaced sshd hosts; :mod:`.roots` gives each timed run fresh
  deploy roots and checks what a tool deployed;
- :mod:`.rsync_runs` and :mod:`.ansible_runs` are the tools a user would otherwise use;
  :mod:`.quayside_runs` runs ``quayside up`` and Quayside's flows;
- :mod:`.host_floor` and :mod:`.prefect_floor` measure the floors given as context;
- :mod:`.recorder` times each tool; :mod:`.session` sets everything up once;
  :mod:`.first_deploy` and :mod:`.next_release` measure; :mod:`.report` and :mod:`.notes`
  write the entries; :mod:`.benchmark` runs it all.
"""

from __future__ import annotations

from bench.git_deploy.benchmark import run
from bench.git_deploy.notes import CONTEXT
from bench.git_deploy.report import NAME, RESULTS

__all__ = ["CONTEXT", "NAME", "RESULTS", "run"]
