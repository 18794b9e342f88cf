#!/usr/bin/env python3
"""Offline replay of speculation policies on a recorded greedy generation.

Prompt-lookup drafts depend only on the token history, and greedy output does
not depend on the policy, so one recorded run (prompt ids + emitted ids) lets
any draft-length policy be replayed exactly, without timing noise: for each
position, the full-depth lookup chain (longest suffix match, most recent,
repeating with the match's period, as engine/src/spec/prompt_lookup.cpp) and
how many of its tokens the output then confirms. Costs come from a verify-cost
curve in plain steps (given, not measured), plus a per-token overhead paid by
plain and speculative decoding alike (sampling, log-probabilities).

Record a run:
  GB_SPEC_TRACE_IDS=1 glassbox-cli generate -m MODEL -p PROMPT -n 200 --greedy --ignore-eos --spec lookup \\
      2>&1 >/dev/null | grep ^ids > run.ids
Replay:
  bench/spec_replay.py run.ids [more.ids ...] [-n 96] [--curve 1.3,0.11] [--overhead 0.03]

Policies: fixed depth k (always draft k when there is a match), a port of
spec::Controller's chain plan (shadow acceptance per depth and match class,
pooled prior inherited from the depth above, depth 0's prior capped at the
draft's first_p (Controller::p_first; "controller-old": without that cap), most expected tokens per cost, 5% margin, plain step otherwise;
no trees, no lookahead window) and the oracle (dynamic programming with the
future known: an upper bound for any policy with these drafts and costs).
"""
import argparse, functools, sys


def load(path):
    prompt, emitted = [], []
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == "ids-prompt":
            prompt = [int(x) for x in f[1:]]
        elif f[0] == "ids-emit":
            emitted.append(int(f[1]))
    return prompt, emitted


def propose(t, max_len, cap=32):
    """The first branch of prompt lookup: (draft tokens, Draft::cls, Draft::first_p)."""
    n = len(t)
    if n < 2:
        return [], 0, -1.0
    best, cands = None, []
    for e in range(n - 2, -1, -1):
        if t[e] != t[-1]:
            continue
        m = 1
        while m < cap and e - m >= 0 and t[e - m] == t[n - 1 - m]:
            m += 1
        cands.append((m, e))
        if best is None or m > best[0]:
            best = (m, e)
    if best is None:
        return [], 0, -1.0
    m, e = best
    period = n - 1 - e
    out = []
    for j in range(max_len):
        i = e + 1 + j
        while i >= n:
            i -= period
        out.append(t[i])
    # first_p: of the occurrences matching as long a suffix as the best, the share followed by out[0]
    sel = [c for c in cands if c[0] >= m]
    first_p = (sum(1 for _, ce in sel if t[ce + 1] == out[0]) + 0.5) / (len(sel) + 1.0)
    return out, match_class(m, len({t[ce + 1] for _, ce in cands}) > 1), first_p


def match_class(m, split=False):  # Draft::cls of prompt lookup (6 / 7: short matches whose occurrences went on differently)
    if m <= 2 and split:
        return 6 if m == 1 else 7
    return 3 if m >= 6 else 2 if m >= 3 else 1 if m >= 2 else 0


class Decayed:  # spec::DepthAcceptance without the prior
    def __init__(self, keep=0.85):
        self.keep, self.hit, self.seen = keep, [0.0] * 64, [0.0] * 64

    def add(self, d, ok):
        if d < 64:
            self.seen[d] = self.keep * self.seen[d] + 1.0
            self.hit[d] = self.keep * self.hit[d] + (1.0 if ok else 0.0)


