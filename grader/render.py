"""What each audience may see of a grade, and how text is quoted in each format: decided here,
once.

A check's result holds three kinds of text:

* grader-written prose: a check's name and description, a misconception's name and its
  explanation from the grader's own catalogue, a fixed sentence per failure kind. Shown as
  written.
* the judge's message and an exercise's one-line problem: grader sentences that can embed
  what the submission produced (its exception text, its values, the names of its types; a
  submission can even write its own records). Never trusted as prose: always *quoted* -
  fenced code in Markdown (a fence longer than any backtick run in the text), escaped in
  HTML, control characters made visible on a terminal, a spreadsheet formula prefix
  neutralised in CSV.
* nothing else reaches a student about a hidden check: its name, description, pass/fail,
  points and the misconception (name and explanation from the catalogue); never a message,
  an input, a value or text from the student's code.

``view(check, audience, ...)`` is the one function that says what an audience may see of one
check; the formatters below only format a view. Every renderer of student feedback (the
Markdown file and the HTML page of ``rlkit grade``, Gradescope's ``results.json``, the
notebooks' hidden test cells) goes through it.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STUDENT, INSTRUCTOR = "student", "instructor"
AUDIENCES = (STUDENT, INSTRUCTOR)

#: what feedback says before a misconception's explanation (rlkit_grader.api.grade appends the same)
MISTAKE_LEAD = "Looks like a classic mistake"

#: failure kinds (``CheckResult.kind``, observed by the grader) with a sentence of its own; a
#: hidden check may show it (it holds nothing the submission wrote)
KIND_TEXT = {
    "not_implemented": "{function}() is not implemented yet",
    "missing": "{function}() is missing from your file",
    "timeout": "{function}() took too long",
    "crash": "{function}() ended its process (a crash, os._exit, or out of memory?)",
}

#: what a student's hidden check says when its exercise could not be graded at all
NOT_GRADED = "the file could not be graded (its public checks say why)"
#: the same, for an exercise handed in as a notebook
NOT_GRADED_NOTEBOOK = "the notebook could not be graded (its public checks say why)"
#: a failure kind's sentence for a notebook, where it differs from a file's
KIND_TEXT_NOTEBOOK = {"missing": "{function}() is not defined in your notebook"}

INTRO = (
    "Graded by rlkit on {graded_at}. Every exercise was run with all checks, public and "
    "hidden; hidden checks use inputs you have not seen, so their feedback names the check and "
    "the mistake, not the inputs. Text that came from your code (an exception's message, your "
    "values) is shown in code blocks, as written."
)


# ----------------------------------------------------------------------------- the view


@dataclass(frozen=True)
class CheckView:
    """What one audience may see of one check."""

    name: str
    function: str
    hidden: bool
    passed: bool
    points: int
    max_points: int
    #: the check's description (grader-written; shown for hidden checks)
    description: str = ""
    #: a fixed sentence for the observed failure kind (grader-written; a student's hidden
    #: check only, where no message is shown)
    kind_text: str = ""
    #: text that may embed what the submission produced: shown only quoted ("" for a student's
    #: hidden check, always)
    quoted: str = ""
    #: the classic mistake the answer behaves like, and its explanation from the catalogue
    misconception: str | None = None
    explanation: str = ""


def _get(check: Any, key: str, default: Any = None) -> Any:
    if isinstance(check, Mapping):
        return check.get(key, default)
    return getattr(check, key, default)


def without_explanation(message: str, explanation: str) -> str:
    """The judge's message without the misconception's explanation that ``rlkit_grader.api.grade``
    appends to it (a view carries the misconception apart). Only that exact tail, rebuilt from
    the catalogue, is removed: nothing is parsed out of the text."""
    if explanation:
        tail = f". {MISTAKE_LEAD}: {explanation}"
        if message.endswith(tail):
            return message[: -len(tail)]
    return message


def view(
    check: Any,
    audience: str,
    mistakes: Mapping[str, str],
    descriptions: Mapping[str, str] | None = None,
    problem: str | None = None,
    notebook: bool = False,
) -> CheckView:
    """What ``audience`` may see of ``check`` (a ``CheckResult`` or a record's check dict).

    ``mistakes``: the catalogue (misconception name → explanation); ``descriptions``: check name
    → description; ``problem``: the exercise's one-line problem when it could not be graded;
    ``notebook``: the exercise was handed in as a notebook (the grader's sentences say so)."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    name = str(_get(check, "name", ""))
    function = str(_get(check, "function", "") or "")
    hidden = _get(check, "visibility", "public") == "hidden"
    passed = bool(_get(check, "passed", False))
    shown = CheckView(
        name,
        function,
        hidden,
        passed,
        int(_get(check, "points", 0) or 0),
        int(_get(check, "max_points", 0) or 0),
        description=str((descriptions or {}).get(name, "")) if hidden else "",
    )
    if passed:
        return shown
    misconception = _get(check, "misconception") or None
    explanation = str(mistakes.get(misconception, "")) if misconception else ""
    kind = str(_get(check, "kind", "") or "")
    texts = {**KIND_TEXT, **KIND_TEXT_NOTEBOOK} if notebook else KIND_TEXT
    kind_text = texts[kind].format(function=function) if kind in texts and function else ""
    if audience == STUDENT and hidden:  # never the message: it may hold the hidden inputs
        return _replace(
            shown,
            kind_text=(NOT_GRADED_NOTEBOOK if notebook else NOT_GRADED) if problem else kind_text,
            misconception=misconception,
            explanation=explanation,
        )
    message = problem if problem else str(_get(check, "message", "") or "")
    return _replace(  # the message says how it failed: no kind_text besides
        shown,
        quoted=without_explanation(message, explanation),
        misconception=misconception,
        explanation=explanation,
    )


def _replace(shown: CheckView, **changes: Any) -> CheckView:
    from dataclasses import replace

    return replace(shown, **changes)


# ----------------------------------------------------------------------------- quoting

#: C0/C1 controls (not newline or tab), zero-width and bidirectional-override characters,
#: line/paragraph separators, BOM: shown as escapes wherever student text is quoted
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff]"
)


