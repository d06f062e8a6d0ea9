"""Markdown that teaches an exercise, derived from the stub's docstrings (so it cannot drift).

The docstrings are shown as written (they are the course's text, readable as they are), with
``code`` spans and formula blocks kept; then the equations found in the summary line, the
``Math:`` paragraph and the indented formula lines are restated in LaTeX. The conversion is
conservative: anything that does not look like a formula (prose words, unbalanced brackets) is
left out of the LaTeX summary rather than rendered wrongly.
"""

from __future__ import annotations

import re

GREEK = {
    "α": r"\alpha",
    "β": r"\beta",
    "γ": r"\gamma",
    "δ": r"\delta",
    "ε": r"\epsilon",
    "θ": r"\theta",
    "λ": r"\lambda",
    "μ": r"\mu",
    "π": r"\pi",
    "σ": r"\sigma",
    "τ": r"\tau",
    "φ": r"\phi",
    "ψ": r"\psi",
    "ω": r"\omega",
    "Δ": r"\Delta",
    "Π": r"\Pi",
}
SYMBOLS = {
    "·": r" \cdot ",
    "−": "-",
    "≈": r" \approx ",
    "≤": r" \le ",
    "≥": r" \ge ",
    "→": r" \to ",
    "±": r" \pm ",
    "½": r"\frac{1}{2}",
    "²": "^2",
    "∂": r"\partial ",
}
#: words that are math in these docstrings (functions and named quantities)
OPERATORS = {"log": r"\log", "exp": r"\exp", "min": r"\min", "max": r"\max"}
MATH_WORDS = {
    "argmax",
    "clip",
    "mean",
    "std",
    "softmax",
    "sigmoid",
    "onehot",
    "logits",
    "mask",
    "done",
    "loss",
    "returns",
    "Huber",
    "E",
}
_LETTERS = "A-Za-z" + "".join(GREEK) + "ĜÂ"
_IDENT = rf"[{_LETTERS}][{_LETTERS}0-9]*(?:_(?:\{{[^{{}}]*\}}|[{_LETTERS}0-9]+))*'*\*?"
_TOKEN = re.compile(
    rf"(?P<space>\s+)|(?P<bigop>[Σ∇](?:_(?:\{{[^{{}}]*\}}|[{_LETTERS}0-9]+'*)|θ)?)|(?P<num>\d+(?:\.\d+)?(?:e-?\d+)?)|(?P<ident>{_IDENT})"
    rf"|(?P<op>[=+\-−·/|()\[\],:≈≤≥±½²∂*'])|(?P<other>.)"
)


