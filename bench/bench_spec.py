#!/usr/bin/env python3
"""Speculative decoding benchmark: glassbox-cli generate with each --spec method
against plain decoding (greedy, so outputs must match) on input-grounded and
open-ended prompts. Prints a table and per-position acceptance; --json for raw.

  bench/bench_spec.py --cli build/app/glassbox-cli --model models/gemma-3-270m-q4_k_m.gguf -t 2 -n 96
  bench/bench_spec.py ... --methods lookup:b1,lookup:b3,lookahead:b1,lookahead:b3 --reps 3   # chain vs tree
"""
import argparse, json, os, re, resource, subprocess, sys, threading

PROMPTS = {
    "grounded/summarise": (
        "Summarise the passage, reusing its wording.\n\nPassage: The city council met on Tuesday to discuss the new "
        "public library. The library will open in March and will have a children's room, a reading garden and a "
        "maker space with 3D printers. The council voted to keep the library open until nine in the evening on "
        "weekdays. The library will be free for all residents of the city.\n\nSummary: The city council met on Tuesday"),
    "grounded/edit-code": (
        "Rewrite the function so that the variable total is named sum. Keep everything else the same.\n\n"
        "def average(values):\n    total = 0\n    for v in values:\n        total += v\n    if len(values) == 0:\n"
        "        return 0\n    return total / len(values)\n\nRewritten:\n\ndef average(values):\n"),
    "grounded/answer": (
        "Answer from the passage, quoting it.\n\nPassage: Marie Curie was a physicist and chemist who conducted "
        "pioneering research on radioactivity. She was the first woman to win a Nobel Prize, the first person to win "
        "a Nobel Prize twice, and the only person to win a Nobel Prize in two scientific fields.\n\n"
        "Question: What was Marie Curie the first woman to do?\nAnswer: Marie Curie was"),
    "open/story": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "open/chat": "What are some good ways to spend a rainy weekend at home?",
}


