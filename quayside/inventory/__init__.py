"""The declarative inventory (quayside.yaml)."""

from quayside.inventory.load import load_inventory, parse_inventory
from quayside.inventory.models import App, Environment, Host, Inventory
from quayside.inventory.resolve import Target, group_hosts, resolve_target

__all__ = [
    "App",
    "Environment",
    "Host",
    "Inventory",
    "Target",
    "group_hosts",
    "load_inventory",
    "parse_inventory",
    "resolve_target",
]
