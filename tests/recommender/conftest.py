"""Shared demo worlds for the recommender tests, generated once per session (each takes about a second).

``small_world`` is for structural checks; ``world`` (default user count, fewer courses) is for the
statistical checks, which need enough users for held-out estimates to be stable.
"""

from __future__ import annotations

import pytest

from recommender.data.demo import DemoSplit, DemoWorld, demo_interaction_data, generate_demo_world


@pytest.fixture(scope="session")
def small_world() -> DemoWorld:
    return generate_demo_world(seed=3, n_users=300, n_courses=120, n_products=18)


@pytest.fixture(scope="session")
def world() -> DemoWorld:
    return generate_demo_world(seed=0, n_users=2000, n_courses=300, n_products=48)


@pytest.fixture(scope="session")
def world_split(world: DemoWorld) -> DemoSplit:
    return demo_interaction_data(world, test_fraction=0.3, seed=0)
