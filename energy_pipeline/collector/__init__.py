"""The long-running collector: wall-clock-aligned polling, a write-ahead log, minute sealing into
the raw lake, the status file, and the progress marks its systemd watchdog reads (`heartbeat`).
The only writer of `raw_readings` and `polls`."""
