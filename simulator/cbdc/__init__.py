"""The simulator's digital-currency hard wallets (the card side of docs/cbdc-protocol.md).

Written independently of the terminal's verification code (the ``cbdc``
package): an import-linter contract forbids ``cbdc``, ``emv`` and ``terminal``
here, so that a misreading of the protocol in one cannot hide behind the same
misreading in the other.

- :mod:`simulator.cbdc.tlv`: the wallet's own small strict BER-TLV;
- :mod:`simulator.cbdc.sm2`: SM2 signing with SM3 (gmssl) and SM3 (cryptography);
- :mod:`simulator.cbdc.pki`: the simulator-only PKI of ``simulator/data/cbdc-pki.json``;
- :mod:`simulator.cbdc.profiles`: the ``cbdc-*`` wallet profiles;
- :mod:`simulator.cbdc.state`: wallet state kept across processes (SQLite);
- :mod:`simulator.cbdc.records`: wallet info and payment records encoded, requests read;
- :mod:`simulator.cbdc.wallet`: the wallet application answering the APDUs.

:mod:`simulator.cards` opens a wallet or an EMV card by profile name;
``posterm sim wallet ...`` is :mod:`simulator.wallet_cli` (outside this package:
it uses the terminal's command-line conventions).
"""

__all__: list[str] = []
