"""The whole data path once on real data: ``python scripts/real_data_run.py`` prints one JSON object.

Against ``knowledger serve`` in its own process (embedded chain, SQLite, the demo world's partners,
products and agreements), through the HTTP API only:

1. the real Udemy catalogue (``../shared/data/courses/udemy_courses.csv``, 3,678 courses in four subjects)
   is uploaded as the platform's ``items`` (``POST /api/v1/ingest/items``);
2. learners are generated with coarse attributes (``users``) and behaviour on those courses (``interactions``:
   views weighted by each course's real subscriber count, purchases at the real price, completions,
   ratings), uploaded as files;
3. the learners sign in, consent to both partners, get recommendations, and convert on what they would
   take up: each learner has a hidden affinity to every product, the TF-IDF similarity of the titles of
   the courses they took to the product's text plus a preference of their life stage for product kinds;
   a learner converts on the shown product they like best when it is among their three favourites of that
   partner's products;
4. a model is trained on the ingested data (``POST /api/v1/models``); the candidate and the served
   model (trained on the demo world, which has never seen these courses) are scored on the same held-out
   conversions through their serving paths;
5. the candidate is promoted through the quality gate; recommendations follow, explained with topics and
   keywords from the real titles.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.services.seed import demo_split, train_model  # noqa: E402
from tests import faults  # noqa: E402

UDEMY = ROOT.parent / "shared" / "data" / "courses" / "udemy_courses.csv"
LEVELS = {
    "All Levels": "all_levels",
    "Beginner Level": "beginner",
    "Intermediate Level": "intermediate",
    "Expert Level": "expert",
}
STAGES = ("student", "young_professional", "family", "pre_retirement", "retired")
STAGE_AGE = {
    "student": "18-24",
    "young_professional": "25-34",
    "family": "35-44",
    "pre_retirement": "55-64",
    "retired": "65+",
}
#: How much a life stage likes each product kind (the hidden part of a learner's affinity).
STAGE_KIND = {
    "student": {"accident": 0.6, "health": 0.4},
    "young_professional": {"wealth": 0.6, "accident": 0.3, "health": 0.2},
    "family": {"life": 0.6, "health": 0.5, "property": 0.4},
    "pre_retirement": {"pension": 0.7, "wealth": 0.4, "health": 0.3},
    "retired": {"pension": 0.5, "health": 0.6},
}


def log(msg: str) -> None:
    print(f"[real_data_run] {msg}", file=sys.stderr, flush=True)


def catalogue() -> pd.DataFrame:
    raw = pd.read_csv(UDEMY)
    raw = raw.drop_duplicates("course_id")
    price = pd.to_numeric(raw["price"].replace({"Free": "0", "TRUE": "0"}), errors="coerce").fillna(0.0)
    return pd.DataFrame(
        {
            "item_id": "udemy-" + raw["course_id"].astype(str),
            "kind": "course",
            "title": raw["course_title"].astype(str).str.strip(),
            "description": "",
            "category": raw["subject"].astype(str),
            "price": price.astype(float),
            "level": raw["level"].map(LEVELS),
            "subscribers": pd.to_numeric(raw["num_subscribers"], errors="coerce").fillna(0).astype(int),
        }
    ).reset_index(drop=True)


def learners_and_events(items: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    subjects = sorted(items["category"].unique())
    by_subject = {s: items.index[items["category"] == s].to_numpy() for s in subjects}
    weight = {s: (items.loc[idx, "subscribers"].to_numpy() + 10.0) ** 0.7 for s, idx in by_subject.items()}
    share = np.array([len(by_subject[s]) for s in subjects], dtype=float)
    share /= share.sum()
    now = pd.Timestamp.now(tz="UTC").floor("s")
    users, events = [], []
    for u in range(n):
        uid = f"udemy-learner-{u:06d}"
        stage = STAGES[int(rng.choice(len(STAGES), p=[0.2, 0.3, 0.25, 0.15, 0.1]))]
        users.append({"user_id": uid, "age_band": STAGE_AGE[stage], "region": "east", "life_stage": stage})
        picked = rng.choice(len(subjects), size=int(rng.integers(1, 3)), replace=False, p=share)
        mix = rng.dirichlet(np.full(len(picked), 2.0))
        n_views = int(rng.integers(6, 30))
        t = now - pd.Timedelta(days=int(rng.integers(60, 180)))
        seen: set[int] = set()
        for _ in range(n_views):
            s = subjects[int(picked[rng.choice(len(picked), p=mix)])]
            p = weight[s] / weight[s].sum()
            i = int(by_subject[s][rng.choice(len(p), p=p)])
            if i in seen:
                continue
            seen.add(i)
            t = t + pd.Timedelta(minutes=int(rng.integers(30, 60 * 24 * 3)))
            if t >= now:
                break
            base = {"user_id": uid, "item_id": items.at[i, "item_id"]}
            events.append({**base, "event": "view", "value": None, "timestamp": t})
            price = float(items.at[i, "price"])
            if rng.random() < 0.35:
                events.append(
                    {**base, "event": "purchase", "value": price, "timestamp": t + pd.Timedelta(minutes=5)}
                )
                if rng.random() < 0.5:
                    done = t + pd.Timedelta(days=int(rng.integers(1, 20)))
                    if done < now:
                        events.append({**base, "event": "completion", "value": None, "timestamp": done})
                        if rng.random() < 0.4:
                            stars = int(rng.integers(3, 6))
                            rated = done + pd.Timedelta(hours=1)
                            if rated < now:
                                events.append({**base, "event": "rating", "value": stars, "timestamp": rated})
    frame = pd.DataFrame(events)
    frame.insert(0, "event_id", [f"udemy-ev-{i:08d}" for i in range(len(frame))])
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return pd.DataFrame(users), frame


def upload(api: httpx.Client, table: str, frame: pd.DataFrame, headers: dict[str, str]) -> dict[str, Any]:
    body = frame.to_csv(index=False).encode()
    t0 = time.perf_counter()
    r = api.post(
        f"/api/v1/ingest/{table}",
        content=body,
        headers={**headers, "Content-Type": "text/csv"},
        params={"name": f"{table}.csv"},
    )
    r.raise_for_status()
    job = r.json()
    while job["status"] not in ("done", "failed"):
        time.sleep(0.25)
        job = api.get(f"/api/v1/ingest/jobs/{job['id']}", headers=headers).json()
    if job["status"] != "done":
        raise RuntimeError(f"{table}: {job['errors'][:5]}")
    return {
        "rows": job["rows"],
        "inserted": job["inserted"],
        "seconds": round(time.perf_counter() - t0, 2),
        "timings": job["timings"],
        "bytes": len(body),
    }


def affinities(
    items: pd.DataFrame, events: pd.DataFrame, users: pd.DataFrame, products: list[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """The hidden affinity of every learner to every product (see the module's docstring)."""
    texts = [f"{p['name']}. {p['description']}" for p in products]
    weights = {"view": 1.0, "purchase": 2.0, "completion": 3.0, "rating": 1.0}
    title = dict(zip(items["item_id"], items["title"], strict=True))
    docs: dict[str, list[str]] = {}
    for row in events.itertuples():
        docs.setdefault(str(row.user_id), []).extend([title[row.item_id]] * int(weights[str(row.event)]))
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=1).fit(texts + list(items["title"]))
    prod = vec.transform(texts)
    out: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(7)
    stage_of = dict(zip(users["user_id"], users["life_stage"], strict=True))
    uids = list(docs)
    sims = (vec.transform([" ".join(docs[u]) for u in uids]) @ prod.T).toarray()
    for k, uid in enumerate(uids):
        pref = STAGE_KIND[stage_of[uid]]
        out[uid] = {
            p["id"]: float(4.0 * sims[k, j] + pref.get(p["kind"], 0.0) + rng.normal(0, 0.15))
            for j, p in enumerate(products)
        }
    return out


