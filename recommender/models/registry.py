"""Every model by name, and the plain-data form of a fitted model: a JSON spec plus named numpy arrays.

``describe(model)`` gives ``{"name", "params", "children": {key: spec}}``; ``state_arrays(model)`` the
fitted arrays of the model (under their own names) and of its children (under ``"<path>/<array>"``, the
path naming the child, ``"dlae"`` or ``"blend.dlae"`` for a member of a member); ``restore(spec,
arrays)`` builds the fitted model back.
This is what an artifact stores (:mod:`recommender.serving`), so any model the benchmark measures can be
saved, loaded and served, and nothing is pickled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recommender.models.base import Recommender
from recommender.models.blend import Blend
from recommender.models.content import ContentCosine
from recommender.models.denoising import DenoisingNet
from recommender.models.ease import DLAE, EASE, EDLAE, UserDLAE
from recommender.models.emcdr import EMCDR
from recommender.models.ensemble import Ensemble, RoutedBlend
from recommender.models.fallback import ColdStartFallback
from recommender.models.hybrid import HybridTwoTower
from recommender.models.itemknn import ItemKNN
from recommender.models.logistic import ItemLogistic
from recommender.models.popularity import Popularity
from recommender.models.ridge_map import RidgeMap
from recommender.models.sequence import RatedSeqDLAE

MODEL_CLASSES: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        Popularity,
        ItemKNN,
        ContentCosine,
        Blend,
        EASE,
        EDLAE,
        DLAE,
        UserDLAE,
        RatedSeqDLAE,
        Ensemble,
        RoutedBlend,
        ColdStartFallback,
        RidgeMap,
        EMCDR,
        ItemLogistic,
        DenoisingNet,
        HybridTwoTower,
    )
}

_SEP = "/"


def model_class(name: str) -> type[Recommender]:
    """The model class registered under ``name``."""
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODEL_CLASSES))}") from None


def describe(model: Recommender) -> dict[str, Any]:
    """The JSON spec of ``model``: its registered name, constructor parameters and children's specs."""
    if type(model).name not in MODEL_CLASSES or MODEL_CLASSES[type(model).name] is not type(model):
        raise ValueError(f"{type(model).__name__} is not a registered model and cannot be saved")
    return {
        "name": type(model).name,
        "params": model.get_params(),
        "children": {key: describe(child) for key, child in model.children().items()},
    }


def state_arrays(model: Recommender, path: str = "") -> dict[str, np.ndarray]:
    """Every fitted array of ``model`` and its children, keyed ``"<path>/<array>"``."""
    out = {_key(path, key): value for key, value in model.get_state().items()}
    for key, child in model.children().items():
        if child.n_items is None:
            continue  # a member a blend never fitted (weight 0 on every route)
        out.update(state_arrays(child, f"{path}.{key}" if path else key))
    return out


def build(spec: dict[str, Any]) -> Recommender:
    """An unfitted model from its spec."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError("a model spec is a mapping with 'name', 'params' and 'children'")
    cls = model_class(str(spec["name"]))
    children = {key: build(child) for key, child in (spec.get("children") or {}).items()}
    return cls.from_parts(dict(spec.get("params") or {}), children)


def restore(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Recommender:
    """The fitted model described by ``spec`` with the arrays of :func:`state_arrays`."""
    model = build(spec)
    _load(model, arrays, "")
    return model


def _key(path: str, name: str) -> str:
    return f"{path}{_SEP}{name}" if path else name


def _own(arrays: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
    if not path:
        return {key: value for key, value in arrays.items() if _SEP not in key}
    prefix = f"{path}{_SEP}"
    return {
        key[len(prefix) :]: v
        for key, v in arrays.items()
        if key.startswith(prefix) and _SEP not in key[len(prefix) :]
    }


def _load(model: Recommender, arrays: dict[str, np.ndarray], path: str) -> None:
    own = _own(arrays, path)
    if "n_items" not in own:
        raise ValueError(f"the arrays hold no state for the model at {path or 'the root'!r}")
    model.set_state(own)
    for key, child in model.children().items():
        child_path = f"{path}.{key}" if path else key
        if _own(arrays, child_path):
            _load(child, arrays, child_path)
