"""Adapters from real devices (PC/SC, nfcpy, serial scanners, ESC/POS printers) to terminal's ports.

Each adapter registers for a URL scheme in the ``posterm.drivers`` entry point
group.  Nothing here yet: the simulator's ``sim:`` devices are the only
readers so far (see simulator/devices.py).
"""