def replay(prompt, emitted, n, k_max, cost, overhead, policy):
    """policy: ("fixed", k) | ("controller",) | ("controller-old",) (before Draft::first_p). Returns (speedup, steps)."""
    old_policy = policy[0] == "controller-old"
    out = emitted[:n]
    pooled, per_cls = Decayed(), [Decayed() for _ in range(8)]
    walks = []

    def emit(j):  # shadow walks advance on every emitted token
        nonlocal walks
        alive = []
        for start, d, c in walks:
            depth = j - start
            if depth >= len(d):
                continue
            ok = d[depth] == out[j]
            pooled.add(depth, ok)
            per_cls[c].add(depth, ok)
            if ok:
                alive.append((start, d, c))
        walks = alive

    def p(c, d, first_p=-1.0):
        # the class's estimate with the pooled one as prior (2 observations); the pooled
        # one at depth d with depth d - 1's as prior (0.5 observations; depth 0: 0.5);
        # depth 0 (Controller::p_first): that prior capped at the draft's first_p
        pa = 0.5
        for i in range(d + 1):
            pa = (pooled.hit[i] + 0.5 * pa) / (pooled.seen[i] + 0.5)
        if d == 0 and first_p >= 0 and not old_policy:
            pa = min(pa, first_p)
        return (per_cls[c].hit[d] + 2.0 * pa) / (per_cls[c].seen[d] + 2.0)

    emit(0)  # the first token comes from the prefill
    i, total, steps = 1, 1.0 + overhead, 0
    while i < n:
        d, c, fp = propose(prompt + out[:i], k_max)
        d = d[: n - i]
        k = 0
        if d:
            walks.append((i, d, c))
            if policy[0] == "fixed":
                k = min(policy[1], len(d))
            else:
                e, reach, best_rate = 1.0, 1.0, 0.0
                for kk in range(1, len(d) + 1):
                    reach *= p(c, kk - 1, fp)
                    e += reach
                    if e / cost(kk + 1) > best_rate:
                        best_rate, k = e / cost(kk + 1), kk
                if best_rate <= 1.05 / cost(1):
                    k = 0
        a = 0
        while a < k and d[a] == out[i + a]:
            a += 1
        got = min(a + 1, n - i)
        for j in range(i, i + got):
            emit(j)
        total += cost(k + 1) + got * overhead
        i += got
        steps += 1
    return n * (1.0 + overhead) / total, steps


def oracle(prompt, emitted, n, k_max, cost, overhead):
    out = emitted[:n]
    acc, has = [0] * n, [False] * n
    for i in range(1, n):
        d, _, _ = propose(prompt + out[:i], k_max)
        has[i] = bool(d)
        while acc[i] < len(d) and i + acc[i] < n and d[acc[i]] == out[i + acc[i]]:
            acc[i] += 1
    sys.setrecursionlimit(10000)

    @functools.lru_cache(None)
    def best(i):
        if i >= n:
            return 0.0
        options = []
        for k in range(0, (k_max if has[i] else 0) + 1):
            got = min(min(acc[i], k) + 1, n - i)
            options.append(cost(k + 1) + got * overhead + best(i + got))
        return min(options)

    return n * (1.0 + overhead) / (1.0 + overhead + best(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ids", nargs="+")
    ap.add_argument("-n", type=int, default=96, help="tokens generated (as bench_spec.py -n)")
    ap.add_argument("--draft-max", type=int, default=12)
    ap.add_argument("--curve", default="1.3,0.11",
                    help="verify cost in plain steps for n >= 2 tokens: A,B = A + B (n - 2); or a list c1,c2,...")
    ap.add_argument("--overhead", type=float, default=0.03, help="per emitted token, in plain steps")
    args = ap.parse_args()
    vals = [float(x) for x in args.curve.split(",")]
    if len(vals) == 2:
        cost = lambda n: 1.0 if n <= 1 else vals[0] + vals[1] * (n - 2)
    else:
        cost = lambda n: vals[min(n, len(vals)) - 1]
    policies = [("fixed", k) for k in (4, 6, 8, 10, 12) if k <= args.draft_max] + [("controller-old",), ("controller",)]
    print("run".ljust(28) + "".join(("k=%d" % p[1] if p[0] == "fixed" else p[0]).rjust(12) for p in policies) + "oracle".rjust(10))
    for path in args.ids:
        prompt, emitted = load(path)
        args.n = min(args.n, len(emitted))
        row = [replay(prompt, emitted, args.n, args.draft_max, cost, args.overhead, p)[0] for p in policies]
        row.append(oracle(prompt, emitted, args.n, args.draft_max, cost, args.overhead))
        print(path.split("/")[-1][:27].ljust(28) + "".join(("%.2fx" % r).rjust(12) for r in row[:-1]) + ("%.2fx" % row[-1]).rjust(10))


if __name__ == "__main__":
    main()
