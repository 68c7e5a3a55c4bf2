"""The site VPN: the product runs `openvpn` itself and drives it over its management interface.

`management` is the protocol as pure data (lines in, events out), `tunnel` one openvpn process
and its state file, `manager` the supervision the collector and the one-shot verbs ask for, and
`verbs` the `energy-pipeline vpn up|down|status` commands.
"""
