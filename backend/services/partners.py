"""Partners (banks, insurers): registration with a notice published on chain, notice updates (which void
every earlier consent to that partner), API keys, and their products."""

from __future__ import annotations

from sqlmodel import Session, col, select

from backend.chain import ConsentRegistryClient, Wallet
from backend.chain.types import checksum
from backend.core.security import key_hash, new_secret
from backend.errors import Conflict, NotFound
from backend.models import NoticeUpdate, Partner, PartnerCreate, PartnerCreated, PartnerPublic, Product
from backend.schemas.partners import NoticePublished, PartnerKey, ProductList, ProductPublic
from backend.services.directory import Directory, mark_changed
from backend.services.gateway import ChainGateway


class PartnerService:
    def __init__(
        self, gateway: ChainGateway, registry: ConsentRegistryClient, admin: Wallet, directory: Directory
    ) -> None:
        self._gateway = gateway
        self._registry = registry
        self._admin = admin
        self._directory = directory

    @staticmethod
    def list(session: Session) -> list[PartnerPublic]:
        rows = session.exec(select(Partner).order_by(col(Partner.id))).all()
        return [PartnerPublic.model_validate(p, from_attributes=True) for p in rows]

    def _publish_notice(self, address: str, version: int) -> None:
        self._gateway.run(
            "publishing the partner notice",
            lambda: self._registry.set_partner_notice_version(address, version, sender=self._admin),
        )

    def create(self, session: Session, body: PartnerCreate) -> PartnerCreated:
        """Register a partner and publish its notice (version 1) on chain. The API key is shown once."""
        if session.get(Partner, body.id) is not None:
            raise Conflict(f"partner {body.id!r} exists", field="id")
        address = checksum(body.address)
        if session.exec(select(Partner.id).where(Partner.address == address)).first():
            raise Conflict(f"address {address} already belongs to a partner", field="address")
        current = self._gateway.run(
            "reading the partner notice", lambda: self._registry.partner_notice_version(address)
        )
        version = current + 1
        self._publish_notice(address, version)
        key = new_secret("pk")
        partner = Partner(
            **body.model_dump(exclude={"address"}),
            address=address,
            notice_version=version,
            api_key_hash=key_hash(key),
        )
        session.add(partner)
        mark_changed(session)
        session.commit()
        self._directory.refresh()
        return PartnerCreated(**partner.model_dump(), api_key=key)

    def update_notice(self, session: Session, partner_id: str, body: NoticeUpdate) -> NoticePublished:
        """A new notice text: the version goes up on chain and every earlier consent for this partner
        stops counting until the user grants again."""
        partner = session.get(Partner, partner_id)
        if partner is None:
            raise NotFound(f"unknown partner {partner_id!r}")
        version = partner.notice_version + 1
        self._publish_notice(partner.address, version)
        partner.notice_text, partner.notice_version = body.notice_text, version
        session.add(partner)
        session.commit()
        return NoticePublished(partner_id=partner.id, notice_version=version)

    def rotate_key(self, session: Session, partner_id: str) -> PartnerKey:
        partner = session.get(Partner, partner_id)
        if partner is None:
            raise NotFound(f"unknown partner {partner_id!r}")
        key = new_secret("pk")
        partner.api_key_hash = key_hash(key)
        session.add(partner)
        mark_changed(session)
        session.commit()
        self._directory.refresh()
        return PartnerKey(partner_id=partner.id, api_key=key)

    @staticmethod
    def products(session: Session, partner_id: str | None) -> ProductList:
        q = select(Product).order_by(col(Product.id))
        if partner_id:
            q = q.where(Product.partner_id == partner_id)
        return ProductList(products=[ProductPublic(**p.model_dump()) for p in session.exec(q).all()])
