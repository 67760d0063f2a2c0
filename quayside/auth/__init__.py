"""Authentication primitives (API tokens) that need no database."""
