"""Partners and their catalogue."""

from __future__ import annotations

from pydantic import BaseModel


class NoticePublished(BaseModel):
    partner_id: str
    notice_version: int


class PartnerKey(BaseModel):
    partner_id: str
    #: Shown once; stored only as its SHA-256.
    api_key: str


class ProductPublic(BaseModel):
    id: str
    partner_id: str
    name: str
    kind: str
    description: str
    risk_level: int


class ProductList(BaseModel):
    products: list[ProductPublic]
