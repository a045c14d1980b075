"""A model's life: trained (from the demo world or the platform's ingested data), registered with its
held-out metrics, promoted through a quality gate, followed by every process, rolled back.

- **Start-up** (:func:`backend.bootstrap.adopt_model`): the registry's served version is loaded; a registry
  still empty adopts the newest artifact in ``KNOWLEDGER_MODEL_PATH`` (what ``knowledger train`` wrote) as
  its first served version.
- **Promotion** (:meth:`ModelLifecycle.promote`): the quality gate compares the candidate with the served
  version on the same held-out split (the candidate's: training scored both, through their serving path);
  the candidate must not be worse than the served one by more than ``tolerance`` on ``metric``. A version
  that passes is loaded first (a model that cannot load is never recorded as served), then recorded as
  served, then swapped into this process's slot between two requests. Every request holds one model from
  start to answer, and a learner's profile is derived again for the model serving the request when it
  was built for another, so nothing fails during the swap. The profiles of all learners with events are
  then rebuilt for the new version in the background.
- **Following** (:class:`ModelFollower`, in every process): the served version is read every
  ``interval`` seconds; a change (a promotion or rollback made by another process, the CLI or another
  host) is loaded and swapped in.
- **Rollback** (:meth:`ModelLifecycle.rollback`): the version served before the current one serves again
  (no gate: it served before).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from backend.errors import Conflict, GateRefused, NotFound, ServiceNotReady
from backend.models import ModelStatus, ModelVersion
from backend.services.model import ModelSlot, ServedModel
from backend.services.profiles import ProfileRefresher
from backend.services.registry import ModelRegistry, RegistryError
from backend.services.worker import PeriodicWorker

log = logging.getLogger("knowledger.models")
PROMOTABLE = (ModelStatus.CANDIDATE, ModelStatus.RETIRED, ModelStatus.REJECTED)


def gate_verdict(
    candidate: ModelVersion,
    served: ModelVersion | None,
    metric: str,
    tolerance: float,
) -> dict[str, Any]:
    """Whether ``candidate`` may replace ``served``: both scored on the same held-out split, the candidate's
    ``metric`` at least the served one's minus ``tolerance``. The verdict says what was compared."""
    if served is None:
        return {"passed": True, "reason": "no model serves yet", "metric": metric}
    scored = candidate.gate.get("scores") or {}
    if candidate.gate.get("served_version") == served.version and scored:
        cand, base = scored.get("candidate", {}).get(metric), scored.get("served", {}).get(metric)
        split = candidate.gate.get("split")
    elif candidate.trained_on.get("split") and candidate.trained_on.get("split") == served.trained_on.get(
        "split"
    ):
        cand, base = candidate.metrics.get(metric), served.metrics.get(metric)
        split = candidate.trained_on.get("split")
    else:
        return {
            "passed": False,
            "metric": metric,
            "served_version": served.version,
            "reason": f"{candidate.version} was not scored against {served.version} on the same held-out "
            "split: train it from the service (`knowledger train --data ingested`), which scores both, "
            "or force the promotion",
        }
    if cand is None or base is None:
        return {
            "passed": False,
            "metric": metric,
            "served_version": served.version,
            "reason": f"no {metric} recorded for both versions",
        }
    passed = float(cand) >= float(base) - tolerance
    return {
        "passed": passed,
        "metric": metric,
        "candidate": round(float(cand), 6),
        "served": round(float(base), 6),
        "served_version": served.version,
        "tolerance": tolerance,
        "split": split,
        "reason": f"{metric} {float(cand):.4f} against {float(base):.4f} (tolerance {tolerance})",
    }


