"""No input makes the API answer 500: malformed numbers, deep or duplicate-keyed JSON.

Every case in ``tests/support/malformed.py`` goes over HTTP to the real app on both
deployments; each must be refused with a 4xx problem+json and change nothing in the
database (every row of every table is compared before and after).
"""

from __future__ import annotations

import pytest

from tests.conftest import Api, Deployment
from tests.support.database import database_rows
from tests.support.malformed import CASES, MalformedCase, prepare, send


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_malformed_input_is_refused_with_a_problem_and_changes_nothing(
    api: Api, deployment: Deployment, case: MalformedCase
) -> None:
    tokens = {str(role): token for role, token in api.tokens.items()}
    targets = prepare(api.client, tokens)
    before = database_rows(deployment.engine)
    answer = send(api.client, case, targets, tokens)
    assert answer.status_code in case.expect, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == answer.status_code
    assert problem["type"].startswith("https://reliquary.dev/problems/")
    assert problem["detail"]
    assert database_rows(deployment.engine) == before


def test_the_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
