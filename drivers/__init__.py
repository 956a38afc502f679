"""Adapters from real devices to the terminal's ports, one module per kind of device.

- :mod:`drivers.pcsc`: PC/SC readers through pyscard (``pcsc:``, ``pcsc:NAME``);
- :mod:`drivers.nfc`: NFC readers through nfcpy (``nfc:usb``, ``nfc:udp:HOST:PORT``);
- :mod:`drivers.serial_scanner`: serial QR / barcode scanners (``serial:PATH?baud=...``);
- :mod:`drivers.serial_pinpad`: serial PIN pads of the posterm-pinpad protocol
  (``serial:PATH?protocol=posterm-pinpad``);
- :mod:`drivers.camera_scanner`: camera frames and image files decoded with pyzbar (``camera:...``);
- :mod:`drivers.escpos_printer`: ESC/POS printers over network, serial and USB (``escpos:...``);
- :mod:`drivers.preview`: ESC/POS bytes rendered to a PNG, for previews and the virtual printer.
  Its parts beside it: :mod:`drivers.escpos_commands` (where each command ends) and
  :mod:`drivers.preview_canvas` (the drawing).

Each adapter registers for its URL scheme in the ``posterm.drivers`` entry point
group; the terminal opens devices through :mod:`terminal.registry` and never
imports this package.
"""

__all__: list[str] = []  # the modules are the public face (pinned in tests/unit/test_public_names.py)
