"""What the git deploy benchmarks' report says besides the figures: the notes under each
table (how a tool was run, what the machine does to the numbers) and the static context
(reference figures and goals from the issues), kept apart so the measuring code stays short."""

from __future__ import annotations

LOGIN_NOTE = (
    "Every tool logs in to the hosts as `quayside-deploy`, a system user with /bin/sh as its "
    "shell, as deploy accounts are: no rc file runs per SSH command. (Logged in as root on "
    "this machine, every SSH command would first run root's ~/.bashrc, which runs "
    "`pyenv init`: about 0.12 s of CPU per command, for every tool.)"
)
EMPTY_FLOW_NOTE = (
    "`prefect_empty_flow_s`: an `async` flow that does nothing, called in-process against the "
    "same server, median of the same number of runs: the floor of Quayside's flows, which are "
    "async flows running their blocking body in a thread. `prefect_empty_sync_flow_s`: the "
    "same flow declared with plain `def`; Prefect 3.8's sync engine ends by joining the "
    "flow's heartbeat thread, which sleeps in whole seconds, so a sync flow's wall time is "
    "its body rounded up to the next whole second."
)
FLOOR_NOTE = (
    "`host_work_floor_s` (context, not in the ratios): the host work of Quayside's approach "
    "with nothing else - no Prefect, no ledger, no planning - told what changed: per host one "
    "ssh (Quayside's OpenSSH options) running `cp -al` of the previous release, extracting a "
    "tar of the changed file from stdin and switching `current`, every host at once. "
    "`prefect_flow_noop_task_per_host_s`: an async flow (as Quayside's) whose body submits "
    "one no-op task per host and waits for them, against the same server: what per-host task "
    "runs cost, which is why the release flows run a group of hosts in ONE task run "
    "(quayside.tasks.fanout.fan_out). The release flow costs about the floor, an empty flow "
    "and its own work (build, manifest, plan, ledger, artifacts)."
)
PREPARED_NOTE = (
    "After a switch, each Quayside host makes a hard-link copy of the new release in the "
    "background (`.quayside-next-<id>`, quayside.deploy.scripts), which the next deploy "
    "renames into its new release directory instead of running `cp -al` of 5,000 files while "
    "it deploys. The copy starts 3 s after the switch (`NEXT_DELAY_S`), only if that release "
    "still serves, at nice 19 with its session's CPU share lowered: started at once, the 20 "
    "copies on this one machine took the CPU from the rest of the release (Linux shares CPU "
    "between sessions before nice applies; measured: 1.75 s against 1.15 s per release). On "
    "a real fleet each host copies on its own CPU. Before each timed Quayside release the "
    "benchmark waits (untimed) until every host has made it - the hosts are idle, as between "
    "two deploys; `quayside_hosts_prepared_after_s` is how long that took after the previous "
    "release returned. Without the copy (a release less than 3 s after the last one, a host "
    "deployed by something else, a rollback in between) the deploy falls back to `cp -al`."
)
WARM_NOTE = (
    "SSH connections: Quayside runs host commands through the OpenSSH client on a master "
    "connection per host kept open 60 s after its last command (ControlPersist, the inventory's "
    "`persist_s`; Ansible's default is the same), so the timed release reuses the connections "
    'its untimed first release opened moments before. The row "no persisted SSH '
    'connections" is the same release to the same hosts listed with `persist_s: 0` (a new '
    "paramiko connection per host, what a release more than 60 s after the last command "
    "to a host costs); `parallel_rsync_link_dest_vs_quayside_cold` is rsync's time over that "
    "row's. The rsync baselines open new connections, as users run them."
)
LOG_LEVEL_NOTE = (
    "The Quayside flows are called in-process with `PREFECT_LOGGING_LEVEL=WARNING` (a quiet "
    "console for the benchmark): their INFO lines are neither printed nor sent to the Prefect "
    "API. Runs started through the worker log at INFO."
)
LOOPBACK_NOTE = (
    "All hosts are sshd processes on loopback (127.0.0.11 and up) on this one machine: "
    "network transfer is memory copies, and every host's sshd, rsync and tar compete with "
    "the tool itself for the same {cores} cores."
)
HOST_DISK_NOTE = (
    "The hosts' directories (deploy roots) are on one tmpfs: a real fleet writes to 20 "
    "disks, these 20 hosts would otherwise share this virtual machine's one disk, where "
    "creating files costs 0.1 to 0.5 ms each and varies run to run by up to 20x (measured "
    "here: 5,000 file creates took 0.09 s to 1.9 s; a 5,000-file tar extracted in 0.6 s on "
    "tmpfs and 2.9 s on the disk). On the disk, every tool's first deploy was bound by file "
    "creation, 20 x 5,000 of them, and the figures measured the disk more than the tools."
)
HOST_DISK_FALLBACK_NOTE = (
    "The hosts' directories are on this machine's one disk ({reason}): first deploys are "
    "bound by file creation there (20 x 5,000 files on one virtual disk) and vary widely."
)