def _ident_latex(word: str, names: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """One identifier: ``G_t``, ``V_{t+1}``, ``πθ_old``, ``max_a'``, ``log_probs``, ``Q*``."""
    star = word.endswith("*")
    word = word.rstrip("*")
    core = word.rstrip("'")
    primes = "'" * (len(word) - len(core))
    parts = core.split("_")
    one_name = len(parts) > 1 and len(parts[0]) > 1 and len(parts[-1]) > 1
    if core in names or one_name and core[0] not in GREEK and "{" not in core:
        out = r"\mathrm{" + core.replace("_", r"\_") + "}" + primes  # one name: ``log_probs``
    else:
        base, _, sub = core.rpartition("_") if "_" in core else (core, "", "")
        out = _base_latex(base, sub)
        if sub and not (base and base[0] in GREEK and len(base) > 1 and base[1] == "θ"):
            if sub.startswith("{"):
                inner = "".join(SYMBOLS.get(c, c) for c in sub[1:-1])
                out += "_{" + inner + primes + "}"
            elif len(sub) == 1 or all(c in GREEK for c in sub):
                out += "_{" + "".join(GREEK.get(c, c) for c in sub) + primes + "}"
            else:
                out += r"_\mathrm{" + sub + "}" + primes
            primes = ""
        out += primes
    return out + ("^*" if star else "")


def _base_latex(word: str, sub: str = "") -> str:
    """A name without its subscript (``sub`` is only used by ``πθ_old``)."""
    if word in OPERATORS:
        return OPERATORS[word]
    if word == "Ĝ":
        return r"\hat{G}"
    if len(word) == 1:
        return GREEK.get(word, word)
    if word[0] in GREEK:
        rest = word[1:]
        if rest[0] == "θ":  # πθ: the policy's parameters are a subscript
            inner = r"\theta" + rest[1:] + (r"_\mathrm{" + sub + "}" if sub else "")
            return GREEK[word[0]] + "_{" + inner + "}"
        if all(c in GREEK for c in rest):  # γλ: a product
            return " ".join(GREEK[c] for c in word)
        return GREEK[word[0]] + r"_\mathrm{" + rest + "}"  # πref
    return r"\mathrm{" + word.replace("_", r"\_") + "}"


def _tokens(text: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(text)]


def _is_math_word(word: str, names: set[str]) -> bool:
    core = word.rstrip("*'")
    base = core.split("_")[0]
    return (
        len(base) == 1
        or "_" in core
        or any(c in GREEK for c in core)
        or base in OPERATORS
        or base in MATH_WORDS
        or core in names
        or base == "Ĝ"
    )


def _balanced(tokens: list[tuple[str, str]]) -> bool:
    depth = 0
    for _, t in tokens:
        depth += t in ("(", "[")
        depth -= t in (")", "]")
        if depth < 0:
            return False
    return depth == 0


def to_latex(tokens: list[tuple[str, str]], names: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    out: list[str] = []
    for kind, t in tokens:
        if kind == "space":
            out.append(" ")
        elif kind == "ident":
            out.append(_ident_latex(t, names))
        elif kind == "bigop":
            op = r"\sum" if t[0] == "Σ" else r"\nabla"
            sub = t[1:].lstrip("_")
            if sub.startswith("{"):
                sub = sub[1:-1]
            out.append(
                op + ("_{" + "".join(GREEK.get(c, c) for c in sub) + "}" if sub else "") + " "
            )
        elif kind == "num":
            m = re.fullmatch(r"(\d+(?:\.\d+)?)e(-?\d+)", t)
            if m is None:
                out.append(t)
            else:
                factor = "" if m[1] == "1" else m[1] + r" \cdot "
                out.append(factor + "10^{" + m[2] + "}")
        else:
            out.append(SYMBOLS.get(t, t))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def find_equations(text: str, names: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The equations (``lhs = rhs``) in a piece of prose, as LaTeX."""
    tokens = _tokens(text)

    def is_math(i: int) -> bool:
        kind, t = tokens[i]
        if kind == "ident":
            return _is_math_word(t, names)
        return kind in ("space", "num", "op", "bigop") and t not in ",:"

    found: list[tuple[int, int]] = []
    for i, (_, t) in enumerate(tokens):
        if t != "=" or any(a <= i < b for a, b in found):
            continue
        # extend left and right over math tokens; commas and colons only inside brackets
        lo, depth = i, 0
        while lo > 0:
            kind, tok = tokens[lo - 1]
            if tok in ")]":
                depth += 1
            elif tok in "([":
                if depth == 0:
                    break
                depth -= 1
            elif not is_math(lo - 1) and not (depth > 0 and tok in ",:"):
                break
            lo -= 1
        hi, depth = i + 1, 0
        while hi < len(tokens):
            kind, tok = tokens[hi]
            if tok in "([":
                depth += 1
            elif tok in ")]":
                if depth == 0:
                    break
                depth -= 1
            elif not is_math(hi) and not (depth > 0 and tok in ",:"):
                break
            hi += 1
        while lo < i and tokens[lo][0] == "space":
            lo += 1
        while hi > i + 1 and tokens[hi - 1][0] == "space":
            hi -= 1
        span = tokens[lo:hi]
        lhs = [t for t in tokens[lo:i] if t[0] != "space"]
        rhs = [t for t in tokens[i + 1 : hi] if t[0] != "space"]
        if not lhs or not rhs or not _balanced(span) or len(rhs) == 1 and rhs[0][1] in "−-":
            continue
        found.append((lo, hi))
    return [to_latex(tokens[a:b], names) for a, b in found]


def _math_paragraph(doc: str) -> str:
    """The ``Math:`` paragraph of a docstring ('' when it has none)."""
    for para in re.split(r"\n\s*\n", doc):
        if para.lstrip().startswith("Math:"):
            return para.lstrip()[len("Math:") :]
    return ""


def _formula_lines(para: str) -> list[str]:
    """Indented lines of a paragraph; a block with a continuation line (no ``=``, e.g. a case
    split) is left to the code block."""
    block = [line for line in para.splitlines() if line.startswith((" ", "\t"))]
    if not block or not all("=" in line for line in block):
        return []
    # a trailing remark after two spaces, "(A_T = 0, computed backwards in time)", stays prose
    return [re.split(r"\s{2,}\(", line.strip())[0] for line in block]


def formulas(doc: str, names: set[str] = frozenset(), everywhere: bool = False) -> list[str]:  # type: ignore[assignment]
    """The docstring's equations in LaTeX: summary line, ``Math:`` paragraph, formula lines
    (``everywhere``: every paragraph, for a module docstring that has no ``Math:``)."""
    if not doc:
        return []
    summary = re.split(r"\.\s|\.$", doc.split("\n\n")[0].replace("\n", " "))[0]
    para = doc if everywhere else _math_paragraph(doc)
    lines = _formula_lines(para)
    prose = " ".join(line.strip() for line in para.splitlines() if not line.startswith((" ", "\t")))
    found: list[str] = []
    for piece in [summary, *(re.split(r"(?<!\d)\.\s", prose)), *lines]:
        # a remark after two or more spaces (``  (a "log-sum-exp")``) is not part of it
        piece = re.split(r"\s{2,}\(", piece)[0]
        for eq in find_equations(piece, names):
            if eq not in found:
                found.append(eq)
    return found


def markdown_docstring(doc: str) -> str:
    """A docstring as markdown: ``x`` → `x`; indented (formula) lines → a code block."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            width = min(len(b) - len(b.lstrip()) for b in block)
            out.extend(["", "```text", *(b[width:] for b in block), "```", ""])
            block.clear()

    for line in doc.splitlines():
        if line.startswith((" ", "\t")) and line.strip():
            block.append(line.rstrip())
            continue
        flush()
        out.append(re.sub(r"``(.+?)``", r"`\1`", line))
    flush()
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def formula_block(equations: list[str]) -> str:
    if not equations:
        return ""
    body = "\n\n".join(f"$$ {eq} $$" for eq in equations)
    return "**The formulas:**\n\n" + body
