"""The long-running collector: wall-clock-aligned polling, a write-ahead log, minute sealing into
the raw lake, the status file, and the progress marks its systemd watchdog reads (`heartbeat`).
The only source of `raw_readings` and `polls`.

The collect floor keeps scheduling, polling, the WAL and its live state; it seals (in its seal
process, `sealjob`, so the 24/7 process never loads Arrow) and writes its status through `lake`
and never places a lake file itself. Outcomes fan out through the
`sinks.OutcomeSink` protocol, so the live outputs the CLI hands it stay out of its imports. It
may import drivers, lake, config, readings, sinks, logs and `ops.notify`; never defs,
simulators, transforms or dagster.
"""
