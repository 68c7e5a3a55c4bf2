"""The long-running collector: wall-clock-aligned polling, a write-ahead log, minute sealing into
the raw lake, and the status file. The only source of `raw_readings` and `polls`.

The collect floor keeps scheduling, polling, the WAL and its live state; it seals and writes its
status through `lake` and never places a lake file itself. Outcomes fan out through the
`sinks.OutcomeSink` protocol, so the live outputs the CLI hands it stay out of its imports. It
may import drivers, lake, config, readings, sinks and logs; never defs, simulators, transforms
or dagster.
"""
