"""Pure command builders: functions that return argv lists (or sh -c argv with a constant script
and user data as separate positional arguments). Nothing here does I/O; executors run them."""
