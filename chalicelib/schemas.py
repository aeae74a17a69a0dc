"""Request bodies, validated with pydantic; anything else is a 400 invalid_input."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from chalicelib.domain.errors import InvalidInput

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Ms = Annotated[StrictInt, Field(ge=0, le=4_102_444_800_000)]  # up to 2100-01-01


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProductIn(Strict):
    title: Text
    image_url: Annotated[str, StringConstraints(max_length=500)] = ""
    price: Annotated[StrictInt, Field(ge=0, le=10_000_000)]


class CreateDropIn(Strict):
    drop_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] | None = None
    name: Text
    product: ProductIn
    inventory: Annotated[StrictInt, Field(ge=1, le=1_000_000)]
    registration_start: Ms
    registration_end: Ms
    purchase_window: Annotated[StrictInt, Field(ge=1, le=7 * 24 * 3600)]
    ticket_price_unit: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 1
    max_tickets: Annotated[StrictInt, Field(ge=1, le=100)] = 10
    rollover_cap: Annotated[StrictInt, Field(ge=0, le=1000)] = 10
    max_rounds: Annotated[StrictInt, Field(ge=1, le=20)] = 3


class FingerprintIn(Strict):
    visitor_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    confidence: Annotated[float, Field(ge=0, le=1)] = 0.0
    request_id: Annotated[str, StringConstraints(max_length=128)] | None = None


class PowIn(Strict):
    challenge: dict
    nonce: Annotated[StrictInt, Field(ge=0, le=2**53)]


class SignalsIn(Strict):
    interactions: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    elapsed_ms: Annotated[StrictInt, Field(ge=0, le=86_400_000)] = 0


class RegisterIn(Strict):
    tickets: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    rollover: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    pow: PowIn
    fingerprint: FingerprintIn | None = None
    signals: SignalsIn | None = None


class PurchaseIn(Strict):
    purchase_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


def parse(model: type[BaseModel], body: object) -> BaseModel:
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInput(f"{where}: {first.get('msg', 'invalid')}") from exc
