"""The long-running collector: wall-clock-aligned polling, a write-ahead log, minute sealing into
the raw lake, and the status file. The only writer of `raw_readings` and `polls`."""
