"""A learner's own view of their profile: their segment, their strongest topics, their propensities, and,
for each partner they let recommend products, what it would be shown and why, down to the learner's own
courses behind each reason.

Partners never see the courses (their explanations name topics and keywords only); the learner may, since
they are the learner's own history. Nothing here is recorded as a recommendation or leaves the platform:
it is the learner reading what the service derives about them, the same figures a partner's request would
use, checked against the same consents on chain.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from backend.chain import Purpose
from backend.errors import ChainUnavailable
from backend.models import KnowledgeItem, Partner, Profile, User
from backend.schemas.users import (
    CourseRef,
    LearnerProfileView,
    LearnerRecommendations,
    LearnerTopic,
    ReasonedProduct,
)
from backend.services.directory import Directory
from backend.services.gateway import RECOMMENDATION_PURPOSES, ChainGateway
from backend.services.model import ModelSlot
from backend.services.profiles import ProfileRefresher, StoredProfile
from recommender.profiles import Profile as LearnerProfile


class LearnerView:
    def __init__(
        self, gateway: ChainGateway, directory: Directory, model: ModelSlot, profiles: ProfileRefresher
    ) -> None:
        self._gateway = gateway
        self._directory = directory
        self._model = model
        self._profiles = profiles

    def profile(self, session: Session, user: User, k: int = 3) -> LearnerProfileView:
        self._directory.current()
        row = session.get(Profile, user.id)
        served = self._model.served
        if row is None:
            return LearnerProfileView(
                has_profile=False, segment=None, topics=[], propensities={}, courses=[], recommendations=[]
            )
        stored = StoredProfile(row.data, row.course_indices, row.product_indices, row.model_version)
        if served is not None:
            stored = self._profiles.for_model(user.id, stored, served)
        learner = LearnerProfile.from_dict(stored.data)
        ranker = None if served is None else served.ranker
        item_of = None if served is None else served.course_ids
        titles = self._titles(session, stored.course_indices, item_of)
        topics: list[LearnerTopic] = []
        if ranker is not None and ranker.knowledge is not None:
            labels = ranker.knowledge.topic_labels()
            weights = learner.topics
            order = [int(i) for i in weights.argsort()[::-1][:5] if weights[i] > 0]
            topics = [LearnerTopic(topic=labels[i], weight=round(float(weights[i]), 4)) for i in order]
        recs: list[LearnerRecommendations] = []
        note = None
        if served is not None and ranker is not None:
            subject = bytes.fromhex(user.pseudonym.removeprefix("0x"))
            features = learner.features()
            for partner in session.exec(select(Partner).order_by(col(Partner.id))).all():
                try:
                    check = self._gateway.verify_consent(subject, partner.address, frozenset(Purpose))
                except ChainUnavailable:
                    note = "the chain cannot be read now: recommendations are not shown"
                    break
                if not check.held >= RECOMMENDATION_PURPOSES:
                    continue
                ranked = ranker.rank(
                    features,
                    k=k,
                    history=stored.product_indices or None,
                    course_indices=stored.course_indices or (),
                    candidates=self._directory.partner_products(partner.id, served),
                )
                products = []
                for r in ranked:
                    why = r.explanation or {}
                    courses = [
                        titles[c["course_index"]]
                        for c in why.get("courses", [])
                        if c.get("course_index") in titles
                    ]
                    products.append(
                        ReasonedProduct(
                            product_id=r.product_id,
                            name=self._directory.product_name(r.product_id),
                            topics=[t.get("topic") for t in why.get("topics", []) if t.get("topic")],
                            keywords=list(why.get("keywords", []))[:5],
                            courses=courses,
                        )
                    )
                recs.append(
                    LearnerRecommendations(
                        partner_id=partner.id, partner_name=partner.name, checked_at_block=check.head.number,
                        products=products,
                    )
                )  # fmt: skip
        return LearnerProfileView(
            has_profile=True,
            segment=learner.segment_name,
            topics=topics,
            propensities={kind: round(p, 4) for kind, p in sorted(learner.propensities.items())},
            courses=list(titles.values()),
            recommendations=recs,
            note=note,
            model_version=None if served is None else served.version,
        )

    @staticmethod
    def _titles(session: Session, rows: list[int], item_of: list[str] | None) -> dict[int, CourseRef]:
        """The learner's courses by topic-space row, with their ids and titles."""
        if item_of is not None:
            ids = {r: item_of[r] for r in rows if 0 <= r < len(item_of)}
            found = session.exec(select(KnowledgeItem).where(col(KnowledgeItem.id).in_(list(ids.values()))))
            by_id = {i.id: i for i in found.all()}
            return {r: CourseRef(item_id=i, title=by_id[i].title) for r, i in ids.items() if i in by_id}
        found = session.exec(select(KnowledgeItem).where(col(KnowledgeItem.position).in_(rows)))
        return {
            int(i.position): CourseRef(item_id=i.id, title=i.title)
            for i in found.all()
            if i.position is not None
        }
