"""The demo Quayside runs when it has no inventory: a sample git repository with tags, four
hosts on this machine (``transport: local``), one app with a test and an approval-gated prod
environment, and a demo MASTER and DEVELOPER whose tokens are printed once."""

from quayside.demo.create import DemoReport, describe_demo, first_run_demo, write_demo

__all__ = ["DemoReport", "describe_demo", "first_run_demo", "write_demo"]
