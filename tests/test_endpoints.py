"""The endpoint vocabulary (``citcon_sim.domain.endpoints``) is the faces' own: every
route of every face is named by it, every name it holds is served, and the scenario
schema's ``endpoint`` and ``face`` values are exactly its scriptable names and faces."""

from __future__ import annotations

import pytest

from citcon_sim.domain import vendors
from citcon_sim.domain.endpoints import ENDPOINTS_BY_FACE, JOURNAL_ONLY, SCRIPTABLE, scriptable
from citcon_sim.faces import FACES
from citcon_sim.faces.face import Face
from citcon_sim.scenarios import schema


@pytest.mark.parametrize("face", FACES, ids=[f.name for f in FACES])
def test_each_faces_routes_are_exactly_its_endpoints(face: Face) -> None:
    served = {face.endpoint(route.path.removeprefix("/")) for route in face.routes}
    assert served == set(ENDPOINTS_BY_FACE[face.name])
    assert len(ENDPOINTS_BY_FACE[face.name]) == len(served)  # no name twice


def test_the_table_covers_every_face_and_nothing_else() -> None:
    assert set(ENDPOINTS_BY_FACE) == {face.name for face in FACES} == vendors.FACES


def test_the_scenario_schema_takes_the_scriptable_names() -> None:
    defs = schema()["$defs"]
    assert defs["endpoint"]["enum"] == list(SCRIPTABLE)
    assert defs["face"]["enum"] == list(ENDPOINTS_BY_FACE)
    assert not JOURNAL_ONLY & set(SCRIPTABLE)
    assert JOURNAL_ONLY <= set(ENDPOINTS_BY_FACE["upi"])
    assert scriptable("chop") == ("chop", "inquire", "refund", "cancel", "list")
    assert scriptable("bank") == ()
