"""Can two minion id globs match one minion? Pure Python: no Salt import.

Salt matches a glob target with fnmatch (case-sensitive on Linux), so a glob is read here exactly as fnmatch reads it
(its translate(), step by step), each `[...]` class asked of fnmatch itself, and two globs overlap when a search over
pairs of positions reaches both ends: `*` matches nothing more or takes any one character.
"""
import fnmatch


def _glob_class(stuff):
    """(negated, chars) of fnmatch's `[stuff]`: it matches exactly `chars`, or everything but them. Asked of fnmatch
    itself, char by char: a range's ends are in `stuff`, so nothing past its highest character matches a plain class
    (and everything does a negated one)."""
    top = max([127] + [ord(ch) for ch in stuff])
    hits = {chr(o) for o in range(top + 1) if fnmatch.fnmatchcase(chr(o), f"[{stuff}]")}
    if stuff.startswith("!"):
        return True, frozenset(chr(o) for o in range(top + 1)) - hits
    return False, frozenset(hits)


ANY = (True, frozenset())  # `?`


def atoms(glob):
    """fnmatch's reading of GLOB (its translate(), step by step): None for `*`, else the (negated, chars) one
    character must match."""
    out, i, n = [], 0, len(glob)
    while i < n:
        c, i = glob[i], i + 1
        if c == "*":
            if not out or out[-1] is not None:
                out.append(None)
        elif c == "?":
            out.append(ANY)
        elif c == "[":
            j = i + 1 if i < n and glob[i] == "!" else i
            j = j + 1 if j < n and glob[j] == "]" else j
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal `[`
                out.append((False, frozenset("[")))
            else:
                out.append(_glob_class(glob[i:j]))
                i = j + 1
        else:
            out.append((False, frozenset(c)))
    return out


def _common(p, q):
    """One character that matches both atoms, or None."""
    if p[0] and q[0]:  # two negated classes exclude finitely many characters
        return next(chr(o) for o in range(ord("a"), 0x110000) if chr(o) not in p[1] | q[1])
    if p[0] or q[0]:
        pos, neg = (q, p) if p[0] else (p, q)
        return min(pos[1] - neg[1], default=None)
    return min(p[1] & q[1], default=None)


def _steps(x, y, i, j):
    """(next state, character taken or "") of the search in example(): a `*` matches nothing more, or both globs
    take one character (a `*` stays where it is)."""
    if i < len(x) and x[i] is None:
        yield (i + 1, j), ""
    if j < len(y) and y[j] is None:
        yield (i, j + 1), ""
    if i < len(x) and j < len(y) and (x[i], y[j]) != (None, None):
        ch = _common(x[i] or ANY, y[j] or ANY)
        if ch is not None:
            yield (i + (x[i] is not None), j + (y[j] is not None)), ch


def example(a, b):
    """A string that matches both fnmatch globs A and B, or None when none does (exact: a search over pairs of
    positions in the two globs)."""
    x, y = atoms(a), atoms(b)
    came = {(0, 0): None}
    todo = [(0, 0)]
    while todo:
        state = todo.pop(0)
        if state == (len(x), len(y)):
            out = []
            while came[state]:
                state, ch = came[state]
                out.append(ch)
            return "".join(reversed(out))
        for nxt, ch in _steps(x, y, *state):
            if nxt not in came:
                came[nxt] = (state, ch)
                todo.append(nxt)
    return None


def overlap(a, b):
    """True when some string matches both fnmatch globs A and B."""
    return example(a, b) is not None
