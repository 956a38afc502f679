"""One exit status contract for every ``posterm`` command.

====  ===============================================================
0     approved, or done
1     declined, refused or not completed (a decline by the card or
      the host, a lost answer, a cancel, a refusal by the payment
      rules, settlement refused or out of balance, a check that failed)
2     unusable input: a wrong option or value, an unknown id, a file
      that cannot be read, a configuration that cannot be used
3     unavailable: a device, the host or the terminal's storage
      cannot be used right now
70    internal error: a bug, told in one line (the traceback is in the log)
130   interrupted (Ctrl-C); what was stored is kept, and the message
      says what state the payment is in
====  ===============================================================

With ``--json`` an error is one JSON object on standard output as well:
``{"error": "...", "exit_status": N}``.

>>> int(status_for(ValueError("x")))
2
"""

from __future__ import annotations

import enum

__all__ = ["ExitStatus", "expected", "status_for"]


class ExitStatus(enum.IntEnum):
    OK = 0
    NOT_DONE = 1
    BAD_INPUT = 2
    UNAVAILABLE = 3
    INTERNAL = 70
    INTERRUPTED = 130


# PaymentRefused reasons that are the operator's input, or a device that cannot be used.
_BAD_INPUT_REASONS = frozenset({"not_found", "no_original", "amount", "currency"})
_UNAVAILABLE_REASONS = frozenset(
    {
        "no_reader",
        "reader_gone",
        "reader_error",
        "no_printer",
        "no_scanner",
        "scanner_error",
        "storage",
        "busy",
        "host_unreachable",
    }
)

# Exception class names (anywhere in the class's ancestry) -> status.  Names, not classes, so
# that this module imports nothing: the layers above terminal map their errors by the same rule.
# The first name found going up the class's ancestry wins: DeviceUrlError (a URL that names
# nothing, the user's input) is a DeviceError (unavailable) but maps to BAD_INPUT.
_BY_NAME: dict[str, ExitStatus] = {
    "DeviceUrlError": ExitStatus.BAD_INPUT,
    "NotEnrolled": ExitStatus.BAD_INPUT,
    "HostRejected": ExitStatus.NOT_DONE,  # the host answered no (an enrolment code refused, ...)
    "HostNoAnswer": ExitStatus.NOT_DONE,  # a lost answer: not completed (the host may have acted)
    "SettlementRefused": ExitStatus.NOT_DONE,
    "StorageError": ExitStatus.UNAVAILABLE,
    "KeystoreError": ExitStatus.UNAVAILABLE,
    "DeviceError": ExitStatus.UNAVAILABLE,
    "HostError": ExitStatus.UNAVAILABLE,
    "HostStartError": ExitStatus.UNAVAILABLE,  # the simulated host could not start (posterm demo)
    "NotDone": ExitStatus.NOT_DONE,
    "Interrupted": ExitStatus.INTERRUPTED,
    "InternalError": ExitStatus.INTERNAL,
    "Unavailable": ExitStatus.UNAVAILABLE,
}


# Errors that are unusable input (exit status 2) by design, as opposed to a bug that happens
# to be an exception: terminal.cli reports anything else with status 2 as an internal error.
_INPUT_ERRORS = frozenset(
    {
        "AdminError",  # simulator.host.admin: an operator action that cannot be carried out
        "CliError",
        "CommandError",  # terminal.cli_output
        "ConfigError",
        "EnrolmentError",
        "FaultError",
        "InputFileError",  # terminal.limits: a file that cannot be used as input
        "MoneyError",
        "ParametersError",
        "PaymentRefused",
        "ProfileError",
        "SettingsError",
        "TraceError",
        "TransactionDataError",
        "UsageError",  # terminal.cli_output: the command line itself (argparse)
    }
)


def expected(exc: BaseException) -> bool:
    """Whether ``exc`` is an error a person can cause or meet (any status), not a bug.

    >>> expected(ValueError("x")), expected(type("InputFileError", (ValueError,), {})("too big"))
    (False, True)
    """
    if isinstance(exc, KeyboardInterrupt):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & _INPUT_ERRORS or names & _BY_NAME.keys())


def status_for(exc: BaseException) -> ExitStatus:
    """The exit status for an error that ended a command (2 when nothing else says otherwise)."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    reason = getattr(exc, "reason", None)
    names = [cls.__name__ for cls in type(exc).__mro__]
    if "PaymentRefused" in names and isinstance(reason, str):
        if reason in _BAD_INPUT_REASONS:
            return ExitStatus.BAD_INPUT
        if reason in _UNAVAILABLE_REASONS:
            return ExitStatus.UNAVAILABLE
        return ExitStatus.NOT_DONE
    for name in names:
        if name in _BY_NAME:
            return _BY_NAME[name]
    return ExitStatus.BAD_INPUT
