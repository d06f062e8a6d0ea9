"""The class report: what the instructor should re-teach.

``report.json`` has the numbers: each exercise's score distribution, each check's pass rate,
every named misconception with how many students made it and one counterexample (from a public
check when one caught it), and the problems that stopped an exercise from being graded.
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
    for r in records:
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
                    kind["examples"].append({"student": r["student"], "problem": ex["problem"]})
            seen: set[str] = set()
            for c in ex["checks"]:
                stat = checks.setdefault(
                    c["name"],
                    {
                        "exercise": ex["name"],
                        "visibility": c.get("visibility", "public"),
                        "points": c["max_points"],
                        "passed": 0,
                        "students": 0,
                    },
                )
                stat["students"] += 1
                stat["passed"] += bool(c["passed"])
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
        "checks": dict(sorted(checks.items(), key=lambda kv: (kv[1]["pass_rate"], kv[0]))),
        "problems": problems,
        "sandbox_failed": sandbox_failed,
        "protection": sorted({str(r.get("protection", "")) for r in records}),
    }


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


def render(summary: Mapping[str, Any]) -> str:
    scores_png = _score_plots(summary) if summary["students"] else ""
    mis_png = _misconception_plot(summary)
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rlkit class report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Class report</h1>",
        f"<p class='sub'>{summary['students']} students, mean {summary['mean']}/"
        f"{summary['max_score']}, median {summary['median']}. Graded in: "
        f"{_e('; '.join(p.split(';')[0] for p in summary['protection']))}.</p>",
        "<h2>What to re-teach: named misconceptions</h2>",
    ]
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
        "<table><tr><th>check</th><th>exercise</th><th>visibility</th><th class='n'>points</th>"
        "<th class='n'>passed by</th></tr>"
    )
    for name, c in list(summary["checks"].items())[:25]:
        width = int(120 * c["pass_rate"])
        out.append(
            f"<tr><td><code>{_e(name)}</code></td><td>{_e(c['exercise'])}</td>"
            f"<td>{_e(c['visibility'])}</td><td class='n'>{c['points']}</td>"
            f"<td class='n'><span class='bar' style='width:{width}px'></span> "
            f"{c['passed']}/{c['students']}</td></tr>"
        )
    out.append("</table>")
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


def write(records: Sequence[Mapping[str, Any]], course: Course, folder: Path) -> Path:
    """Write ``report.json`` and ``index.html`` into ``folder``; returns the HTML's path.
    A re-run that graded nothing new keeps them (plotting is the slow part)."""
    page = folder / "index.html"
    key = hashlib.sha256(
        "".join(str(r.get("fingerprint", "")) + str(r["student"]) for r in records).encode()
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
