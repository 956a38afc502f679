"""A software PIN pad's keys: DUKPT registers kept in the terminal's data directory.

FIT FOR THE SIMULATOR AND FOR ATTENDED TESTS ONLY.

The on-screen PIN pad (:mod:`terminal.screen_pinpad`) forms its PIN blocks
here. A deployment uses a certified PIN pad, whose keys never leave its
secure element; this one keeps them in a file, readable by the terminal's
user only (0600), ``<data_dir>/screen-pinpad-keys.json``::

    {"aes":  {"initial_key": HEX32, "ikid": HEX16, "counter": N},
     "tdes": {"ipek": HEX32, "initial_ksn": HEX20, "counter": N}}

``counter``: the DUKPT counter of the last PIN block formed (0: none yet).
Each block advances it, under a file lock, before the block is formed and
written back at once, so that no KSN is ever used twice (across processes
too). Format 4 (AES DUKPT, X9.24-3) takes its key from the future-key
registers (:class:`terminal.dukpt.AesFutureKeys`, loaded at the counter and
erased after use); format 0 (TDES DUKPT, X9.24-1) from the IPEK and the KSN.
A shortcut a certified PIN pad does not take: the file keeps the initial key
and the IPEK (a real pad erases them once its future-key registers are
filled, and keeps the registers in tamper-responsive memory), and the
registers are derived again for each block, which gives the same keys.

Key injection: :func:`load_keys` writes the file (a key-loading device's job).
The simulator injects the keys derived from its test BDKs
(``posterm sim pinpad-key``, :mod:`simulator.screen_pinpad_key`), so that the
simulated issuer deciphers these blocks; nothing in terminal/ knows a BDK.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from terminal.dukpt import (
    AES_KSN_BYTES,
    TDES_KSN_BYTES,
    AesFutureKeys,
    DukptError,
    tdes_ksn,
    tdes_next_counter,
    tdes_pin_key,
    tdes_transaction_key,
)
from terminal.files import atomic_write, make_private_dir
from terminal.pinblock import EncryptedPin, PinBlockError, PinFormat, encipher, wipe
from terminal.ports import DeviceError

__all__ = ["KEYS_FILE", "SoftwarePinPad", "load_keys"]

KEYS_FILE: Final = "screen-pinpad-keys.json"
_MAX_BYTES: Final = 4096


def load_keys(
    data_dir: Path, *, aes_initial_key: bytes, aes_ikid: bytes, tdes_ipek: bytes, tdes_initial_ksn: bytes
) -> Path:
    """Inject a software PIN pad's initial keys into ``data_dir`` (counters from 0); returns the file written."""
    if len(aes_initial_key) != 16 or len(aes_ikid) != AES_KSN_BYTES - 4:
        raise ValueError("an AES DUKPT initial key is 16 bytes, its initial key id 8")
    if len(tdes_ipek) != 16 or len(tdes_initial_ksn) != TDES_KSN_BYTES:
        raise ValueError("a TDES DUKPT IPEK is 16 bytes, its initial KSN 10")
    doc = {
        "aes": {"initial_key": aes_initial_key.hex().upper(), "ikid": aes_ikid.hex().upper(), "counter": 0},
        "tdes": {"ipek": tdes_ipek.hex().upper(), "initial_ksn": tdes_initial_ksn.hex().upper(), "counter": 0},
    }
    make_private_dir(Path(data_dir))
    path = Path(data_dir) / KEYS_FILE
    atomic_write(path, (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode("ascii"))
    return path


class SoftwarePinPad:
    """The key registers of a software PIN pad in ``data_dir``: form a PIN block under the next KSN."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir)
        self.path = self.directory / KEYS_FILE

    def _missing(self) -> DeviceError:
        return DeviceError(
            f"the on-screen PIN pad has no keys in {self.directory} (a simulator loads its test keys: "
            f"posterm sim pinpad-key --data-dir {self.directory})"
        )

    def check(self) -> None:
        """DeviceError when there are no keys to form a block with (said before the customer keys a PIN)."""
        if not self.path.is_file():
            raise self._missing()
        self._read()

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
            if len(raw) > _MAX_BYTES:
                raise ValueError("too large")
            doc = json.loads(raw)
            aes, tdes = doc["aes"], doc["tdes"]
            for part, names in ((aes, ("initial_key", "ikid")), (tdes, ("ipek", "initial_ksn"))):
                for name in names:
                    bytes.fromhex(part[name])
                if not isinstance(part["counter"], int) or part["counter"] < 0:
                    raise ValueError("counter")
            return dict(doc)
        except FileNotFoundError:
            raise self._missing() from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeviceError(
                f"the on-screen PIN pad's key file {self.path} is damaged ({type(exc).__name__})"
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        try:
            lock = os.open(self.directory / (KEYS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DeviceError(f"the on-screen PIN pad cannot use {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self._read()
            yield doc
            atomic_write(self.path, (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode("ascii"))
        except OSError as exc:
            raise DeviceError(f"the on-screen PIN pad cannot keep its counter in {self.path}: {exc.strerror}") from None
        finally:
            os.close(lock)

    def counters(self) -> dict[str, int]:
        """The counter of the last KSN used per key (``aes``, ``tdes``)."""
        doc = self._read()
        return {"aes": int(doc["aes"]["counter"]), "tdes": int(doc["tdes"]["counter"])}

    def form(self, pin: bytearray, pan: str, fmt: PinFormat) -> EncryptedPin:
        """The PIN block of ``pin`` (ASCII digits) for ``pan`` under the next KSN; ``pin`` is wiped whatever happens."""
        try:
            with self._locked() as doc:
                if PinFormat(fmt) is PinFormat.ISO_4:
                    aes = doc["aes"]
                    registers = AesFutureKeys(bytes.fromhex(aes["initial_key"]), bytes.fromhex(aes["ikid"]),
                                              int(aes["counter"]))  # fmt: skip
                    try:
                        ksn, key = registers.next_key()
                    finally:
                        registers.erase()
                    aes["counter"] = int.from_bytes(ksn[8:], "big")
                else:
                    tdes = doc["tdes"]
                    tdes["counter"] = tdes_next_counter(int(tdes["counter"]))
                    ksn = tdes_ksn(bytes.fromhex(tdes["initial_ksn"]), tdes["counter"])
                    key = tdes_pin_key(tdes_transaction_key(bytes.fromhex(tdes["ipek"]), ksn))
            return EncryptedPin(encipher(pin, pan, key, PinFormat(fmt)), ksn, PinFormat(fmt))
        except (DukptError, PinBlockError) as exc:
            raise DeviceError(f"the on-screen PIN pad: {exc}") from None
        finally:
            wipe(pin)
