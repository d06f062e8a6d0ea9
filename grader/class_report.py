"""The class report: what the instructor should re-teach.

``report.json`` has the numbers: each exercise's score distribution; what happened to each
function of each student (``function_outcomes``: correct, wrong, did not run - a syntax error,
a crash, a timeout - or not answered), counted per function; each check's pass rate among the
students whose function ran (a stub, a loop or a syntax error elsewhere says nothing about how
hard a check is); every named misconception with how many students made it and one
counterexample (from a public check when one caught it), and the problems that stopped an
exercise from being graded.
``index.html`` shows the same with plots (matplotlib PNGs embedded, so the file stands alone).
Every text in it is escaped (messages and problems can embed what a submission produced, and
students name their own folders); ``sandbox_failed`` lists the students whose grading failed for
a reason outside their code (the grader's own flag, never a message), graded again next run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlkit_grader import render as audience
from rlkit_grader.batch import Course, write_whole


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 2)


# ----------------------------------------------------------------------------- outcomes

#: changes when the report's content changes: a re-run then writes it again
REPORT_FORMAT = "2"
#: what happened to one student's function, in the order the report shows them
STATUSES = ("correct", "wrong", "did_not_run", "not_answered")
STATUS_TEXT = {
    "correct": "correct",
    "wrong": "wrong",
    "did_not_run": "did not run",
    "not_answered": "not answered",
}
#: why an exercise could not be graded (``problem_kind`` of a record) → (status, why)
_PROBLEM = {
    "missing": ("not_answered", "no file handed in"),
    "refused": ("did_not_run", "refused (a symbolic link)"),
    "unreadable": ("did_not_run", "the file could not be read"),
    "syntax": ("did_not_run", "syntax error"),
    "import": ("did_not_run", "the file raised or never finished when run"),
    "grader": ("did_not_run", "the grader failed (graded again next run)"),
}
#: a failing check's kind → why its function did not run, most telling first
_DID_NOT_RUN = {
    "timeout": "timed out (an infinite loop?)",
    "crash": "crashed (exit, signal or out of memory)",
    "exception": "raised an error",
    "no_result": "gave no result",
    "problem": "could not be graded",
}


def function_outcomes(record: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(exercise, function) → ``{"status", "why", "points", "max_points"}`` for one student's
    record, from what the grader observed (each check's ``kind``, the exercise's
    ``problem_kind``), never from a message's text:

    * ``not_answered``: no file, or every failing check found the function missing or still a
      stub (``NotImplementedError``);
    * ``did_not_run``: the file could not run (syntax error, an error or a loop at import, a
      refused or unreadable file) or the function never gave a result to judge (timeout,
      crash, an exception);
    * ``wrong``: it ran and at least one check found its result wrong;
    * ``correct``: every check passed."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ex in record.get("exercises", []):
        by_function: dict[str, list[Mapping[str, Any]]] = {}
        for c in ex.get("checks", []):
            by_function.setdefault(str(c.get("function") or ""), []).append(c)
        problem = ex.get("problem")
        for function, checks in by_function.items():
            entry = {
                "points": sum(int(c.get("points", 0)) for c in checks),
                "max_points": sum(int(c.get("max_points", 0)) for c in checks),
            }
            failing = [c for c in checks if not c.get("passed")]
            kinds = {str(c.get("kind") or "") for c in failing}
            if problem:
                status, why = _PROBLEM.get(
                    str(ex.get("problem_kind") or ""), ("did_not_run", "could not be graded")
                )
            elif not failing:
                status, why = "correct", ""
            elif kinds <= {"not_implemented", "missing"}:
                status = "not_answered"
                why = "still the stub" if "not_implemented" in kinds else "function not defined"
            elif kinds & {"wrong", ""}:
                status = "wrong"
                wrong = sum(1 for c in failing if str(c.get("kind") or "") in ("wrong", ""))
                why = f"{wrong} of {len(checks)} checks found its results wrong"
            else:
                status = "did_not_run"
                why = next(text for kind, text in _DID_NOT_RUN.items() if kind in kinds)
            out[ex["name"], function] = {**entry, "status": status, "why": why}
    return out


def summarize(records: Sequence[Mapping[str, Any]], course: Course) -> dict[str, Any]:
    """The report's numbers (JSON-able)."""
    totals = [r["score"] for r in records]
    sandbox_failed = sorted(
        str(r["student"])
        for r in records
        if any(ex.get("sandbox_failed") is True for ex in r["exercises"])
    )
    exercises: dict[str, Any] = {}
    checks: dict[str, dict[str, Any]] = {}
    misconceptions: dict[str, dict[str, Any]] = {}
    problems: dict[str, dict[str, Any]] = {}
    functions: dict[str, dict[str, Any]] = {}
    by_student: list[dict[str, Any]] = []
    for r in records:
        outcomes = function_outcomes(r)
        by_student.append(
            {
                "student": r["student"],
                "score": r["score"],
                "max_score": r["max_score"],
                "functions": {f"{e}.{f}": o for (e, f), o in outcomes.items()},
            }
        )
        for (exercise, function), o in outcomes.items():
            count = functions.setdefault(
                f"{exercise}.{function}",
                {
                    "exercise": exercise,
                    "function": function,
                    "max_points": o["max_points"],
                    **dict.fromkeys(STATUSES, 0),
                    "students": {status: [] for status in STATUSES},
                },
            )
            count[o["status"]] += 1
            count["students"][o["status"]].append(r["student"])
        for ex in r["exercises"]:
            entry = exercises.setdefault(
                ex["name"], {"max_score": ex["max_score"], "scores": [], "full_marks": 0}
            )
            entry["scores"].append(ex["score"])
            entry["full_marks"] += ex["score"] == ex["max_score"]
            if ex.get("problem"):
                kind = problems.setdefault(ex["name"], {"students": 0, "examples": []})
                kind["students"] += 1
                if len(kind["examples"]) < 5:
                    kind["examples"].append(
                        {
                            "student": r["student"],
                            "problem": ex["problem"],
                            "kind": ex.get("problem_kind"),
                        }
                    )
            seen: set[str] = set()
            for c in ex["checks"]:
                stat = checks.setdefault(
                    c["name"],
                    {
                        "exercise": ex["name"],
                        "function": c.get("function", ""),
                        "visibility": c.get("visibility", "public"),
                        "points": c["max_points"],
                        "passed": 0,
                        "students": 0,
                        "ran": 0,
                        "did_not_run": 0,
                        "not_answered": 0,
                    },
                )
                stat["students"] += 1
                stat["passed"] += bool(c["passed"])
                status = outcomes.get((ex["name"], c.get("function", "")), {}).get("status")
                if status in ("correct", "wrong"):
                    stat["ran"] += 1
                elif status in ("did_not_run", "not_answered"):
                    stat[status] += 1
                name = c.get("misconception")
                if not name or c["passed"]:
                    continue
                m = misconceptions.setdefault(
                    name,
                    {
                        "name": name,
                        "exercise": ex["name"],
                        "function": c.get("function", ""),
                        "explanation": course.mistakes.get(name, ""),
                        "students": 0,
                        "names": [],
                        "checks": [],
                        "counterexample": None,
                    },
                )
                if c["name"] not in m["checks"]:
                    m["checks"].append(c["name"])
                public = c.get("visibility") != "hidden"
                example = m["counterexample"]
                if example is None or (public and example["visibility"] == "hidden"):
                    shown = audience.view(c, audience.INSTRUCTOR, course.mistakes)
                    m["counterexample"] = {
                        "student": r["student"],
                        "check": c["name"],
                        "visibility": c.get("visibility", "public"),
                        "message": shown.quoted,
                    }
                if name not in seen:
                    seen.add(name)
                    m["students"] += 1
                    m["names"].append(r["student"])
    for entry in exercises.values():
        scores = entry["scores"]
        entry.update(
            mean=round(statistics.fmean(scores), 2),
            median=_number(statistics.median(scores)),
            min=min(scores),
            max=max(scores),
        )
    for stat in checks.values():
        stat["pass_rate"] = round(stat["passed"] / stat["students"], 3)
        # how hard the check is: among the students whose function ran (None: nobody's did)
        stat["pass_rate_ran"] = round(stat["passed"] / stat["ran"], 3) if stat["ran"] else None
    return {
        "students": len(records),
        "max_score": records[0]["max_score"] if records else 0,
        "mean": round(statistics.fmean(totals), 2) if totals else 0,
        "median": _number(statistics.median(totals)) if totals else 0,
        "totals": totals,
        "exercises": exercises,
        "misconceptions": sorted(
            misconceptions.values(), key=lambda m: (-m["students"], m["exercise"], m["name"])
        ),
        "functions": functions,
        "by_student": by_student,
        "checks": dict(sorted(checks.items(), key=_hardest)),
        "problems": problems,
        "sandbox_failed": sandbox_failed,
        "protection": _protections(records),
    }


