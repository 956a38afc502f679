"""Contactless readers driven by nfcpy (``nfc:`` URLs): ISO-DEP cards of Type 4A and 4B.

The URL is ``nfc:`` followed by an nfcpy device path: ``nfc:usb`` (the first
supported USB reader), ``nfc:usb:054c:06c1`` (vendor:product),
``nfc:usb:001:023`` (bus:device), ``nfc:tty:S0:pn532`` (a serial PN532),
``nfc:udp:127.0.0.1:54329`` (nfcpy's udp transport, where the simulator's
virtual cards answer: :mod:`simulator.nfc_udp`).  ``nfc:`` alone is ``nfc:usb``.

Polling
-------
Each round polls Type B, then Type A, with the RF field switched off before
each poll so that every card starts from power-up (EMV polls both
technologies before it activates anything):

- a poll answered by a frame nfcpy cannot read (``TransmissionError`` /
  ``ProtocolError``: several cards modulating at once) raises
  :class:`~terminal.ports.CollisionDetected`;
- a Type A *and* a Type B card answering raises it too;
- one card: if it speaks ISO-DEP (SAK bit 6 for A, protocol type for B) it is
  activated through nfcpy's ``Type4ATag`` / ``Type4BTag`` (RATS/ATS or
  ATTRIB, frame sizes and FWT from the card), and the session exchanges APDUs
  with the tag's ISO-DEP ``transceive`` (chaining, R(ACK)/R(NAK), WTX are
  nfcpy's);
- no card, or a card that is not ISO-DEP (a MIFARE Classic, a Type 2 tag): the
  next round, after a short pause, until the timeout
  (:class:`~terminal.ports.NoCardError`) or the cancel token
  (:class:`~terminal.ports.WaitCancelled`).

The driver calls the device's ``sense_tta`` / ``sense_ttb`` itself instead of
``ContactlessFrontend.sense``/``connect``: those log and drop every
communication error of a poll, and a collision is exactly such an error.
The cancel token and the deadline are checked before every poll, so a cancel
takes effect within one poll (milliseconds on hardware; on the udp transport
up to the 1 s nfcpy waits for a silent peer, or a round trip with the
simulator's field, which answers "nothing here" at once).

Readers with hardware anticollision (PN53x) select one of two same-technology
cards without telling: there, two Type A cards are not seen as a collision;
a Type A and a Type B card are.

Errors: a card gone, mute or breaking the protocol mid-exchange ->
:class:`~terminal.ports.CardRemovedError`; the device failing (unplugged,
closed) -> :class:`~terminal.ports.DeviceGone`; a device that cannot be
opened -> :class:`~terminal.ports.DeviceError`.

``session.atr`` is a PC/SC-style ATR built from the activation, as a PC/SC
contactless reader reports it (PC/SC part 3, 3.1.3.2.3): ``3B 8n 80 01``, the
ATS historical bytes (Type A) or ATQB application data, protocol info and
MBLI (Type B), and TCK.  The raw ATS is ``session.ats``.

nfcpy logs frames at DEBUG level, card numbers included; :meth:`NfcReader.open`
raises the ``nfc`` loggers to INFO unless someone configured them explicitly.
"""

from __future__ import annotations

import binascii
import contextlib
import logging
import threading
import time
from typing import Any

from terminal.ports import (
    CancelToken,
    CardRemovedError,
    CollisionDetected,
    DeviceError,
    DeviceGone,
    NoCardError,
    WaitCancelled,
)

__all__ = ["NfcReader", "NfcSession", "atr_from_atqb", "atr_from_ats"]

log = logging.getLogger(__name__)

POLL_PAUSE_SECONDS = 0.05  # between two polling rounds that found nothing
DISCOVER_SECONDS = 2.0  # discovery gives up after this long (a hung USB stack must not hang the caller)
_TYPE_A, _TYPE_B = "106A", "106B"


def atr_from_ats(ats: bytes) -> bytes:
    """PC/SC part 3 ATR of an ISO 14443-4 Type A card: ``3B 8n 80 01`` + historical bytes of the ATS + TCK."""
    historical = b""
    if len(ats) >= 2:
        t0 = ats[1]
        start = 2 + bin(t0 & 0x70).count("1")  # TA, TB, TC present
        historical = ats[start : ats[0]] if ats[0] <= len(ats) else ats[start:]
    return _pcsc_atr(historical[:15])


def atr_from_atqb(atqb: bytes, attrib_answer: bytes) -> bytes:
    """PC/SC part 3 ATR of a Type B card: application data (4), protocol info (3), MBLI << 4."""
    mbli = (attrib_answer[0] >> 4) if attrib_answer else 0
    return _pcsc_atr(bytes(atqb[5:12]) + bytes([mbli << 4]))


def _pcsc_atr(historical: bytes) -> bytes:
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


