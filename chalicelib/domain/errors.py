"""Domain errors: each carries a stable code and the HTTP status it maps to.

Class names are part of the Step Functions contract: the ASL's Retry/Catch
ErrorEquals lists name them (tests check that every name exists here).
"""
from __future__ import annotations


class DropError(Exception):
    """Base of every error a client may see."""

    code = "error"
    status = 400

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details


class InvalidInput(DropError):
    """The request is not valid."""

    code = "invalid_input"


class Unauthorized(DropError):
    """A valid token is required."""

    code = "invalid_token"
    status = 401


class TokenExpired(Unauthorized):
    """The token has expired."""

    code = "token_expired"


class PayloadTooLarge(DropError):
    """The request body is too large."""

    code = "payload_too_large"
    status = 413


class Forbidden(DropError):
    """The operator key is missing or wrong."""

    code = "forbidden"
    status = 403


class BotSuspected(DropError):
    """We could not verify this browser."""

    code = "bot_suspected"
    status = 403


class DropNotFound(DropError):
    """No such drop."""

    code = "drop_not_found"
    status = 404


class DropExists(DropError):
    """A drop with this id already exists."""

    code = "drop_exists"
    status = 409


class RegistrationNotOpen(DropError):
    """Registration has not opened yet."""

    code = "registration_not_open"
    status = 409


class RegistrationClosed(DropError):
    """Registration is closed."""

    code = "registration_closed"
    status = 409


class AlreadyRegistered(DropError):
    """This shopper (or device) is already registered for this drop."""

    code = "already_registered"
    status = 409


class NotRegistered(DropError):
    """This shopper is not registered for this drop."""

    code = "not_registered"
    status = 404


class NotAWinner(DropError):
    """This shopper has no right to buy right now."""

    code = "not_a_winner"
    status = 403


class PurchaseExpired(DropError):
    """The purchase window has closed."""

    code = "purchase_expired"
    status = 410


class SoldOut(DropError):
    """Sold out."""

    code = "sold_out"
    status = 409


class AlreadyPurchased(DropError):
    """This shopper already bought this drop."""

    code = "already_purchased"
    status = 409


class RolloverUnavailable(DropError):
    """Not enough rollover credits."""

    code = "rollover_unavailable"
    status = 409


class RateLimited(DropError):
    """Too many requests; retry later."""

    code = "rate_limited"
    status = 429


class InvalidPhase(DropError):
    """The drop is not in a phase that allows this."""

    code = "invalid_phase"
    status = 409


class TransientStoreError(DropError):
    """The store is busy; retry shortly."""

    code = "service_busy"
    status = 503


class LotteryError(DropError):
    """The lottery could not run."""

    code = "lottery_failed"
    status = 500