TRANSFER_NOTE = (
    "How Quayside sends a first release: one tar file packed once by GNU tar, streamed to each "
    "host through the OpenSSH client into the same one-round-trip stage script (extract, link "
    "shared paths, seal the manifest, switch). For these bulk transfers it asks OpenSSH for "
    "AES-GCM and the curve25519 key exchange first; the rsync and Ansible runs use OpenSSH's "
    "defaults (ChaCha20-Poly1305, sntrup761x25519), as users run them. Measured separately "
    "here: OpenSSH's default key exchange costs about 0.17 CPU-s per connection, and on the "
    "same tmpfs hosts 20 parallel `tar | ssh` took 4.2 to 6.7 s where 20 parallel rsyncs took "
    "11.5 to 12.9 s."
)

BACK_TO_BACK_NOTE = (
    "Timed Quayside runs follow each other back to back (first release untimed, then the "
    "timed next release, then the timed rollback), against the platform's Prefect server as "
    "`quayside up` runs it. Right after a release, the embedded server's SQLite database is "
    "busy recording that run's 20+ task runs, and Prefect's server answered the next flow "
    'run\'s first API call with a retryable 503 ("database is locked"), after which '
    "Prefect's client waits about 2 s; measured before the fix, back to back: rollbacks of "
    "0.9 to 4.0 s. `quayside up` now retries such requests inside the server "
    "(quayside.stack.busy_retry)."
)

MIRROR_NOTE = (
    "Before the timed runs, one untimed release and the next go to another app of the same "
    "repository. Quayside keeps one checked-out tree per repository (updated by git with only "
    "the files that differ) and git's index records file timestamps in whole seconds: files "
    'written in the same second as the index are "racily clean", and the next update '
    "re-reads all of them once (measured: 0.39 s for these 5,000 files / 50 MB, then 0.01 s). "
    "That is a one-time cost per repository after its first checkout; the timed runs measure "
    "the steady state. In earlier runs without this warm-up, the first timed release was the "
    "slowest of the three in five bench runs out of six."
)

#: Static text shown with each result in docs/benchmarks.md (not measured here).
CONTEXT = {
    "git_deploy_fanout": (
        "Reference figures from issue 3 (measured earlier on this kind of machine: 2 cores, 20 "
        "hosts, same payload): Ansible 103 s (default forks) and 97 s (forks=20), serial rsync "
        "loop 49 s, 20 parallel rsyncs 21 s. Goal: at least 5x faster than Ansible with "
        "default forks and no slower than 20 parallel rsyncs."
    ),
    "git_deploy_incremental": (
        "Reference (issue 3): parallel `rsync --link-dest` 17 s. Goal: under 3 s wall and at "
        "least 5x faster than parallel `rsync --link-dest`, under 100 KB sent per host."
    ),
    "git_deploy_rollback": "Goal (issue 3): 20 hosts in under 2 s, no re-transfer.",
}
