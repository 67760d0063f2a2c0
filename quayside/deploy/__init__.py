"""Git deploy and rollback, the core: no Prefect here, so every piece runs and is timed on
its own.

Modules:
    engine    the per-host apply engine (deploy_host, rollback_host, switch_back)
    scripts   argv builders for the combined one-round-trip host steps
    source    mirror sync + ref resolution, build commands
    health    HTTP / command health checks with retries and a deadline
    policy    failure threshold
    lease     the deploy lock held for a block, lease renewed in the background
    summary   approval and report Markdown
    errors    DeployError and friends
"""
