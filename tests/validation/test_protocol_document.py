"""The protocol document's problems, each at its path: slashed for the console, dotted for the
API (`document.acceptance_criteria[0].metric`); a missing or unknown key at the key itself."""

import pytest

from tests.factories import protocol_document
from validation.protocol_document import DocumentProblem, protocol_errors, protocol_problems


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


GOALS = [
    {"metric": "auc", "goal": 0.8, "anticipated": 0.88, "power": 0.9},
    {"metric": "sensitivity", "goal": 0.7},
]


def test_performance_goals_are_optional_and_checked_at_their_paths():
    assert protocol_problems(protocol_document()) == []  # every stored protocol lacks them
    assert protocol_problems(protocol_document(performance_goals=GOALS)) == []
    bad = protocol_document(
        performance_goals=[
            {"metric": "f1", "goal": 0.8},
            {"metric": "auc", "goal": 1.5, "power": 1},
            {"metric": "auc", "anticipated": 0.9, "margin": 0.1},
        ]
    )
    assert sorted(p.dotted() for p in protocol_problems(bad)) == [
        "document.performance_goals[0].metric",
        "document.performance_goals[1].goal",
        "document.performance_goals[1].power",
        "document.performance_goals[2].goal",
        "document.performance_goals[2].margin",
    ]


def test_a_metric_has_one_performance_goal():
    twice = protocol_document(performance_goals=[*GOALS, {"metric": "auc", "goal": 0.7}])
    assert protocol_problems(twice) == [
        DocumentProblem(("performance_goals", 2, "metric"), "'auc' has a goal already")
    ]
