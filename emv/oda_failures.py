"""The names of what can fail in offline data authentication, and the TVR bits each failure sets.

Apart from :mod:`emv.oda` because these are the vocabulary every ODA caller
shares (the kernels that set TVR bits, the outcome's ``OdaReport.failure``),
while the RSA key recovery and signature checks that raise them are a
separate, longer piece of work.  Nothing here does cryptography; :mod:`emv.oda` re-exports
every name, so ``from emv.oda import OdaFailure`` keeps working.
"""

from __future__ import annotations

from emv.tvr import Tvr

__all__ = ["FAILURES", "FAILURE_TVR_BIT", "METHODS", "OdaFailure", "apply_failure", "tvr_bits"]

FAILURES: tuple[str, ...] = (
    "ca_key_missing",
    "ca_key_revoked",
    "ca_key_expired",
    "icc_data_missing",
    "issuer_certificate_length",
    "issuer_certificate_header",
    "issuer_certificate_trailer",
    "issuer_certificate_format",
    "issuer_certificate_hash",
    "issuer_identifier_mismatch",
    "issuer_certificate_expired",
    "issuer_certificate_revoked",
    "issuer_key_algorithm",
    "icc_certificate_length",
    "icc_certificate_header",
    "icc_certificate_trailer",
    "icc_certificate_format",
    "icc_certificate_hash",
    "icc_pan_mismatch",
    "icc_certificate_expired",
    "icc_key_algorithm",
    "ssad_length",
    "ssad_header",
    "ssad_trailer",
    "ssad_format",
    "ssad_hash",
    "sdad_missing",
    "sdad_length",
    "sdad_header",
    "sdad_trailer",
    "sdad_format",
    "sdad_hash",
    "cda_cryptogram_information_mismatch",
    "cda_transaction_data_hash",
)

METHODS: tuple[str, ...] = ("SDA", "DDA", "fDDA", "CDA")

#: The TVR bit (byte index, mask) that says "this method failed".
FAILURE_TVR_BIT: dict[str, tuple[int, int]] = {
    "SDA": Tvr.SDA_FAILED,
    "DDA": Tvr.DDA_FAILED,
    "fDDA": Tvr.DDA_FAILED,
    "CDA": Tvr.CDA_FAILED,
}


class OdaFailure(Exception):
    """Offline data authentication failed; ``name`` is one of :data:`FAILURES`.

    >>> OdaFailure("sdad_hash", "recovered hash differs").name
    'sdad_hash'
    """

    def __init__(self, name: str, detail: str = "") -> None:
        if name not in FAILURES:
            raise ValueError(f"unknown ODA failure name {name!r}")
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.detail = detail


def tvr_bits(method: str, failure: str) -> tuple[tuple[int, int], ...]:
    """The TVR bits to set when ``method`` failed with ``failure``.

    >>> tvr_bits("fDDA", "sdad_hash") == (Tvr.DDA_FAILED,)
    True
    >>> tvr_bits("CDA", "icc_data_missing") == (Tvr.CDA_FAILED, Tvr.ICC_DATA_MISSING)
    True
    """
    if method not in FAILURE_TVR_BIT:
        raise ValueError(f"unknown ODA method {method!r}")
    if failure not in FAILURES:
        raise ValueError(f"unknown ODA failure name {failure!r}")
    if failure == "icc_data_missing":
        return (FAILURE_TVR_BIT[method], Tvr.ICC_DATA_MISSING)
    return (FAILURE_TVR_BIT[method],)


def apply_failure(tvr: Tvr, method: str, failure: str) -> None:
    """Set the TVR bits for a failed method.

    >>> t = Tvr()
    >>> apply_failure(t, "SDA", "ssad_hash")
    >>> t.names()
    ['sda_failed']
    """
    for bit in tvr_bits(method, failure):
        tvr.set(bit)