def run(cli, model, prompt, variant, args):
    """variant: "none", or "method[:bN][:skipA-B][:fixed][:wW][:nN][:gG][:kK]" (bN: --spec-branches N, 1 = chain;
    wW/nN/gG: lookahead window, n-gram size, verified candidates; kK: --draft-max K)."""
    parts = variant.split(":")
    spec = parts[0]
    cmd = [cli, "generate", "-m", model, "-p", prompt, "-n", str(args.n), "--greedy", "-t", str(args.threads),
           "--ignore-eos", "--stats", "--spec", spec]
    if args.backend != "cpu":
        cmd += ["--backend", args.backend]
    if args.draft_max and not any(o.startswith("k") for o in parts[1:]):
        cmd += ["--draft-max", str(args.draft_max)]
    for opt in parts[1:]:
        if opt.startswith("b"):
            cmd += ["--spec-branches", opt[1:]]
        elif opt.startswith("skip"):
            cmd += ["--spec-skip-layers", opt[4:]]
        elif opt == "fixed":  # fixed draft length, no auto-off: deterministic acceptance
            cmd += ["--spec-fixed"]
        elif opt.startswith("w"):  # lookahead: Jacobi window W, n-gram N, verified candidates G
            cmd += ["--lookahead-window", opt[1:]]
        elif opt.startswith("n"):
            cmd += ["--lookahead-ngram", opt[1:]]
        elif opt.startswith("g"):
            cmd += ["--lookahead-verify", opt[1:]]
        elif opt.startswith("k"):  # --draft-max for this variant
            cmd += ["--draft-max", opt[1:]]
    if spec == "draft":
        cmd += ["--draft-model", args.draft_model]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The process's CPU time when its first output byte arrives (loading, the
    # draft model's too, prefill and the first token are behind it) and at the
    # end: run.gen_cpu_s is the CPU time of generating the rest.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        err_chunks = []
        t_err = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))
        t_err.start()
        first = proc.stdout.read(1)
        at_first = None
        try:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            at_first = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
        rest = proc.stdout.read()
        proc.wait()
        t_err.join()
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu_s = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    run.gen_cpu_s = run.cpu_s - at_first if at_first is not None else None
    stdout = (first + rest).decode("utf-8", "replace")
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:4])} ... --spec {variant}\n{stderr}")
    m = re.search(r"generated (\d+) tokens ([\d.]+) tok/s", stderr)
    tps = float(m.group(2)) if m else 0.0
    stats = None
    for line in stderr.splitlines():
        if line.startswith("{\"method\""):
            stats = json.loads(line)
    return stdout, tps, stats


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return 0.0 if n == 0 else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="build/app/glassbox-cli")
    ap.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--draft-model", default="")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda"], help="glassbox-cli generate --backend")
    ap.add_argument("-n", type=int, default=96)
    ap.add_argument("--draft-max", type=int, default=0)
    ap.add_argument("--methods", default="lookup,lookahead,selfdraft",
                    help="comma list of method[:bN][:skipA-B][:fixed], e.g. lookup:b1,lookup:b3")
    ap.add_argument("--prompts", default="")
    ap.add_argument("--reps", type=int, default=1, help="interleaved repetitions (plain, variants, plain, ...)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cli-b", default="",
                    help="a second glassbox-cli: every method also runs with it (as METHOD@b), interleaved (A/B of two builds)")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if args.draft_model and "draft" not in methods:
        methods.append("draft")
    if args.cli_b:
        methods += [m + "@b" for m in methods]
    rows = []
    for name, prompt in PROMPTS.items():
        if args.prompts and not any(s in name for s in args.prompts.split(",")):
            continue
        # Interleave plain and speculative runs so machine load hits them alike;
        # report medians over the repetitions and the median of per-rep ratios.
        plain_tps, spec_tps, stats, same = [], {m: [] for m in methods}, {}, {m: True for m in methods}
        # The order rotates from rep to rep (no variant always runs first).
        base_out = None
        outs, cost = {}, {}
        # CPU seconds of generation (the machine's load disturbs them far less
        # than wall time: the pool's threads sleep when idle): from /proc, the
        # process's CPU time at its first output byte to its end; without /proc,
        # the whole run's minus a 1-token run's (best of 2: loading + prefill +
        # the first token).
        # Per variant: a draft model's loading and Context are in its own baseline.
        n_saved = args.n
        args.n = 1
        base_cpu = {}
        for variant in ([] if os.path.exists("/proc/self/stat") else ["none"] + methods):  # else run.gen_cpu_s
            cli = args.cli_b if variant.endswith("@b") else args.cli
            xs = []
            for _ in range(2):
                run(cli, args.model, prompt, variant.removesuffix("@b"), args)
                xs.append(run.cpu_s)
            base_cpu[variant] = min(xs)
        args.n = n_saved
        plain_cpu, spec_cpu = [], {m: [] for m in methods}
        load0 = os.getloadavg()[0]
        for rep in range(args.reps):
            order = ["none"] + methods
            k = rep % len(order)
            for variant in order[k:] + order[:k]:
                cli = args.cli_b if variant.endswith("@b") else args.cli
                out, tps, st = run(cli, args.model, prompt, variant.removesuffix("@b"), args)
                if run.gen_cpu_s is not None:  # CPU ms per generated token
                    cpu_tok = 1000.0 * max(0.0, run.gen_cpu_s) / max(1, args.n - 1)
                else:
                    cpu_tok = 1000.0 * max(0.0, run.cpu_s - base_cpu[variant]) / max(1, args.n - 1)
                if variant == "none":
                    plain_tps.append(tps)
                    plain_cpu.append(cpu_tok)
                    base_out = out
                else:
                    spec_tps[variant].append(tps)
                    spec_cpu[variant].append(cpu_tok)
                    stats[variant] = st
                    outs.setdefault(variant, []).append(out)
                    # cost of one speculative step in plain steps (this run's ms/step over
                    # the latest plain run's ms/token): tok/step / step_cost = speedup
                    if st and st["steps"] and plain_tps and plain_tps[-1]:
                        cost.setdefault(variant, []).append((st["t_total_ms"] / st["steps"]) / (1000.0 / plain_tps[-1]))
        for method in methods:
            same[method] = all(o == base_out for o in outs[method])
        for method in methods:
            st = stats[method]
            ratios = [s / b for s, b in zip(spec_tps[method], plain_tps) if b]
            rows.append(dict(prompt=name, method=method, plain_tps=median(plain_tps), tps=median(spec_tps[method]),
                             plain_all=plain_tps, spec_all=spec_tps[method], speedup=median(ratios),
                             same=same[method], stats=st, step_cost=median(cost.get(method, [])),
                             plain_cpu_ms=median(plain_cpu), spec_cpu_ms=median(spec_cpu[method]),
                             cpu_speedup=median(plain_cpu) / max(1e-9, median(spec_cpu[method])),
                             load=(round(load0, 1), round(os.getloadavg()[0], 1))))
            r = rows[-1]
            acc = st["acceptance_at"] if st else []
            print(f"{name:22s} {method:14s} plain {r['plain_tps']:6.2f} tok/s  spec {r['tps']:6.2f} tok/s  x{r['speedup']:.2f}  "
                  f"same={r['same']}  acc={st['acceptance_rate'] if st else 0:.2f}  "
                  f"mean_len={st['mean_accepted_len'] if st else 0:.2f}  tok/step={st['tokens_per_step'] if st else 0:.2f}  "
                  f"step_cost={r['step_cost']:.2f}  cpu_ms/tok {r['plain_cpu_ms']:.1f}->{r['spec_cpu_ms']:.1f} (x{r['cpu_speedup']:.2f})  "
                  f"off={st['off_steps'] if st else 0}  probes={st.get('probes', '-') if st else 0}  "
                  f"drafter_fed={st.get('drafter_ingested', '-') if st else 0}  by_pos={[round(a, 2) for a in acc]}  "
                  f"load={r['load']}  "
                  f"plain_all={[round(x, 1) for x in plain_tps]} spec_all={[round(x, 1) for x in spec_tps[method]]}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    if not all(r["same"] for r in rows):
        sys.exit("greedy output differed from plain decoding")


if __name__ == "__main__":
    main()
