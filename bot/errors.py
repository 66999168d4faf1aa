"""Exception types and the words users see for them."""

from __future__ import annotations


class WanbotError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(WanbotError):
    """Settings are missing or wrong; carries every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StorageError(WanbotError):
    """The database (or the video folder) cannot be used: names the file and what is wrong."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class InputError(WanbotError):
    """The user's input cannot be used; nothing was spent on it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


# What a person should read for each provider code: short, and what to do about it.
USER_MESSAGES: dict[str, str] = {
    "InvalidApiKey": "The bot's DashScope API key was refused. An admin needs to set a valid key.",
    "InvalidParameter": "The provider rejected one of the inputs or options.",
    "DataInspectionFailed": "The provider's content check rejected the prompt or media.",
    "IPInfringementSuspect": "The provider suspects the input infringes intellectual property.",
    "Arrearage": "The DashScope account is out of credit. An admin needs to top it up.",
    "AccessDenied": "The account may not use this model. An admin can enable it in Model Studio.",
    "AccessDenied.Unpurchased": "This model is not activated for the account.",
    "Throttling": "The provider is busy right now; the bot will retry.",
    "Throttling.RateQuota": "Too many requests to the provider; the bot will retry.",
    "Throttling.AllocationQuota": "The account's quota for this model is used up.",
    "InternalError": "The provider had an internal error.",
    "InternalError.Timeout": "The provider timed out.",
    "Timeout": "The provider did not answer in time.",
    "ConnectionError": "The provider could not be reached.",
    "UNKNOWN": "The provider no longer knows this task (its results are kept for 24 hours).",
    "Expired": "The result expired before it could be fetched (results are kept for 24 hours).",
    "Canceled": "The job was canceled.",
    "Unreconciled": "The bot was stopped for over a day while sending this job, and the provider "
    "no longer lists tasks that old, so it was not sent again (nothing is paid twice). If no "
    "video came, run it again.",
    "Undeliverable": "The video was made but the bot may not post it where it was asked for.",
    "UnsupportedOperation": "The task has started and can no longer be canceled.",
    "TooLarge": "The video is larger than the bot may keep.",
    "InvalidResponse": "The provider sent an answer the bot could not read.",
    "StorageError": "The video was made but the bot could not save it to its disk. An admin "
    "needs to check the video folder's free space and permissions.",
}

# Codes that are never worth retrying: the same request will fail the same way.
FINAL_CODES = frozenset(
    {
        "InvalidApiKey",
        "InvalidParameter",
        "DataInspectionFailed",
        "IPInfringementSuspect",
        "Arrearage",
        "Throttling.AllocationQuota",  # unless its message says per-minute: see the client
        "AllocationQuota.FreeTierOnly",
    }
)


def describe(code: str, message: str = "") -> str:
    """A short human sentence for a provider code, with the code itself for support."""
    text = USER_MESSAGES.get(code)
    if text is None and code.startswith("AccessDenied"):
        text = USER_MESSAGES["AccessDenied"]
    if text is None:
        text = "The provider reported an error."
    if message and code in ("InvalidParameter", "DataInspectionFailed"):
        text = f"{text} ({message[:200]})"
    return f"{text} [{code}]"


def is_final(code: str) -> bool:
    """True when retrying the same request cannot help."""
    return code in FINAL_CODES or code.startswith("AccessDenied")


class ApiError(WanbotError):
    """DashScope answered with an error, or could not be reached."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 0,
        request_id: str | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
        maybe_created: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message} (HTTP {status})")
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        # A create that may have taken effect (a task may exist): reconcile, never resend blindly.
        self.maybe_created = maybe_created

    def user_message(self) -> str:
        return describe(self.code, self.message)


class Undeliverable(WanbotError):
    """A deliverer's word that posting can never succeed (the channel is gone, or the bot may
    not post there): the job ends as failed instead of being retried for ever."""