class ModelLifecycle:
    def __init__(
        self,
        registry: ModelRegistry,
        slot: ModelSlot,
        refresher: ProfileRefresher,
        *,
        metric: str = "ndcg@10",
        tolerance: float = 0.005,
    ) -> None:
        self._registry = registry
        self._slot = slot
        self._refresher = refresher
        self.metric = metric
        self.tolerance = tolerance
        self._mutex = threading.Lock()
        self._reprofiling: threading.Thread | None = None

    @property
    def registry(self) -> ModelRegistry:
        return self._registry

    # ------------------------------------------------------------------ promotion
    def promote(self, version: str, *, actor: str, force: bool = False) -> dict[str, Any]:
        """Serve ``version`` if the quality gate passes (or ``force``); returns the gate's verdict and the
        versions. Raises ``GateRefused`` (409) with the verdict otherwise."""
        with self._mutex:
            row = self._registry.get(version)
            if row is None:
                raise NotFound(f"unknown model version {version!r}")
            if row.status not in PROMOTABLE:
                raise Conflict(
                    f"version {version} is {row.status}: only a candidate, retired or refused version can "
                    "be promoted",
                    status=row.status,
                )
            served_version = self._registry.served_version()
            served = None if served_version is None else self._registry.get(served_version)
            verdict = gate_verdict(row, served, self.metric, self.tolerance)
            if not verdict["passed"] and not force:
                self._registry.record_refusal(version, actor, verdict)
                raise GateRefused(f"the quality gate refused {version}: {verdict['reason']}", gate=verdict)
            model = self._load(version)
            previous = self._registry.record_serving(
                version, action="promoted", actor=actor, detail={"gate": verdict, "forced": force}
            )
            self._swap(model)
        return {"version": version, "previous": previous, "gate": verdict, "forced": force}

    def rollback(self, *, actor: str) -> dict[str, Any]:
        """Serve again the version served before the current one."""
        with self._mutex:
            current = self._registry.served_version()
            target = self._registry.previous_served()
            if current is None or target is None:
                raise Conflict("there is no earlier served version to roll back to")
            model = self._load(target)
            self._registry.record_serving(target, action="rolled_back", actor=actor, detail={"from": current})
            self._swap(model)
        return {"version": target, "previous": current}

    def _load(self, version: str) -> ServedModel:
        try:
            return self._registry.load(version)
        except RegistryError as exc:
            raise ServiceNotReady(f"model {version} cannot be loaded: {exc}") from None

    # ------------------------------------------------------------------ following
    def follow(self) -> bool:
        """Swap in the registry's served version if this process serves another; True if it swapped."""
        version = self._registry.served_version()
        if version is None or version == self._slot.version:
            return False
        with self._mutex:
            if version == self._slot.version:
                return False
            self._swap(self._registry.load(version), rebuild=False)
        log.info("now serving model %s (promoted elsewhere)", version)
        return True

    def _swap(self, model: ServedModel, rebuild: bool = True) -> None:
        self._slot.swap(model)
        if rebuild:
            self.rebuild_profiles_async(model)

    def rebuild_profiles_async(self, model: ServedModel) -> threading.Thread:
        """Rebuild, in the background, the profiles of every learner with events for ``model`` (requests
        meanwhile derive the few they need themselves)."""

        def run() -> None:
            try:
                n = self._refresher.refresh(self._refresher.users_with_events(), served=model)
                log.info("rebuilt %d profiles for model %s", n, model.version)
            except Exception:
                log.exception("rebuilding profiles for model %s failed", model.version)

        thread = threading.Thread(target=run, name="knowledger-profiles", daemon=True)
        thread.start()
        self._reprofiling = thread
        return thread

    def wait_rebuilt(self, timeout: float | None = None) -> None:
        """Wait for the background rebuild of profiles, if one runs (tests, the CLI)."""
        thread = self._reprofiling
        if thread is not None:
            thread.join(timeout)


class ModelFollower(PeriodicWorker):
    """Runs in every process: swaps in the version the registry says serves."""

    name = "model-follower"

    def __init__(self, lifecycle: ModelLifecycle) -> None:
        super().__init__()
        self._lifecycle = lifecycle

    def run_once(self) -> bool:
        return self._lifecycle.follow()
