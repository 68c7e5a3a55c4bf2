"""The test kit: one home for what many tests need around the product, so a site file, a free
port, a simulator process or a clock is made the same way everywhere.

`sites` writes site configs, `ports` finds loopback ports, `clock` holds the fake clock (and an
event loop that runs on it), `sims` starts `energy-pipeline` processes such as the simulators.
conftest.py exposes the fixtures.
"""
