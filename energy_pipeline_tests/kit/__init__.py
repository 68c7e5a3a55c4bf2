"""The test kit: one home for what many tests need around the product, so a site file, a free
port, a simulator process or a clock is made the same way everywhere.

`sites` writes site configs, `ports` finds free loopback ports (and holds taken ones), `clock`
holds the fake clock (and an event loop that runs on it), `sims` starts and stops
`energy-pipeline` processes such as the simulators, `dagster` gives each test its own in-memory
Dagster instance. conftest.py exposes the fixtures.
"""