def printable(text: Any) -> str:
    """``text`` with line endings made ``\\n`` and every other control or invisible character
    written as an escape (``\\x1b``, ``\\u202e``): what it says is what is shown."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub(escape, text)


def one_line(text: Any) -> str:
    """``printable`` on one line (a newline shown as ``\\n``): for a terminal row or a cell."""
    return printable(text).replace("\n", "\\n")


def fence(text: Any, info: str = "text") -> str:
    """A Markdown fenced code block holding ``text`` verbatim: the fence is longer than any
    run of backticks in the text, so nothing inside can close it."""
    body = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{body}\n{ticks}"


def code(text: Any) -> str:
    """An inline Markdown code span holding ``text`` (one line) verbatim."""
    body = one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * (longest + 1)
    if body.startswith("`") or body.endswith("`") or not body.strip():
        body = f" {body} "
    return f"{ticks}{body}{ticks}"


def html(text: Any) -> str:
    """``text`` escaped for HTML (element content and quoted attribute values)."""
    return _html.escape(printable(text), quote=True)


#: what makes a spreadsheet read a cell as a formula (OWASP's list)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would read as a formula gets a leading ``'``;
    numbers pass as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


# ----------------------------------------------------------------------------- Markdown


def _sentence(text: str, capitalize: bool = True) -> str:
    text = text.strip()
    if not text:
        return ""
    if capitalize:
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def _hidden_fails(shown: CheckView) -> str:
    return (
        f"hidden check ({shown.description}) fails" if shown.description else "hidden check fails"
    )


def misconception_markdown(shown: CheckView) -> str:
    if not shown.misconception:
        return ""
    line = f"{MISTAKE_LEAD} ({code(shown.misconception)})"
    return f"{line}: {shown.explanation}" if shown.explanation else line + "."


def check_body_markdown(shown: CheckView) -> str:
    """A failing check's feedback as Markdown (the heading apart): grader prose as written,
    everything else fenced."""
    if shown.passed:
        return ""
    parts = []
    if shown.hidden and not shown.quoted:
        parts.append(_sentence(_hidden_fails(shown)))
    if shown.kind_text:  # starts with a function's name: not capitalized
        parts.append(_sentence(shown.kind_text, capitalize=False))
    blocks = [" ".join(parts)] if parts else []
    if shown.quoted:
        blocks.append(fence(shown.quoted))
    mistake = misconception_markdown(shown)
    if mistake:
        blocks.append(mistake)
    return "\n\n".join(blocks)


def check_markdown(shown: CheckView, level: int = 3) -> str:
    mark = "✓" if shown.passed else "✗"
    tag = " (hidden)" if shown.hidden else ""
    heading = f"{'#' * level} {mark} {code(shown.name)}{tag} {shown.points}/{shown.max_points}"
    body = check_body_markdown(shown)
    return f"{heading}\n\n{body}" if body else heading


def problem_markdown(problem: str) -> str:
    return f"**Could not be graded.** What the grader saw:\n\n{fence(problem)}"


def is_notebook(exercise: Mapping[str, Any]) -> bool:
    """Was this exercise of a record handed in as a notebook (the grader's own file name)?"""
    return str(exercise.get("file") or "").endswith(".ipynb")


def function_summary(exercise: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(function, points "3/9", what happened, why) for each function of a record's exercise,
    from what the grader observed (``rlkit_grader.class_report.function_outcomes``): grader
    prose only."""
    from rlkit_grader.class_report import STATUS_TEXT, function_outcomes

    out = []
    name = exercise.get("name")
    for (ex, function), o in function_outcomes({"exercises": [exercise]}).items():
        if ex == name and function:
            points = f"{o['points']}/{o['max_points']}"
            out.append((function, points, STATUS_TEXT[o["status"]], o["why"]))
    return out


def _summary_markdown(exercise: Mapping[str, Any]) -> str:
    parts = []
    for function, points, status, why in function_summary(exercise):
        parts.append(f"{code(function + '()')} {points} {status}" + (f": {why}" if why else ""))
    return "**What happened:** " + "; ".join(parts) + "." if parts else ""


def feedback_markdown(
    record: Mapping[str, Any],
    descriptions: Mapping[str, str],
    mistakes: Mapping[str, str],
    audience: str = STUDENT,
) -> str:
    """One student's feedback file (``rlkit grade``): every exercise, what happened to each of
    its functions (correct, wrong, did not run, not answered), every failing check."""
    lines = [
        f"# Feedback for {code(record['student'])}: {record['score']}/{record['max_score']}",
        "",
        INTRO.format(graded_at=record.get("graded_at", "")),
        "",
    ]
    note = record.get("note")
    if note:
        lines += ["**Not graded.** What the grader saw:", "", fence(note), ""]
    for ex in record["exercises"]:
        lines += [f"## {code(ex['name'])}: {ex['score']}/{ex['max_score']}", ""]
        problem = ex.get("problem")
        if problem and problem == note:
            lines += ["**Not graded** (see above).", ""]
            continue
        if problem:
            lines += [problem_markdown(problem), ""]
            continue
        failing = [c for c in ex["checks"] if not c["passed"]]
        passing = [c for c in ex["checks"] if c["passed"]]
        if not failing:
            lines += ["All checks pass.", ""]
            continue
        summary = _summary_markdown(ex)
        if summary:
            lines += [summary, ""]
        notebook = is_notebook(ex)
        for c in failing:
            shown = view(c, audience, mistakes, descriptions, notebook=notebook)
            lines += [check_markdown(shown), ""]
        if passing:
            names = ", ".join(code(c["name"]) for c in passing)
            lines += [f"✓ {len(passing)} checks pass: {names}", ""]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- HTML

_FEEDBACK_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem;
       line-height: 1.5; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
code { background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; }
pre { background: #f6f6f6; padding: .6rem .8rem; border-radius: 4px; white-space: pre-wrap;
      overflow-wrap: anywhere; }
.pass { color: #1a7f37; } .fail { color: #b42318; } .muted { color: #666; }
"""


def _sentence_html(text: str, capitalize: bool = True) -> str:
    return html(_sentence(text, capitalize))


def check_body_html(shown: CheckView) -> str:
    """A failing check's feedback as HTML: the same parts as ``check_body_markdown``, every
    text escaped, the submission's text in a ``<pre>`` block."""
    if shown.passed:
        return ""
    prose = []
    if shown.hidden and not shown.quoted:
        prose.append(_sentence_html(_hidden_fails(shown)))
    if shown.kind_text:
        prose.append(_sentence_html(shown.kind_text, capitalize=False))
    blocks = [f"<p>{' '.join(prose)}</p>"] if prose else []
    if shown.quoted:
        blocks.append(f"<pre>{html(shown.quoted)}</pre>")
    if shown.misconception:
        explanation = f": {html(shown.explanation)}" if shown.explanation else "."
        blocks.append(
            f"<p>{html(MISTAKE_LEAD)} (<code>{html(shown.misconception)}</code>){explanation}</p>"
        )
    return "\n".join(blocks)


def feedback_html(
    record: Mapping[str, Any],
    descriptions: Mapping[str, str],
    mistakes: Mapping[str, str],
    audience: str = STUDENT,
) -> str:
    """The student's feedback as a page a browser shows as it is (beside the Markdown file):
    the same content, every text escaped, long lines wrapped."""
    student = html(record["student"])
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Feedback for {student}</title><style>{_FEEDBACK_CSS}</style></head><body>",
        f"<h1>Feedback for <code>{student}</code>: {record['score']}/{record['max_score']}</h1>",
        f"<p class='muted'>{html(INTRO.format(graded_at=record.get('graded_at', '')))}</p>",
    ]
    note = record.get("note")
    if note:
        out.append(f"<p><b>Not graded.</b> What the grader saw:</p><pre>{html(note)}</pre>")
    for ex in record["exercises"]:
        out.append(f"<h2><code>{html(ex['name'])}</code>: {ex['score']}/{ex['max_score']}</h2>")
        problem = ex.get("problem")
        if problem and problem == note:
            out.append("<p><b>Not graded</b> (see above).</p>")
            continue
        if problem:
            out.append(
                f"<p><b>Could not be graded.</b> What the grader saw:</p><pre>{html(problem)}</pre>"
            )
            continue
        failing = [c for c in ex["checks"] if not c["passed"]]
        passing = [c for c in ex["checks"] if c["passed"]]
        if not failing:
            out.append("<p class='pass'>All checks pass.</p>")
            continue
        items = [
            f"<code>{html(function)}()</code> {points} {html(status)}"
            + (f": {html(why)}" if why else "")
            for function, points, status, why in function_summary(ex)
        ]
        if items:
            out.append(f"<p><b>What happened:</b> {'; '.join(items)}.</p>")
        notebook = is_notebook(ex)
        for c in failing:
            shown = view(c, audience, mistakes, descriptions, notebook=notebook)
            tag = " (hidden)" if shown.hidden else ""
            out.append(
                f"<h3><span class='fail'>✗</span> <code>{html(shown.name)}</code>{tag} "
                f"{shown.points}/{shown.max_points}</h3>"
            )
            out.append(check_body_html(shown))
        if passing:
            names = ", ".join(f"<code>{html(c['name'])}</code>" for c in passing)
            out.append(f"<p class='pass'>✓ {len(passing)} checks pass: {names}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- plain text


def check_plain(shown: CheckView) -> str:
    """A check's feedback on one line of plain text (quoted text made printable)."""
    if shown.passed:
        return ""
    parts = []
    if shown.hidden and not shown.quoted:
        parts.append(_hidden_fails(shown))
    if shown.kind_text:
        parts.append(shown.kind_text)
    if shown.quoted:
        parts.append(one_line(shown.quoted))
    if shown.misconception:
        explanation = f": {shown.explanation}" if shown.explanation else ""
        parts.append(f"{MISTAKE_LEAD} ({shown.misconception}){explanation}")
    return ". ".join(p.rstrip(". ") for p in parts)


def hidden_plain(
    title: str, checks: Sequence[Any], mistakes: Mapping[str, str], points: tuple[int, int]
) -> str:
    """A student's view of hidden checks as plain text lines (the notebooks' hidden test
    cells): name, pass/fail, points and the misconception; never a message."""
    lines = [f"{title}: {points[0]}/{points[1]}"]
    for c in checks:
        shown = view(c, STUDENT, mistakes)
        mark = "PASS" if shown.passed else "FAIL"
        line = f"  {mark} {shown.name} {shown.points}/{shown.max_points}"
        if not shown.passed:
            if shown.misconception and shown.explanation:
                line += f"  {MISTAKE_LEAD}: {shown.explanation}"
            elif shown.kind_text:
                line += f"  {shown.kind_text}"
            else:
                line += "  wrong on the hidden inputs (the public checks above usually show why)"
        lines.append(line)
    return "\n".join(lines)
