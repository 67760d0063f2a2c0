"""Git deploy and rollback, the core: no Prefect here, so every piece runs and is timed on
its own.

Modules:
    release_spec     what every host of a deploy or rollback gets (ReleaseSpec, RollbackSpec)
    host_deploy      one host's deploy as named steps (deploy_host)
    host_rollback    one host's rollback, restoring a pruned release first (rollback_host)
    host_plan        facts and plans per host, once per distinct facts; the guarded stage
    round_trips      commands to one host, counted
    stage_transport  the stage round trip: inline tar, streamed tar file, or rsync
    stage.sh         the host-side stage program; scripts builds its argv (StageRequest)
    rollback_switch.sh  a rollback's switch to a release the host still has, and its prune
    scripts          argv builders for the combined one-round-trip host steps
    payload_tar      tar packing of the changed files, the manifest patch
    rsync_upload     changed files by rsync
    hooks            pre/post-switch hooks
    health           HTTP / command health checks with retries and a deadline
    switch_back      a host back on its previous release
    source           mirror sync + ref resolution, build commands
    policy           failure threshold
    lease            the deploy lock held for a block, lease renewed in the background
    summary          approval and report Markdown
    errors           DeployError and friends

What happened on a host (HostReport), the same for every release kind, is in
quayside.release.host_report.
"""
