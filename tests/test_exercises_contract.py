"""One source of truth: the stub students fill in and the reference solution have the same
functions, the same signatures and the same full docstrings; every registered function has
checks. (The rule: the stub's docstring is the text; the solution repeats it verbatim.) Every
registered exercise gets these tests, a plugin's too; the course's signatures are pinned to the
contract in exercises/README.md."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
import torch

from rlkit.plugins import get_exercises
from rlkit_grader.api import load_vectors
from rlkit_grader.records import HIDDEN, PUBLIC

EXERCISES = get_exercises()
WITH_SOLUTION = [name for name, ex in EXERCISES.items() if ex.solution is not None]
COURSE = ("log_prob", "reinforce", "ppo", "dpo")
CONTRACT_DOC = Path(__file__).resolve().parents[1] / "exercises" / "README.md"

#: the course contract of exercises/README.md: exact names and signatures.
CONTRACT = {
    "log_prob": "(logits: 'torch.Tensor', actions: 'torch.Tensor') -> 'torch.Tensor'",
    "entropy": "(logits: 'torch.Tensor') -> 'torch.Tensor'",
    "grad_log_prob": "(logits: 'torch.Tensor', actions: 'torch.Tensor') -> 'torch.Tensor'",
    "returns_to_go": "(rewards: 'torch.Tensor', gamma: 'float', dones: 'torch.Tensor | None' "
    "= None) -> 'torch.Tensor'",
    "reinforce_loss": "(log_probs: 'torch.Tensor', returns: 'torch.Tensor', normalize: 'bool' "
    "= True) -> 'torch.Tensor'",
    "ppo_clip_loss": "(log_probs: 'torch.Tensor', old_log_probs: 'torch.Tensor', advantages: "
    "'torch.Tensor', clip_eps: 'float' = 0.2) -> 'torch.Tensor'",
    "gae": "(rewards: 'torch.Tensor', values: 'torch.Tensor', dones: 'torch.Tensor', "
    "last_value: 'float', gamma: 'float' = 0.99, lam: 'float' = 0.95) -> "
    "'tuple[torch.Tensor, torch.Tensor]'",
    "sequence_log_probs": "(logits: 'torch.Tensor', input_ids: 'torch.Tensor', "
    "completion_mask: 'torch.Tensor') -> 'torch.Tensor'",
    "dpo_loss": "(policy_chosen_logps: 'torch.Tensor', policy_rejected_logps: 'torch.Tensor', "
    "ref_chosen_logps: 'torch.Tensor', ref_rejected_logps: 'torch.Tensor', "
    "beta: 'float' = 0.1) -> 'tuple[torch.Tensor, torch.Tensor, torch.Tensor]'",
}


def test_the_course_exercises_are_registered_in_order() -> None:
    assert list(EXERCISES)[:4] == list(COURSE)
    functions = [f for name in COURSE for f in EXERCISES[name].functions]
    assert functions == list(CONTRACT)


def test_the_contract_document_lists_every_course_function() -> None:
    text = CONTRACT_DOC.read_text()
    for function in CONTRACT:
        assert f"`{function}(" in text, f"{function} is missing from exercises/README.md"


@pytest.mark.parametrize("name", WITH_SOLUTION)
def test_stub_and_solution_share_signatures_and_docstrings(name: str) -> None:
    spec = EXERCISES[name]
    stub, solution = importlib.import_module(spec.stub), importlib.import_module(spec.solution)
    public = {
        n
        for n, v in vars(stub).items()
        if inspect.isfunction(v) and v.__module__ == stub.__name__ and not n.startswith("_")
    }
    assert public == set(spec.functions)
    for function in spec.functions:
        s, r = getattr(stub, function), getattr(solution, function)
        if function in CONTRACT:
            assert str(inspect.signature(s)) == CONTRACT[function]
        assert inspect.signature(s) == inspect.signature(r)
        assert s.__doc__ and s.__doc__ == r.__doc__, f"{name}.{function}: docstrings differ"
        doc = inspect.getdoc(s)
        assert len(doc.splitlines()) >= 8, f"{function}: the docstring should teach"
        assert "Pitfall" in doc and "Shapes" in doc and "Math" in doc


@pytest.mark.parametrize("name", list(EXERCISES))
def test_stubs_mark_the_answer_place_and_raise(name: str) -> None:
    spec = EXERCISES[name]
    stub = importlib.import_module(spec.stub)
    tree = ast.parse(Path(stub.__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in spec.functions:
            body = ast.get_source_segment(Path(stub.__file__).read_text(), node)
            assert "# YOUR CODE HERE" in body, node.name
            assert body.rstrip().endswith("raise NotImplementedError()"), node.name
    assert f"rlkit check {name}" in stub.__doc__
    for function in spec.functions:
        fn = getattr(stub, function)
        params = [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]
        args = [torch.zeros(3) if "Tensor" in str(p.annotation) else 0.5 for p in params]
        with pytest.raises(NotImplementedError):
            fn(*args)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_function_has_public_and_hidden_checks_of_each_kind(name: str) -> None:
    spec = EXERCISES[name]
    vectors = load_vectors(spec, hidden=True)  # public and built-in hidden checks
    differentiable = {
        "log_prob",
        "entropy",
        "reinforce_loss",
        "ppo_clip_loss",
        "sequence_log_probs",
        "dpo_loss",
    }
    for function in spec.functions:
        public = [c for c in vectors.checks if c.function == function and c.visibility == PUBLIC]
        hidden = [c for c in vectors.checks if c.function == function and c.visibility == HIDDEN]
        kinds = {c.judge["kind"] for c in public}
        assert {"structure", "values", "no_inplace"} <= kinds, function
        assert hidden, f"{function} has no hidden check"
        if function in differentiable:  # the course's; a plugin's may add its own
            assert "grads" in kinds, function
        dtypes = {o.dtype for c in public for call in c.calls for o in call.expected.outputs}
        assert {"float32", "float64"} <= dtypes, function
        assert all(c.points > 0 and c.description for c in vectors.checks)
