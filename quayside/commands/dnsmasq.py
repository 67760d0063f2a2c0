"""dnsmasq's checker, reload and restart as argv templates (placeholders are filled per host
by :mod:`quayside.config.service_commands`).

dnsmasq re-reads its hosts files (``addn-hosts``, /etc/hosts) on SIGHUP, but not
``dnsmasq.conf``: a change there needs a restart (measured with dnsmasq 2.90).
"""

from __future__ import annotations


def check(main: str = "{main}") -> list[str]:
    """Parse a staged configuration without starting a server."""
    return ["dnsmasq", "--test", f"--conf-file={main}"]


def reload() -> list[str]:
    """SIGHUP through the service manager (Debian's unit sends it)."""
    return ["systemctl", "reload", "dnsmasq"]


def restart() -> list[str]:
    return ["systemctl", "restart", "dnsmasq"]


RELOAD_FILES = ("hosts", "*.hosts", "hosts.d/*", "addn-hosts*")
"""The files a SIGHUP picks up, by default: the hosts files."""