def _hardest(item: tuple[str, Mapping[str, Any]]) -> tuple[int, float, str]:
    """Checks ordered by their pass rate among the students whose function ran; checks that
    nobody's function ran last."""
    name, stat = item
    rate = stat["pass_rate_ran"]
    return (rate is None, rate if rate is not None else 0.0, name)


def _protections(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """What protected the grading (each different text once), from the records of students
    whose code ran; "nothing ran" only when nobody's did."""
    from rlkit_grader.batch import NOTHING_RAN

    texts = {str(r.get("protection", "")) for r in records}
    ran = sorted(t for t in texts if t and t != NOTHING_RAN)
    return ran or sorted(texts)


# ----------------------------------------------------------------------------- plots


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode()


def _score_plots(summary: Mapping[str, Any]) -> str:
    """One histogram per exercise (and the total), the share of full marks in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("total", summary["max_score"], summary["totals"])]
    panels += [(n, e["max_score"], e["scores"]) for n, e in summary["exercises"].items()]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, top, scores) in zip(axes.flat, panels):
        width = 1 if top <= 30 else -(-top // 20)  # one bar per score, or 20 bars at most
        lefts = list(range(0, max(top, 1) + 1, width))
        counts = [sum(left <= s < left + width for s in scores) for left in lefts]
        edge = "edge" if width > 1 else "center"
        ax.bar(lefts, counts, width=width * 0.9, align=edge, color="#4c72b0")
        full = sum(s == top for s in scores)
        ax.set_title(f"{name}: mean {statistics.fmean(scores):.1f}/{top}, {full} full marks")
        ax.set_xlabel("score")
        ax.set_ylabel("students")
        ax.set_xlim(-0.5 if width == 1 else 0, lefts[-1] + (0.5 if width == 1 else width))
        ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _misconception_plot(summary: Mapping[str, Any]) -> str | None:
    items = summary["misconceptions"][:15]
    if not items:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(items) + 1.0))
    labels = [f"{m['exercise']}: {m['name']}" for m in items][::-1]
    counts = [m["students"] for m in items][::-1]
    ax.barh(labels, counts, color="#dd8452")
    ax.set_xlabel("students")
    ax.set_title("Named misconceptions: how many students made each")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(0, max(counts) * 1.1 + 0.5)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


# ----------------------------------------------------------------------------- html

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222;
       padding: 0 1rem; line-height: 1.45; }
h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e3e3;
         vertical-align: top; }
th { background: #f5f5f7; } .n { text-align: right; white-space: nowrap; }
code { background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; font-size: .88em;
       word-break: break-word; }
img { max-width: 100%; } .muted { color: #777; }
.bar { display: inline-block; height: .7rem; background: #4c72b0; vertical-align: middle; }
"""


def _e(text: Any) -> str:
    return audience.html(text)


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def render(summary: Mapping[str, Any]) -> str:
    from rlkit_grader.batch import protection_label

    scores_png = _score_plots(summary) if summary["students"] else ""
    mis_png = _misconception_plot(summary)
    graded_in = "; ".join(sorted({protection_label(p) for p in summary["protection"]}))
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rlkit class report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Class report</h1>",
        f"<p class='sub'>{summary['students']} students, mean {summary['mean']}/"
        f"{summary['max_score']}, median {summary['median']}. Graded in: "
        f"{_e(graded_in)} (what it protects: at the end).</p>",
    ]
    out += _functions_table(summary)
    out.append("<h2>What to re-teach: named misconceptions</h2>")
    if summary["misconceptions"]:
        if mis_png:
            out.append(f"<img alt='misconceptions' src='data:image/png;base64,{mis_png}'>")
        out.append(
            "<table><tr><th class='n'>students</th><th>misconception</th><th>what it means</th>"
            "<th>one counterexample</th></tr>"
        )
        for m in summary["misconceptions"]:
            ce = m["counterexample"] or {}
            out.append(
                f"<tr><td class='n'>{m['students']}</td><td><b>{_e(m['name'])}</b><br>"
                f"<span class='muted'>{_e(m['exercise'])} · {_e(m['function'])}()</span></td>"
                f"<td>{_e(m['explanation'])}</td><td><code>{_e(ce.get('message', ''))}</code>"
                f"<br><span class='muted'>{_e(ce.get('check', ''))} ({_e(ce.get('visibility'))}), "
                f"{_e(ce.get('student', ''))}</span></td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p class='muted'>No answer behaved like a catalogued mistake.</p>")
    out.append("<h2>Scores per exercise</h2>")
    if scores_png:
        out.append(f"<img alt='score distributions' src='data:image/png;base64,{scores_png}'>")
    out.append(
        "<table><tr><th>exercise</th><th class='n'>mean</th><th class='n'>median</th>"
        "<th class='n'>full marks</th><th class='n'>could not be graded</th></tr>"
    )
    for name, e in summary["exercises"].items():
        broken = summary["problems"].get(name, {}).get("students", 0)
        out.append(
            f"<tr><td>{_e(name)}</td><td class='n'>{e['mean']}/{e['max_score']}</td>"
            f"<td class='n'>{e['median']}</td><td class='n'>{e['full_marks']}</td>"
            f"<td class='n'>{broken}</td></tr>"
        )
    out.append("</table><h2>Checks, hardest first</h2>")
    out.append(
        "<p class='muted'>A check's pass rate counts the students whose function ran (correct "
        "or wrong): a function not answered, or that did not run (a syntax error, a crash, a "
        "timeout), says nothing about how hard a check is; those are counted apart.</p>"
    )
    out.append(
        "<table><tr><th>check</th><th>exercise</th><th>visibility</th><th class='n'>points</th>"
        "<th class='n'>passed, of those whose function ran</th><th class='n'>did not run</th>"
        "<th class='n'>not answered</th></tr>"
    )
    for name, c in list(summary["checks"].items())[:25]:
        rate = c.get("pass_rate_ran")
        width = int(120 * rate) if rate is not None else 0
        passed = f"{c['passed']}/{c['ran']}" if c.get("ran") else "nobody's ran"
        out.append(
            f"<tr><td><code>{_e(name)}</code></td><td>{_e(c['exercise'])}</td>"
            f"<td>{_e(c['visibility'])}</td><td class='n'>{c['points']}</td>"
            f"<td class='n'><span class='bar' style='width:{width}px'></span> {passed}</td>"
            f"<td class='n'>{c.get('did_not_run', 0)}</td>"
            f"<td class='n'>{c.get('not_answered', 0)}</td></tr>"
        )
    out.append("</table>")
    out += _students_table(summary)
    if summary["problems"]:
        out.append("<h2>Submissions that could not be graded</h2><table>")
        out.append("<tr><th>exercise</th><th>students</th><th>examples</th></tr>")
        for name, p in summary["problems"].items():
            examples = "<br>".join(
                f"{_e(x['student'])}: <code>{_e(x['problem'])}</code>" for x in p["examples"]
            )
            out.append(
                f"<tr><td>{_e(name)}</td><td class='n'>{p['students']}</td><td>{examples}</td></tr>"
            )
        out.append("</table>")
    failed = summary.get("sandbox_failed") or []
    if failed:
        out.append(
            f"<h2>The sandbox failed (graded again on the next run)</h2><p>{len(failed)} "
            f"students: {_e(', '.join(failed))}</p>"
        )
    out.append(f"<p class='muted'>Protection in force: {_e(' | '.join(summary['protection']))}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _functions_table(summary: Mapping[str, Any]) -> list[str]:
    """Per function: how many students got it right, wrong, could not run it, did not answer
    it (and who)."""
    functions = summary.get("functions") or {}
    if not functions:
        return []
    out = [
        "<h2>What happened, per function</h2>",
        "<p class='muted'><b>wrong</b>: it ran and a check found its result wrong. <b>did not "
        "run</b>: a syntax error, an error or infinite loop when the file ran, a crash or a "
        "timeout in the function. <b>not answered</b>: no file, no such function, or still the "
        "stub.</p>",
        "<table><tr><th>function</th>"
        + "".join(f"<th class='n'>{STATUS_TEXT[s]}</th>" for s in STATUSES)
        + "<th>who (not correct)</th></tr>",
    ]
    for f in functions.values():
        who = "<br>".join(
            f"<b>{STATUS_TEXT[s]}</b>: {_e(_names(f['students'][s]))}"
            for s in STATUSES[1:]
            if f["students"][s]
        )
        out.append(
            f"<tr><td><code>{_e(f['function'])}()</code><br><span class='muted'>"
            f"{_e(f['exercise'])}</span></td>"
            + "".join(f"<td class='n'>{f[s]}</td>" for s in STATUSES)
            + f"<td>{who}</td></tr>"
        )
    out.append("</table>")
    return out


def _students_table(summary: Mapping[str, Any]) -> list[str]:
    """Per student and function: correct, wrong, did not run (why) or not answered."""
    rows = summary.get("by_student") or []
    names = list(summary.get("functions") or {})
    if not rows or not names:
        return []
    out = [
        "<h2>Each student</h2><table><tr><th>student</th><th class='n'>score</th>"
        + "".join(f"<th><code>{_e(n.split('.', 1)[1])}()</code></th>" for n in names)
        + "</tr>"
    ]
    for row in rows:
        cells = []
        for name in names:
            o = row["functions"].get(name)
            if o is None:
                cells.append("<td class='muted'>-</td>")
                continue
            why = f"<br><span class='muted'>{_e(o['why'])}</span>" if o["why"] else ""
            cells.append(
                f"<td>{STATUS_TEXT[o['status']]} {o['points']}/{o['max_points']}{why}</td>"
            )
        out.append(
            f"<tr><td>{_e(row['student'])}</td><td class='n'>{row['score']}/{row['max_score']}"
            "</td>" + "".join(cells) + "</tr>"
        )
    out.append("</table>")
    return out


def write(records: Sequence[Mapping[str, Any]], course: Course, folder: Path) -> Path:
    """Write ``report.json`` and ``index.html`` into ``folder``; returns the HTML's path.
    A re-run that graded nothing new keeps them (plotting is the slow part)."""
    page = folder / "index.html"
    key = hashlib.sha256(
        (
            REPORT_FORMAT
            + "".join(str(r.get("fingerprint", "")) + str(r["student"]) for r in records)
        ).encode()
    ).hexdigest()
    try:
        old = json.loads((folder / "report.json").read_text(encoding="utf-8")).get(
            "graded_fingerprint"
        )
    except (OSError, ValueError, AttributeError):
        old = None
    if old == key and page.is_file():
        return page
    summary = summarize(records, course)
    summary["graded_fingerprint"] = key
    write_whole(folder / "report.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    write_whole(page, render(summary))
    return page
