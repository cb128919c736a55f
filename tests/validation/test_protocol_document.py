"""The protocol document's problems, each at its path: slashed for the console, dotted for the
API (`document.acceptance_criteria[0].metric`); a missing or unknown key at the key itself."""

import pytest

from tests.factories import protocol_document
from validation.protocol_document import (
    DocumentProblem,
    protocol_errors,
    protocol_hash,
    protocol_problems,
    with_defaults,
)


@pytest.mark.parametrize(
    ("path", "slashed", "dotted"),
    [
        ((), "(document)", "document"),
        (("min_cell_size",), "min_cell_size", "document.min_cell_size"),
        (("acceptance_criteria", 0, "metric"), "acceptance_criteria/0/metric",
         "document.acceptance_criteria[0].metric"),
        (("subgroups", 1, "bins", 2), "subgroups/1/bins/2", "document.subgroups[1].bins[2]"),
    ],
)  # fmt: skip
def test_a_problem_names_its_path_for_the_console_and_the_api(path, slashed, dotted):
    problem = DocumentProblem(path, "wrong")
    assert (problem.slashed(), problem.dotted()) == (slashed, dotted)
    assert problem.dotted(root="") == dotted.removeprefix("document").removeprefix(".")


def test_a_missing_key_and_an_unknown_key_are_named_each_at_its_own_path():
    document = protocol_document(colour="red", shade="dark")
    del document["task"], document["min_cell_size"]
    document["acceptance_criteria"][0]["weight"] = 2
    problems = protocol_problems(document)
    assert [p.dotted() for p in problems] == [
        "document.colour",
        "document.shade",
        "document.task",
        "document.min_cell_size",
        "document.acceptance_criteria[0].weight",
    ]
    assert problems[2].message == "'task' is a required property"
    assert "task: 'task' is a required property" in protocol_errors(document)


def test_a_valid_document_has_no_problem_and_the_consistency_checks_come_after_the_schema():
    assert protocol_problems(protocol_document()) == []
    twice = protocol_document(subgroups=[{"attribute": "sex"}, {"attribute": "sex"}])
    assert protocol_problems(twice) == [
        DocumentProblem(("subgroups", 1, "attribute"), "'sex' is declared twice")
    ]
    both = {**twice, "min_cell_size": 0}  # the schema's problem hides the consistency check
    assert [p.path for p in protocol_problems(both)] == [("min_cell_size",)]


def test_a_nul_character_is_a_problem_at_its_path():
    """PostgreSQL's jsonb refuses U+0000 (a 500 on save, found by probing the API)."""
    document = protocol_document(subgroups=[{"attribute": "sex"}, {"attribute": "a\x00b"}])
    [problem] = protocol_problems(document)
    assert problem.dotted() == "document.subgroups[1].attribute"
    assert "NUL" in problem.message


# --- the comparison block (issue 18: comparing versions) ----------------------------------------

COMPARISON = {
    "endpoints": [
        {"metric": "auc", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "sensitivity", "hypothesis": "superiority", "margin": 0},
    ]
}


def test_a_comparison_block_is_optional_and_valid_when_complete():
    assert protocol_problems(protocol_document(comparison=COMPARISON)) == []
    assert protocol_problems(protocol_document()) == []


@pytest.mark.parametrize(
    ("endpoint", "path", "fragment"),
    [
        ({"metric": "ppv", "hypothesis": "superiority", "margin": 0}, ("metric",), "'ppv'"),
        ({"metric": "auc", "hypothesis": "equivalence", "margin": 0}, ("hypothesis",), "equiv"),
        ({"metric": "auc", "hypothesis": "superiority", "margin": -0.01}, ("margin",), "minimum"),
        ({"metric": "auc", "hypothesis": "superiority", "margin": 1}, ("margin",), "1"),
        ({"metric": "auc", "hypothesis": "superiority", "margin": "0"}, ("margin",), "number"),
        ({"metric": "auc", "hypothesis": "superiority"}, ("margin",), "required"),
        ({"metric": "auc", "hypothesis": "superiority", "margin": 0, "alpha": 1}, ("alpha",), ""),
    ],
)
def test_a_comparison_endpoint_problem_is_named_at_its_path(endpoint, path, fragment):
    document = protocol_document(comparison={"endpoints": [COMPARISON["endpoints"][0], endpoint]})
    [problem] = protocol_problems(document)
    assert problem.path == ("comparison", "endpoints", 1, *path)
    assert fragment in problem.message


def test_a_comparison_needs_an_endpoint_and_names_each_metric_once():
    assert [p.path for p in protocol_problems(protocol_document(comparison={}))] == [
        ("comparison", "endpoints")
    ]
    empty = protocol_problems(protocol_document(comparison={"endpoints": []}))
    assert [p.path for p in empty] == [("comparison", "endpoints")]
    twice = {"endpoints": [*COMPARISON["endpoints"], COMPARISON["endpoints"][0]]}
    assert protocol_problems(protocol_document(comparison=twice)) == [
        DocumentProblem(
            ("comparison", "endpoints", 2, "metric"),
            "'auc' is declared twice: one hypothesis and margin per metric",
        )
    ]


def test_a_protocol_without_a_comparison_hashes_exactly_as_before_it_existed():
    # The hash was computed with main at 2d90cf0, before the comparison block: an issued
    # protocol's SHA-256 must not move because the schema grew an optional key.
    document = {
        "schema_version": "1.0",
        "task": "binary-classification",
        "primary_endpoint": "auc",
        "operating_point": {"source": "vendor-declared"},
        "acceptance_criteria": [
            {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.75}
        ],
        "subgroups": [{"attribute": "sex"}, {"attribute": "age", "bins": [18, 40, 65, 120]}],
        "min_cell_size": 10,
    }
    assert protocol_hash(document) == (
        "3075f7585b6dd3ab609cd85b654f096bc077b5a55aad03c4ed2b7efdb1dfc247"
    )
    assert "comparison" not in with_defaults(document)  # no default written into new ones
    assert protocol_problems(with_defaults(document)) == []
    with_block = {**document, "comparison": COMPARISON}
    assert protocol_hash(with_block) != protocol_hash(document)
