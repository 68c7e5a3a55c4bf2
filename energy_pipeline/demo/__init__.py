"""`energy-pipeline demo`: the simulated site end to end (`site`), its headless pipeline run
(`headless`), and the live table of `--poll-only` (`table`).

The face floor: may import anything below it, defs included (the headless run asks the
sensor's own code for its run request). Child processes run under `console.supervisor`.
"""
