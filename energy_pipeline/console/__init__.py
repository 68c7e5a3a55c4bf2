"""Console verbs for people at a terminal: `poll-once`, `health`, `profiles`, and the process
supervisor the demo runs its children under.

The face floor: may import anything below it (drivers, lake, collector, config, profiles).
Data goes to stdout (a table, or JSON with --json), logs to stderr.
"""
