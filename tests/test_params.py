"""Request parameters: the length limits on field values."""

from __future__ import annotations

import pytest


def test_long_field_limits_only_raise_the_default() -> None:
    """params.normalise looks up a field's own limit only past MAX_VALUE_LENGTH."""
    from citcon_sim.domain.errors import BadRequest
    from citcon_sim.faces import params

    assert all(limit >= params.MAX_VALUE_LENGTH for limit in params.LONG_FIELDS.values())
    with pytest.raises(BadRequest):
        params.normalise([("reference", "x" * (params.MAX_VALUE_LENGTH + 1))])
    assert params.normalise([("note", "x" * 4096)])["note"] == "x" * 4096
    with pytest.raises(BadRequest):
        params.normalise([("note", "x" * 4097)])
