"""Console verbs for people at a terminal: `poll-once`, `health`, `profiles`, `export` (the CSV
files outside Dagster), and the process supervisor the demo runs its children under.

The face floor: may import anything below it; today drivers, lake, transforms, catalog, config,
profiles and logs. Data goes to stdout (a table, or JSON with --json), logs to stderr.
"""
