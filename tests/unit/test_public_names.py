"""The public face of every package, pinned: its public modules and each module's ``__all__``.

A change to what a package offers (a module added, moved or removed, a name
added to or dropped from an ``__all__``) makes these tests fail until the data
below is edited to match: changing the public face is a deliberate act, seen
in review.  Every module, public or private, has an ``__all__`` naming only
what it defines or imports, and importing any module does no work (no thread,
no file, no handler, no signal) and needs none of the optional device
libraries (pyscard, nfcpy, pyserial, pyzbar, python-escpos, pyusb, Kivy).

A public module is one whose dotted name has no part starting with ``_``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("emv", "terminal", "drivers", "host_link", "simulator", "ui")

# Modules being reshaped: they must have an __all__, but neither they nor their names are pinned yet.
NOT_PINNED_YET: set[str] = set()

PUBLIC: dict[str, set[str]] = {
    # ---------------------------------------------------------------------------- emv
    "emv": {
        "ApduTransport",
        "Capk",
        "CapkError",
        "CapkStore",
        "CardCommunicationError",
        "CertificateRevocationList",
        "CollisionDetected",
        "Combination",
        "ConfigError",
        "CvmPerformed",
        "ExceptionFile",
        "KernelContext",
        "KernelError",
        "Message",
        "OdaFailure",
        "OdaReport",
        "Outcome",
        "ReaderStatus",
        "TerminalConfig",
        "TransactionData",
        "TransactionResult",
        "Tsi",
        "Tvr",
        "UiMessage",
        "process",
    },
    "emv.apdu": {
        "AC_AAC",
        "AC_ARQC",
        "AC_TC",
        "ApduError",
        "ApduTransport",
        "CardCommunicationError",
        "CollisionDetected",
        "Response",
        "generate_ac",
        "get_data",
        "get_response",
        "gpo",
        "internal_authenticate",
        "read_record",
        "select",
        "transmit",
    },
    "emv.capabilities": {
        "PIN_CVM_CAPABILITY",
        "PIN_TAGS",
        "TTQ_OFFLINE_PIN",
        "TTQ_ONLINE_PIN",
        "pin_methods_in_cvm_capability",
        "pin_methods_in_ttq",
        "without_pin",
        "without_pin_claims",
        "without_pin_cvm_capability",
        "without_pin_terminal_capabilities",
        "without_pin_ttq",
    },
    "emv.capk": {"Capk", "CapkError", "CapkStore", "INVALID", "LOOKUP_ERRORS", "checksum_of"},
    "emv.config": {
        "CapkStore",
        "CertificateRevocationList",
        "Combination",
        "ConfigError",
        "ExceptionFile",
        "TerminalConfig",
    },
    "emv.cvm": {
        "APPLY_NEXT",
        "CAP_ENCIPHERED_PIN_OFFLINE",
        "CAP_NO_CVM",
        "CAP_ONLINE_PIN",
        "CAP_PLAINTEXT_PIN",
        "CAP_SIGNATURE",
        "CvmCondition",
        "CvmContext",
        "CvmList",
        "CvmListError",
        "CvmMethod",
        "CvmOutcome",
        "CvmRule",
        "NO_CVM_PERFORMED",
        "PinResult",
        "condition_satisfied",
        "no_cvm_supported_by_card",
        "parse_cvm_list",
        "process",
        "terminal_supports",
    },
    "emv.dol": {"DolEntry", "DolError", "build", "fit", "parse", "split"},
    "emv.entry_point": {
        "Candidate",
        "CollisionDetected",
        "DEFAULT_KERNEL_BY_RID",
        "Event",
        "OVER_CONTACTLESS_LIMIT",
        "PPSE_NAME",
        "State",
        "TRANSITIONS",
        "build_candidates",
        "none_allowed_reason",
        "parse_ppse",
        "pre_process",
        "process",
    },
    "emv.kernel_c2": {
        "Event",
        "GacResponse",
        "State",
        "TRANSITIONS",
        "choose_oda_method",
        "cryptogram_type",
        "parse_gac_response",
        "run",
    },
    "emv.kernel_c3": {"Cryptogram", "cryptogram_type", "decide_cvm", "run"},
    "emv.kernel_common": {
        "AflEntry",
        "KernelContext",
        "KernelError",
        "OdaKeys",
        "PreProcessingIndicators",
        "RecordsRead",
        "gpo_response",
        "parse_afl",
        "read_records",
        "recover_oda_keys",
        "result_from",
        "send",
        "unique_primitives",
    },
    "emv.oda": {
        "CertificateRevocationList",
        "FAILURES",
        "FAILURE_TVR_BIT",
        "IccDynamicData",
        "IssuerKey",
        "METHODS",
        "OdaFailure",
        "PublicKey",
        "apply_failure",
        "ca_public_key",
        "cda_transaction_data_hash",
        "fdda_terminal_data",
        "recover_icc_key",
        "recover_issuer_key",
        "static_data_to_authenticate",
        "tvr_bits",
        "verify_cda",
        "verify_sdad",
        "verify_ssad",
    },
    "emv.outcome": {
        "CvmPerformed",
        "Message",
        "OdaReport",
        "Outcome",
        "ReaderStatus",
        "TransactionResult",
        "UiMessage",
    },
    "emv.pan": {
        "PAN_MAX_DIGITS",
        "PAN_MIN_DIGITS",
        "mask_command",
        "mask_hex",
        "mask_pan",
        "mask_response",
        "mask_text",
        "pan_of",
    },
    "emv.recorder": {"ApduRecorder", "Exchange", "ExchangeObserver"},
    "emv.risk": {
        "ActionCodes",
        "RandomSelection",
        "RestrictionContext",
        "RiskResult",
        "TaaDecision",
        "VelocityData",
        "check_dates",
        "floor_limit_check",
        "is_atm",
        "processing_restrictions",
        "random_selection",
        "terminal_action_analysis",
        "terminal_risk_management",
        "velocity_check",
    },
    "emv.tags": {"FORMATS", "SOURCES", "TAGS", "TagInfo", "format_of", "name_of", "source_of"},
    "emv.tlv": {
        "Tlv",
        "TlvError",
        "decode",
        "decode_primitive_map",
        "encode",
        "encode_all",
        "encode_length",
        "encode_pairs",
        "encode_tag",
        "find",
        "find_all",
        "is_constructed",
        "iter_primitives",
        "tag_hex",
    },
    "emv.transaction": {"TransactionData", "TransactionDataError", "bcd", "bcd_date", "bcd_to_int"},
    "emv.tvr": {"Bit", "BitEffects", "Tsi", "Tvr"},
    # ---------------------------------------------------------------------------- terminal
    "terminal": set(),
    "terminal.apdu_trace": {"ApduObserver", "ApduTrace", "ObservedReader", "observe"},
    "terminal.cli": {"main"},
    "terminal.cli_devices": {"add_commands"},
    "terminal.bootstrap": {
        "ENROLMENT_FILE",
        "HOSTLINK_GROUP",
        "PARAMETERS_POINTER",
        "default_data_dir",
        "load_configuration",
        "open_host",
        "open_terminal",
        "printer_for",
        "reader_for",
    },
    "terminal.card_reading": {
        "CardRequest",
        "HOST_DATA_TAGS",
        "SCHEMES",
        "card_details",
        "card_record",
        "host_data",
        "read_card",
        "scheme_of",
    },
    "terminal.cli_journal": {"EXPORT_COLUMNS", "run"},
    "terminal.cli_output": {
        "CommandError",
        "Interrupted",
        "NotDone",
        "Unavailable",
        "emit",
        "iso_moment",
        "positive_int",
        "write_output",
    },
    "terminal.core": {"Clock", "Core", "MIN_RETENTION_YEARS", "SystemClock", "TerminalSettings", "iso"},
    "terminal.exit_status": {"ExitStatus", "status_for"},
    "terminal.facade": {
        "CancelToken",
        "Clock",
        "ForwardReport",
        "NothingToSettle",
        "PaymentResult",
        "SafStatus",
        "SettlementRefused",
        "SettlementResult",
        "SystemClock",
        "Terminal",
        "TerminalEvent",
        "TerminalSettings",
    },
    "terminal.forwarding": {"Forwarder", "SEND_CHUNK"},
    "terminal.host": {
        "Advice",
        "AnswerStatus",
        "AuthorisationRequest",
        "BatchAdvising",
        "BatchTotals",
        "HostAnswer",
        "HostCertificateRejected",
        "HostError",
        "HostLink",
        "HostNoAnswer",
        "HostRejected",
        "HostUnreachable",
        "Reversal",
        "SettlementAnswer",
        "TotalsLine",
        "reconcile",
    },
    "terminal.devices": {
        "DEFAULT_DEVICES",
        "DEVICES_FILE",
        "DeviceConfig",
        "DeviceConfigError",
        "KINDS",
        "LazyPrinter",
        "LazyReader",
        "load_devices",
        "set_device",
        "validate_url",
    },
    "terminal.journal": {
        "Chain",
        "GENESIS",
        "PurgeReport",
        "SEALED_COLUMNS",
        "VerifyReport",
        "canonical",
        "purge",
        "verify",
    },
    "terminal.lifecycle": {
        "APPROVED_STATES",
        "COUNTED_REFUND_STATES",
        "Event",
        "FINAL_STATES",
        "FOLLOW_UPS",
        "FollowUp",
        "Money",
        "State",
        "TRANSITIONS",
        "Transition",
        "TransitionError",
        "UNFINISHED_STATES",
        "customer_paid",
        "follow_up_refusal",
        "next_state",
        "saf_kind",
        "table_markdown",
        "transition",
    },
    "terminal.receipting": {"RECEIPT_STATUS", "Receipts"},
    "terminal.response_codes": {"RESPONSE_CODES", "decline_reason"},
    "terminal.results": {
        "ForwardReport",
        "PaymentResult",
        "SafStatus",
        "SettlementRefused",
        "SettlementResult",
        "TerminalEvent",
    },
    "terminal.schema": {"SCHEMA", "SCHEMA_VERSION", "migrate_2_to_3"},
    "terminal.settlement": {"NothingToSettle", "Settlement"},
    "terminal.store": {
        "CardRecord",
        "NewPayment",
        "PurgeReport",
        "QueuedItem",
        "StorageCorrupt",
        "StorageError",
        "StorageFull",
        "StorageReadOnly",
        "Store",
        "TxnRow",
        "VerifyReport",
    },
    "terminal.cli_payments": {"add_commands"},
    "terminal.diagnostics": {
        "BundleInfo",
        "CAPK_EXPIRY_WARNING_DAYS",
        "DiagResult",
        "PACKAGES",
        "TEST_NAMES",
        "configuration_summary",
        "export_bundle",
        "list_devices",
        "render_test_page",
        "results_json",
        "run_diagnostics",
        "summary",
        "text_report",
        "versions",
    },
    "terminal.emv_session": {"TapInputs", "TapReport", "build_transaction", "run_tap", "trace_header"},
    "terminal.files": {"atomic_write", "fsync_dir", "make_private_dir"},
    "terminal.keystore": {
        "CorruptCiphertext",
        "FileKeystore",
        "InsecureKeyFile",
        "KeyFileCorrupt",
        "KeyFileMissing",
        "Keystore",
        "KeystoreError",
        "MAC_PURPOSES",
        "MASTER_KEY_ENV",
        "WrongMasterKey",
    },
    "terminal.logfile": {
        "LOG_BACKUPS",
        "LOG_FILE",
        "LOG_MAX_BYTES",
        "PanMaskingFilter",
        "command_logging",
        "log_tail",
        "open_log_handler",
    },
    "terminal.money": {"Currency", "MoneyError", "currency", "format_amount", "parse_amount"},
    "terminal.offline": {"OfflineBehavior", "OfflineLimitExceeded", "OfflineLimits", "PaymentRefused", "RetryPolicy"},
    "terminal.ports": {
        "CancelToken",
        "CardReader",
        "CardRemovedError",
        "CardSession",
        "CodeScanner",
        "CollisionDetected",
        "DeviceError",
        "DeviceGone",
        "NoCardError",
        "NoCodeError",
        "PrinterError",
        "PrinterStatus",
        "ReceiptPrinter",
        "ScannedCode",
        "WaitCancelled",
        "codes",
    },
    "terminal.receipts": {
        "Copy",
        "Cvm",
        "Kind",
        "ReceiptData",
        "ReceiptLine",
        "Status",
        "check_masked_pan",
        "receipt_lines",
        "render_escpos",
        "render_text",
    },
    "terminal.registry": {
        "DeviceChange",
        "DeviceMonitor",
        "GROUP",
        "KINDS",
        "adapter_for",
        "discover",
        "discover_all",
        "kind_of",
        "open_printer",
        "open_reader",
        "open_scanner",
        "schemes",
    },
    "terminal.reports": {"CurrencyTotals", "ReportKind", "render_report", "totals_by_currency"},
    "terminal.settings": {
        "SettingsError",
        "load_config",
        "load_default_config",
        "load_default_settings",
        "load_settings",
        "shipped_document",
    },
    "terminal.trace": {"TraceError", "read_trace_header", "to_trace"},
    # ---------------------------------------------------------------------------- drivers
    "drivers": set(),
    "drivers.camera_scanner": {"CameraScanner", "decode_frame"},
    "drivers.escpos_printer": {"EscposPrinter", "PrinterTarget", "decode_status", "parse_escpos_url"},
    "drivers.nfc": {"NfcReader", "NfcSession", "atr_from_atqb", "atr_from_ats"},
    "drivers.pcsc": {
        "DEFAULT_ANSWER_TIMEOUT",
        "PCSC_ERRORS",
        "PcscCode",
        "PcscReader",
        "PcscSession",
        "error_for",
        "reader_url",
    },
    "drivers.preview": {
        "PAPER_58MM_DOTS",
        "PAPER_80MM_DOTS",
        "command_length",
        "iter_commands",
        "render_image",
        "render_png",
    },
    "drivers.serial_scanner": {
        "AIM_SYMBOLOGIES",
        "LineAssembler",
        "ScannerOptions",
        "SerialScanner",
        "aim_identifier",
        "parse_serial_url",
        "parse_token",
    },
    # ---------------------------------------------------------------------------- host_link
    "host_link": set(),
    "host_link.cli": {"add_commands"},
    "host_link.client": {
        "DEFAULT_CONNECT_TIMEOUT",
        "DEFAULT_READ_TIMEOUT",
        "HttpsHostLink",
        "IdempotentRetry",
        "advices_key",
        "header_key",
        "open_host_link",
    },
    "host_link.credentials": {
        "CREDENTIALS_DIR",
        "Credentials",
        "credentials_dir",
        "load_credentials",
        "require_credentials",
    },
    "host_link.enrolment": {"CredentialBundle", "EnrolmentError", "enrol", "make_csr", "read_bundle"},
    "host_link.forwarder": {"ForwardingTerminal", "SafForwarder"},
    "host_link.parameters": {
        "LIMITS",
        "ParameterSource",
        "ParameterStatus",
        "ParametersError",
        "apply",
        "current_version",
        "download_and_apply",
        "parameters_dir",
        "rollback",
        "status",
        "verify",
    },
    "host_link.reachability": {"Reachability", "ReachabilityStatus"},
    "host_link.tls": {"client_context", "is_handshake_refusal"},
    "host_link.wire": {
        "EchoAnswer",
        "MAX_ADVICES_PER_REQUEST",
        "MalformedAnswer",
        "SignOnAnswer",
        "advice_json",
        "advice_results",
        "advices_json",
        "authorisation_answer",
        "authorisation_json",
        "batch_close_json",
        "clean_text",
        "echo_answer",
        "error_text",
        "parameters_answer",
        "parse_json",
        "reversal_answer",
        "reversal_json",
        "settlement_answer",
        "sign_on_answer",
        "sign_on_json",
    },
    # ---------------------------------------------------------------------------- simulator
    "simulator": set(),
    "simulator.card": {"CardMuteError", "PPSE", "SimulatedCard", "SimulatedCardError"},
    "simulator.cryptograms": {
        "CVN_MC_16",
        "CVN_VISA_10",
        "CVN_VISA_18",
        "CryptogramData",
        "arpc",
        "build_iad",
        "compute",
        "cvr_from_iad",
        "verify_arqc",
    },
    "simulator.demo": {"DemoDay", "Step", "add_commands"},
    "simulator.devices": {"SimulatorCardReader", "SimulatorDeviceError"},
    "simulator.host": set(),
    "simulator.host.acquirer": {
        "Acquirer",
        "COMPONENTS",
        "IdempotencyConflict",
        "KEY_PATTERN",
        "Peer",
        "REJECTED_CODE",
        "Reply",
        "SalePosition",
        "host_time",
        "open_totals",
        "sale_positions",
        "stamp",
    },
    "simulator.host.admin": {
        "AdminError",
        "block_card",
        "credential_bundle",
        "host_status",
        "make_enrolment_code",
        "open_store",
        "publish_parameters",
        "records",
        "sale_positions",
        "set_velocity",
        "unblock_card",
    },
    "simulator.host.app": {"PEER_STATE_KEY", "PUBLIC_PATHS", "Peer", "TRANSPORT_STATE_KEY", "create_app"},
    "simulator.host.ca": {
        "CLIENT_CERT_DAYS",
        "CertificateAuthority",
        "CsrError",
        "ServerCertificates",
        "TlsFiles",
        "load_or_create_ca",
        "write_server_certificates",
    },
    "simulator.host.cli": {"add_commands", "default_data_dir", "main"},
    "simulator.host.faults": {
        "APPLIED_FILE",
        "CERTIFICATES",
        "FAULTS_FILE",
        "FaultError",
        "FaultSwitch",
        "Faults",
        "SERVER_FILE",
        "ServerInfo",
        "acknowledge",
        "atomic_write_json",
        "combine",
        "read_faults",
        "request_faults",
        "running_server",
        "write_faults",
    },
    "simulator.host.inprocess": {
        "Call",
        "HostFaults",
        "InProcessHost",
        "MEMORY_HOST_DIR",
        "Record",
        "memory_host_database",
        "open_memory_host",
    },
    "simulator.host.issuer": {
        "ARQC_FAILED_CODE",
        "BLOCKED_CARD_CODE",
        "Decision",
        "EXPIRED_CARD_CODE",
        "EmvDataError",
        "FORMAT_ERROR_CODE",
        "Issuer",
        "MAGIC_AMOUNT_CODES",
        "VELOCITY_CODE",
        "parse_emv_data",
    },
    "simulator.host.params": {"ParametersError", "capk_checksum", "default_document", "ensure_initial", "publish"},
    "simulator.host.schema": {"DOCUMENT_URI", "first_error", "openapi_bytes", "openapi_document", "validator"},
    "simulator.host.server": {"HostServer", "TlsH11Protocol", "peer_from_ssl", "serve", "server_ssl_context"},
    "simulator.host.service": {"ClientCredentials", "HostService", "HostStartError", "start_host"},
    "simulator.host.store": {"CachedResponse", "DB_NAME", "EnrolmentCode", "HostStore", "Record", "StoreError"},
    "simulator.issuer_keys": {"ISSUER_MASTER_KEYS", "IssuerMasterKeys", "issuer_master_keys"},
    "simulator.net_printer": {
        "JobRecord",
        "JobStream",
        "PrinterEngine",
        "VirtualNetworkPrinter",
        "add_printer_arguments",
        "parse_fault",
        "run_until_signalled",
        "serve_printer_cli",
    },
    "simulator.nfc_udp": {
        "ApduCard",
        "COLLISION_MARK",
        "DEFAULT_FWI",
        "DEFAULT_PORT",
        "FRAME_SIZES",
        "FieldFaults",
        "FieldStats",
        "NO_ANSWER",
        "VirtualCard",
        "VirtualNfcField",
        "make_card",
        "parse_faults",
        "serve_card_cli",
    },
    "simulator.pcscd": {
        "Pcscd",
        "PcscdError",
        "VPCD_READER_PREFIX",
        "ensure_pcscd",
        "list_readers",
        "pcscd_running",
        "reader_has_card",
        "wait_for_reader_state",
    },
    "simulator.pki": {
        "CA_INDEX_REVOKED",
        "CA_INDEX_VALID",
        "ICC_TAMPERS",
        "ISSUER_TAMPERS",
        "PkiError",
        "RsaPrivateKey",
        "RsaPublicKey",
        "SIGNATURE_TAMPERS",
        "SimulatorPki",
        "capk_checksum",
        "generate",
        "icc_certificate",
        "issuer_certificate",
        "load_pki",
        "main",
        "pad_pan",
        "sdad",
        "ssad",
    },
    "simulator.profiles": {
        "COMPUTED_TAGS",
        "CardProfile",
        "OdaSpec",
        "ProfileError",
        "RecordSpec",
        "list_names",
        "load",
    },
    "simulator.pty_scanner": {"VirtualScanner", "add_scanner_arguments", "serve_scanner_cli"},
    "simulator.replay": {"RecordedExchange", "ReplayCard", "TraceError", "load_trace"},
    "simulator.sim_cli": {"add_commands"},
    "simulator.transport": {"CardTransport", "as_transport"},
    "simulator.vpcd": {
        "CONTACTLESS_ATR",
        "T0_ATR",
        "VPCD_PORT",
        "VirtualCard",
        "VpcdError",
        "load_card",
        "reader_name",
        "serve_card_cli",
    },
    # ---------------------------------------------------------------------------- ui
    "ui": set(),
}


def _all_modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        names.extend(info.name for info in pkgutil.walk_packages(path, package + "."))
    return names


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def test_the_public_modules_are_the_pinned_ones() -> None:
    public = {name for name in _all_modules() if _is_public(name)}
    assert sorted(public - NOT_PINNED_YET - set(PUBLIC)) == [], "a new public module: pin its __all__ here"
    assert sorted(set(PUBLIC) - public) == [], "a pinned module is gone: take it out of PUBLIC"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_module_exports_the_pinned_names(name: str) -> None:
    exported = set(importlib.import_module(name).__all__)
    assert sorted(exported - PUBLIC[name]) == [], f"{name} exports names not pinned here"
    assert sorted(PUBLIC[name] - exported) == [], f"{name} no longer exports pinned names"


@pytest.mark.parametrize("name", _all_modules())
def test_every_module_has_an_all_of_names_it_has(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert all(isinstance(item, str) for item in exported)
    assert len(set(exported)) == len(exported), f"{name}: a name twice in __all__"
    assert [item for item in exported if not hasattr(module, item)] == []


_IMPORT_EVERYTHING = """
import importlib, importlib.abc, json, logging, os, pkgutil, signal, sys, threading

BLOCKED = {"smartcard", "nfc", "serial", "pyzbar", "escpos", "usb", "kivy"}


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (absent in this test)", name=name)
        return None


sys.meta_path.insert(0, Absent())
sys.path.insert(0, sys.argv[1])
signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
names, failed = [], {}
for package in json.loads(sys.argv[2]):
    names.append(package)
    path = importlib.import_module(package).__path__
    names.extend(info.name for info in pkgutil.walk_packages(path, package + "."))
for name in names:
    if name.rpartition(".")[2] == "__main__":
        continue
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
print(json.dumps({
    "modules": len(names),
    "failed": failed,
    "threads": [t.name for t in threading.enumerate()],
    "handlers": [repr(h) for h in logging.getLogger().handlers],
    "signals_changed": [s.name for s, h in signals.items() if signal.getsignal(s) != h],
    "files": sorted(os.listdir(".")),
}))
"""


def test_importing_every_module_does_no_work_and_needs_no_device_library(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING, str(ROOT), json.dumps(PACKAGES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["modules"] > len(PACKAGES) and report["failed"] == {}
    assert report["threads"] == ["MainThread"] and report["handlers"] == [] and report["signals_changed"] == []
    assert report["files"] == [] and list(tmp_path.iterdir()) == []
