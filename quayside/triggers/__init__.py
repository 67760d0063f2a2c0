"""Server-free parts of the trigger gateway: parsing and verifying what arrives from outside.

Nothing here talks to Prefect, the ledger or the network; the FastAPI gateway composes these
pieces (literal parsing, the task API model, GitLab hooks, DingTalk callbacks, chat commands).
"""
