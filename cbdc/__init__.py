"""Pure digital-currency (hard-wallet) protocol code: commands, signed records, certificate chains, checks.

No I/O, no clock reads, no randomness (the challenge comes in with the request),
nothing of the project imported.  The protocol is docs/cbdc-protocol.md.

- :mod:`cbdc.kernel`: ``pay`` and ``resume`` over a transport, and their outcome;
- :mod:`cbdc.checks`: the named refusals, the trust store from parameters, the checks;
- :mod:`cbdc.protocol`: the AID, commands, status words, and the four templates;
- :mod:`cbdc.envelope`: the E6 envelope an advice carries to the host;
- :mod:`cbdc.sm2` / :mod:`cbdc.sm3`: SM2 verification (GB/T 32918) and SM3 (GB/T 32905).
"""

from cbdc.checks import ParameterError, Refusal, TrustStore
from cbdc.envelope import Envelope
from cbdc.kernel import Intent, OfflineState, OutcomeKind, WalletOutcome, pay, resume
from cbdc.protocol import PaymentRecord, PaymentRequest, ProtocolError

__all__ = [
    "Envelope",
    "Intent",
    "OfflineState",
    "OutcomeKind",
    "ParameterError",
    "PaymentRecord",
    "PaymentRequest",
    "ProtocolError",
    "Refusal",
    "TrustStore",
    "WalletOutcome",
    "pay",
    "resume",
]
