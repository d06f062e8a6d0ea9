"""The stub and the reference solution of an exercise, cut into what a notebook needs: the
module docstring, the set-up code (imports, constants, helpers the stub gives students) and, per
function, the student's part (signature + docstring, from the stub) and the reference body."""

from __future__ import annotations

import ast
import copy
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from rlkit.errors import RlkitError


@dataclass
class FunctionSource:
    name: str
    header: str  # decorators, signature and docstring, as in the stub
    stub_body: str  # what the stub has after the docstring (``# YOUR CODE HERE`` / ``raise``)
    solution_body: str  # the reference's statements after the docstring, same indentation
    helpers: list[str] = field(default_factory=list)  # solution-only helpers it uses
    docstring: str = ""
    indent: str = "    "
    signature: str = "(...)"  # ``(logits, actions)``: the parameters without annotations


@dataclass
class ExerciseSource:
    name: str
    docstring: str
    setup: str  # the stub's top-level code other than the exercise functions
    functions: list[FunctionSource]


def module_file(module: str) -> Path:
    """The .py file of an importable module, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise RlkitError(f"cannot find module {module}: {exc}") from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise RlkitError(f"cannot find the source file of module {module}")
    return Path(spec.origin)


def _parse(path: Path) -> tuple[list[str], ast.Module]:
    text = path.read_text(encoding="utf-8")
    try:
        return text.splitlines(), ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise RlkitError(f"{path} does not parse: {exc}") from None


def _start(node: ast.stmt) -> int:
    """First line (1-based) of a statement, decorators included."""
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _segment(lines: list[str], node: ast.stmt) -> str:
    assert node.end_lineno is not None
    return "\n".join(lines[_start(node) - 1 : node.end_lineno])


def _split_function(lines: list[str], node: ast.FunctionDef) -> tuple[str, str, str]:
    """(header up to the end of the docstring, body after it, body indentation)."""
    body = node.body
    doc = body[0] if body and isinstance(body[0], ast.Expr) and _is_str(body[0]) else None
    assert node.end_lineno is not None
    if doc is not None:
        assert doc.end_lineno is not None
        split = doc.end_lineno
        rest = body[1:]
    else:  # no docstring: the header ends with the line holding the colon of ``def``
        split = body[0].lineno - 1
        rest = body
    first = rest[0] if rest else body[-1]
    indent_line = lines[first.lineno - 1]
    indent = indent_line[: len(indent_line) - len(indent_line.lstrip())]
    header = "\n".join(lines[_start(node) - 1 : split])
    tail = "\n".join(lines[split : node.end_lineno]).strip("\n")
    return header, tail, indent


def _is_str(expr: ast.Expr) -> bool:
    return isinstance(expr.value, ast.Constant) and isinstance(expr.value.value, str)


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The parameter list without annotations, e.g. ``(rewards, gamma, dones=None)``."""
    args = copy.deepcopy(node.args)
    for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if a is not None:
            a.annotation = None
    return f"({ast.unparse(args)})"


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def load_exercise_source(exercise: object) -> ExerciseSource:
    """Read a registered exercise's stub and solution (``Exercise`` from the registry)."""
    name = exercise.name  # type: ignore[attr-defined]
    functions = list(exercise.functions)  # type: ignore[attr-defined]
    if not exercise.solution:  # type: ignore[attr-defined]
        raise RlkitError(f"exercise {name} registers no reference solution; a notebook needs one")
    stub_path = module_file(exercise.stub)  # type: ignore[attr-defined]
    sol_path = module_file(exercise.solution)  # type: ignore[attr-defined]
    stub_lines, stub_tree = _parse(stub_path)
    sol_lines, sol_tree = _parse(sol_path)

    stub_defs = {
        n.name: n for n in stub_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    sol_defs = {
        n.name: n for n in sol_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    for fn in functions:
        for where, defs, path in (("stub", stub_defs, stub_path), ("solution", sol_defs, sol_path)):
            if fn not in defs:
                raise RlkitError(f"{path} ({where} of {name}) defines no function {fn}()")

    # The stub's own top-level code (imports, constants, helpers it gives students).
    setup_parts: list[str] = []
    stub_names: set[str] = set()
    for i, node in enumerate(stub_tree.body):
        if i == 0 and isinstance(node, ast.Expr) and _is_str(node):
            continue  # the module docstring becomes markdown
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in functions:
            continue
        setup_parts.append(_segment(stub_lines, node))
        stub_names |= _defined(node) | {
            (a.asname or a.name).split(".")[0]
            for a in getattr(node, "names", [])
            if isinstance(node, (ast.Import, ast.ImportFrom))
        }
    # Imports the solution needs beyond the stub's go to the set-up too (harmless for students).
    for node in sol_tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            segment = _segment(sol_lines, node)
            if segment not in setup_parts:
                setup_parts.append(segment)
    # Solution-only top-level code (helpers, constants): moved into the bodies that use them,
    # inside the solution region, so the released notebook carries none of it.
    extras = [
        node
        for node in sol_tree.body
        if _defined(node)
        and not (isinstance(node, ast.FunctionDef) and node.name in functions)
        and not _defined(node) <= stub_names
    ]

    out = []
    for fn in functions:
        header, stub_body, indent = _split_function(stub_lines, stub_defs[fn])
        _, solution_body, sol_indent = _split_function(sol_lines, sol_defs[fn])
        if sol_indent != indent:
            solution_body = "\n".join(
                indent + line[len(sol_indent) :] if line.startswith(sol_indent) else line
                for line in solution_body.splitlines()
            )
        used = _names(sol_defs[fn])
        helpers = []
        for extra in extras:
            if _defined(extra) & used:
                helpers.append(_segment(sol_lines, extra))
                used |= _names(extra)
        out.append(
            FunctionSource(
                fn,
                header,
                stub_body,
                solution_body,
                helpers,
                ast.get_docstring(stub_defs[fn]) or "",
                indent,
                _signature(stub_defs[fn]),
            )
        )
    return ExerciseSource(
        name, ast.get_docstring(stub_tree) or "", "\n\n".join(setup_parts).strip(), out
    )