def _device_path(url: str) -> str:
    scheme, sep, rest = url.partition(":")
    if scheme != "nfc" or not sep:
        raise DeviceError(f"{url!r} is not an nfc: URL (e.g. nfc:usb, nfc:tty:S0:pn532, nfc:udp:127.0.0.1:54329)")
    return rest or "usb"


def _quiet_nfcpy_logs() -> None:
    """nfcpy logs every frame at DEBUG (card numbers in clear): keep its loggers at INFO unless configured."""
    for name in ("nfc.clf", "nfc.tag"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


class _FrameTap:
    """Stands in for the ContactlessFrontend during activation, to keep the ATS / ATTRIB answer.

    nfcpy's Type4ATag reads the ATS for FSC and FWT and throws it away; the
    session needs it for ``atr``.
    """

    def __init__(self, clf: Any) -> None:
        self._clf = clf
        self.first_answer: bytes | None = None

    def exchange(self, data: Any, timeout: float) -> Any:
        answer = self._clf.exchange(data, timeout)
        if self.first_answer is None and answer is not None:
            self.first_answer = bytes(answer)
        return answer

    @property
    def max_send_data_size(self) -> int:
        return int(self._clf.max_send_data_size)

    @property
    def max_recv_data_size(self) -> int:
        return int(self._clf.max_recv_data_size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clf, name)


class NfcSession:
    """An activated ISO-DEP card: APDUs through nfcpy's Type 4 tag; closing switches the field off."""

    def __init__(self, reader: NfcReader, tag: Any, *, technology: str, atr: bytes, ats: bytes | None) -> None:
        self._reader = reader
        self._tag = tag
        self._closed = False
        self.technology = technology  # "106A" or "106B"
        self.ats = ats  # the raw ATS (Type A), None for Type B
        self._atr = atr

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def identifier(self) -> bytes:
        """UID (Type A) or PUPI (Type B)."""
        return bytes(self._tag.identifier)

    def exchange(self, command: bytes) -> bytes:
        import nfc.clf
        import nfc.tag

        if self._closed:
            raise CardRemovedError("the card session is closed")
        try:
            answer = self._tag.transceive(bytes(command))
        except nfc.tag.TagCommandError as exc:  # ISO-DEP timeout, receive or protocol error after retries
            raise CardRemovedError(f"the card stopped answering: {exc}") from None
        except nfc.clf.CommunicationError as exc:  # the link broke (BrokenLinkError), WTX timed out, ...
            raise CardRemovedError(f"the card left the field: {type(exc).__name__} {exc}".rstrip()) from None
        except OSError as exc:  # the device: unplugged, closed
            raise DeviceGone(f"{self._reader.url}: {exc}") from None
        except (IndexError, TypeError, ValueError) as exc:  # a malformed block nfcpy tripped over
            raise CardRemovedError(f"ISO-DEP protocol error: {type(exc).__name__}") from None
        if answer is None:
            raise CardRemovedError("no answer from the card")
        return bytes(answer)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader._field_off()


class NfcReader:
    """A contactless reader nfcpy drives, opened from an ``nfc:`` URL (see the module doc)."""

    kind = "reader"

    def __init__(self, url: str, clf: Any) -> None:
        self.url = url
        self._clf = clf
        self._technologies = [_TYPE_B, _TYPE_A]
        self._closed = False

    @classmethod
    def open(cls, url: str) -> NfcReader:
        path = _device_path(url)
        try:
            import nfc
        except ImportError as exc:
            raise DeviceError(f"{url!r}: nfcpy is not installed ({exc})") from None
        _quiet_nfcpy_logs()
        clf = nfc.ContactlessFrontend()
        try:
            found = clf.open(path)
        except OSError as exc:  # EACCES, EBUSY on a fully named device
            raise DeviceError(f"cannot open {url!r}: {exc}") from None
        except Exception as exc:  # a bad path, a missing libusb
            raise DeviceError(f"cannot open {url!r}: {type(exc).__name__}: {exc}") from None
        if not found:
            raise DeviceError(f"no nfcpy reader at {path!r} (plugged in? may this user open it?)")
        return cls(url, clf)

    @staticmethod
    def discover() -> list[str]:
        """Supported USB readers attached now, as ``nfc:usb:BUS:DEV`` (none claimed).

        Serial readers are not probed (probing writes to the port, which may be a
        scanner); the udp transport has nothing to enumerate.  Bounded by
        :data:`DISCOVER_SECONDS`.
        """
        found: list[str] = []

        def look() -> None:
            try:
                from nfc.clf import device, transport

                for vid, pid, bus, dev in transport.USB.find("usb") or []:
                    if (vid, pid) in device.usb_device_map:
                        found.append(f"nfc:usb:{bus:03d}:{dev:03d}")
            except Exception:  # no libusb, no permission: nothing to report
                return

        worker = threading.Thread(target=look, name="nfc-discover", daemon=True)
        worker.start()
        worker.join(DISCOVER_SECONDS)
        return [] if worker.is_alive() else list(found)

    # -- polling --------------------------------------------------------------------------------

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> NfcSession:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            session = self._poll_round(cancel)
            if session is not None:
                return session
            if cancel is not None and cancel.cancelled:
                raise WaitCancelled("cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                raise NoCardError(f"no card in the field of {self.url} within {timeout:g} s")
            pause = POLL_PAUSE_SECONDS
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            if cancel is not None:
                if cancel.wait(pause):
                    raise WaitCancelled("cancelled")
            elif pause:
                time.sleep(pause)

    def _device(self) -> Any:
        device = self._clf.device
        if device is None or self._closed:
            raise DeviceGone(f"{self.url}: the reader is closed")
        return device

    def _sense(self, device: Any, technology: str) -> Any:
        """One poll of one technology with the field freshly on; the target or None."""
        import nfc.clf

        target = nfc.clf.RemoteTarget(technology)
        try:
            device.mute()
            if technology == _TYPE_A:
                return device.sense_tta(target)
            return device.sense_ttb(target)
        except OSError as exc:  # IOError from the device driver: unplugged, or the port went away
            raise DeviceGone(f"{self.url}: {exc}") from None
        except (nfc.clf.BrokenLinkError, nfc.clf.TimeoutError):
            return None  # nobody answered
        except (nfc.clf.TransmissionError, nfc.clf.ProtocolError, binascii.Error, IndexError) as exc:
            # An answer nobody could decode: cards modulating over each other.
            with contextlib.suppress(OSError):
                device.mute()
            raise CollisionDetected(f"more than one card answered the {technology} poll ({exc})") from None
        except (nfc.clf.UnsupportedTargetError, ValueError, NotImplementedError):
            log.info("%s cannot poll for %s targets; polling without", self.url, technology)
            self._technologies.remove(technology)
            return None

    def _poll_round(self, cancel: CancelToken | None) -> NfcSession | None:
        found: dict[str, Any] = {}
        with self._clf.lock:
            for technology in list(self._technologies):
                if cancel is not None and cancel.cancelled:
                    raise WaitCancelled("cancelled")
                target = self._sense(self._device(), technology)
                if target is not None:
                    found[technology] = target
            if not self._technologies:
                raise DeviceError(f"{self.url} can poll neither Type A nor Type B cards")
            device = self._device()
            if len(found) != 1:
                with contextlib.suppress(OSError):
                    device.mute()
                if found:
                    raise CollisionDetected("a Type A and a Type B card are in the field")
                return None
            technology, target = next(iter(found.items()))
            if technology != self._technologies[-1]:
                # Not the last technology polled: the field went off since; wake the card again.
                target = self._sense(device, technology)
                if target is None:
                    return None
            if not self._iso_dep(technology, target):
                log.info("%s: a card without ISO-DEP is in the field; ignored", self.url)
                with contextlib.suppress(OSError):
                    device.mute()
                return None
            self._clf.target = target
        return self._activate(technology, target)

    @staticmethod
    def _iso_dep(technology: str, target: Any) -> bool:
        if technology == _TYPE_A:
            return bool(target.sel_res) and bool(target.sel_res[0] & 0x20)
        return bool(target.sensb_res) and len(target.sensb_res) >= 12 and bool(target.sensb_res[10] & 0x01)

    def _activate(self, technology: str, target: Any) -> NfcSession | None:
        import nfc.clf
        import nfc.tag.tt4

        tap = _FrameTap(self._clf)
        try:
            tag = nfc.tag.tt4.activate(tap, target)
        except nfc.clf.CommunicationError as exc:  # no ATS / ATTRIB answer in time
            log.info("%s: activation failed: %s %s", self.url, type(exc).__name__, exc)
            tag = None
        except OSError as exc:
            raise DeviceGone(f"{self.url}: {exc}") from None
        except (IndexError, TypeError, ValueError) as exc:  # an ATS too short to read
            log.info("%s: unreadable activation answer: %s", self.url, type(exc).__name__)
            tag = None
        if tag is None or tap.first_answer is None:
            self._field_off()
            return None
        if technology == _TYPE_A:
            ats: bytes | None = tap.first_answer
            atr = atr_from_ats(tap.first_answer)
        else:
            ats = None
            atr = atr_from_atqb(bytes(target.sensb_res), tap.first_answer)
        return NfcSession(self, tag, technology=technology, atr=atr, ats=ats)

    def _field_off(self) -> None:
        """RF off: the card loses power (the end of a session, or a failed activation)."""
        with self._clf.lock:
            self._clf.target = None
            device = self._clf.device
            if device is not None:
                with contextlib.suppress(OSError):
                    device.mute()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._clf.close()
