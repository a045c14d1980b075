"""Keeping a fitted :class:`~recommender.profiles.ProfileBuilder` beside the model it was trained with.

The service turns new course events into a learner's profile (topics, behaviour, segment, propensities)
without retraining; it needs the very builder the served model was trained on (the same topic space, the
same segments, the same propensity models). It is stored in the model's artifact directory as
``profiles.joblib`` (scikit-learn objects persist with joblib). Load only files your own training wrote:
joblib, like pickle, runs code while loading.
"""

from __future__ import annotations

from pathlib import Path

import joblib

from recommender.profiles import ProfileBuilder

FILE = "profiles.joblib"


def save_profile_builder(builder: ProfileBuilder, directory: str | Path) -> Path:
    path = Path(directory) / FILE
    tmp = path.with_suffix(".tmp")
    joblib.dump(builder, tmp)
    tmp.replace(path)
    return path


def load_profile_builder(directory: str | Path) -> ProfileBuilder | None:
    """The builder saved in ``directory``, or None if the artifact has none (an older artifact)."""
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    builder = joblib.load(path)
    if not isinstance(builder, ProfileBuilder):
        raise ValueError(f"{path} holds a {type(builder).__name__}, not a ProfileBuilder")
    return builder