def play(
    served: faults.Served,
    users: pd.DataFrame,
    hidden: dict[str, dict[str, float]],
    partners: dict[str, list[str]],
) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    counts = {"learners": 0, "recommendations": 0, "conversions": 0, "grants": 0}
    keys = json.loads((served.state / "partner-keys.json").read_text())
    t0 = time.perf_counter()
    with served.client(timeout=60) as api:
        for n, uid in enumerate(users["user_id"]):
            found = api.get("/api/v1/users", params={"platform_user_id": uid}, headers=served.operator).json()
            token = api.post(f"/api/v1/users/{found['id']}/token", headers=served.operator).json()["token"]
            me = {"Authorization": f"Bearer {token}"}
            counts["learners"] += 1
            likes = hidden.get(uid, {})
            for partner, ids in partners.items():
                for purpose in ("profiling", "product_recommendation"):
                    api.put(f"/api/v1/me/consents/{partner}/{purpose}", headers=me).raise_for_status()
                    counts["grants"] += 1
                r = api.post(
                    "/api/v1/recommendations",
                    json={"subject": found["pseudonym"], "k": 10},
                    headers={"X-API-Key": keys[partner]},
                )
                r.raise_for_status()
                rec = r.json()
                counts["recommendations"] += 1
                favourites = sorted(ids, key=lambda p: -likes.get(p, 0.0))[:3]
                shown = [p["product_id"] for p in rec["products"]]
                best = max(shown, key=lambda p: likes.get(p, -9.0), default=None)
                if best in favourites and rng.random() < 0.7:
                    r = api.post(
                        "/api/v1/conversions",
                        json={
                            "recommendation_id": rec["recommendation_id"],
                            "order_id": f"ord-{rec['recommendation_id']}",
                            "value": 100_000,
                            "product_id": best,
                        },
                        headers={"X-API-Key": keys[partner]},
                    )
                    r.raise_for_status()
                    counts["conversions"] += 1
            if n % 250 == 249:
                log(f"  {n + 1} learners played, {counts['conversions']} conversions")
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    if not UDEMY.is_file():
        raise SystemExit(f"--: the Udemy catalogue is not at {UDEMY}")
    out: dict[str, Any] = {"learners": args.learners}
    with tempfile.TemporaryDirectory(prefix="knowledger-real-") as tmp:
        work = Path(tmp)
        log("training the demo world's model the service starts with")
        model = work / "model" / "hybrid"
        train_model(demo_split(seed=0), model, epochs=5, seed=0)
        served = faults.serve(work / "state", model, env={"KNOWLEDGER_MAX_INGEST_BYTES": str(256 * 2**20)})
        try:
            with served.client(timeout=120) as api:
                items = catalogue()
                log(f"ingesting the Udemy catalogue: {len(items):,} courses")
                out["items"] = upload(api, "items", items.drop(columns=["subscribers"]), served.operator)
                users, events = learners_and_events(items, args.learners, args.seed)
                log(f"ingesting {len(users):,} learners and {len(events):,} events")
                out["users"] = upload(api, "users", users, served.operator)
                out["events"] = upload(api, "interactions", events, served.operator)
                out["events"]["events_per_s"] = round(len(events) / max(out["events"]["seconds"], 1e-9), 1)
                products = api.get("/api/v1/products").json()["products"]
            partners: dict[str, list[str]] = {}
            for p in products:
                partners.setdefault(p["partner_id"], []).append(p["id"])
            parsed = pd.read_csv(io.StringIO(events.to_csv(index=False)))
            hidden = affinities(items, parsed, users, products)
            log("learners consent, get recommendations, convert")
            out["play"] = play(served, users, hidden, partners)
            with served.client(timeout=120) as api:
                before = api.get("/api/v1/models", headers=served.operator).json()["served"]
                log("training on the ingested data")
                t0 = time.perf_counter()
                r = api.post("/api/v1/models", json={"epochs": args.epochs}, headers=served.operator)
                r.raise_for_status()
                version = r.json()["version"]
                row = r.json()
                while row["status"] == "training":
                    time.sleep(2)
                    row = api.get(f"/api/v1/models/versions/{version}", headers=served.operator).json()
                out["training"] = {
                    "version": version,
                    "status": row["status"],
                    "error": row["error"],
                    "seconds": round(time.perf_counter() - t0, 1),
                    "trained_on": row["trained_on"],
                    "candidate": row["gate"].get("scores", {}).get("candidate"),
                    "served": row["gate"].get("scores", {}).get("served"),
                    "served_version": before,
                }
                log("promoting through the quality gate")
                r = api.post(f"/api/v1/models/versions/{version}/promote", json={}, headers=served.operator)
                out["promotion"] = {"status": r.status_code, "body": r.json()}
                keys = json.loads((served.state / "partner-keys.json").read_text())
                examples = []
                for uid in list(users["user_id"])[:3]:
                    found = api.get(
                        "/api/v1/users", params={"platform_user_id": uid}, headers=served.operator
                    ).json()
                    r = api.post(
                        "/api/v1/recommendations",
                        json={"subject": found["pseudonym"], "k": 3},
                        headers={"X-API-Key": keys["bank"]},
                    )
                    body = r.json()
                    examples.append(
                        {
                            "learner_subjects": sorted(
                                items.set_index("item_id")
                                .loc[events[events["user_id"] == uid]["item_id"].unique(), "category"]
                                .unique()
                                .tolist()
                            ),
                            "life_stage": str(users.set_index("user_id").at[uid, "life_stage"]),
                            "model_version": body.get("model_version"),
                            "products": [
                                {
                                    "name": p["name"],
                                    "keywords": p["explanation"]["keywords"],
                                    "topics": [t["topic"] for t in p["explanation"]["topics"]][:2],
                                }
                                for p in body.get("products", [])
                            ],
                        }
                    )
                out["recommendations_after"] = examples
        finally:
            served.stop()
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
