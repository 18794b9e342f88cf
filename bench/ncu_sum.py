# Sums ncu per-kernel durations (CSV of gpu__time_duration.sum) by kernel name.
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows: print("ncu: no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    v = float(r[vi].replace(",", "")); v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(r[ui], float("nan"))
    name = r[ki].split("(")[0].replace("gb::cuda::", "").replace("(anonymous namespace)::", "")[:60]
    tot[name] += v; cnt[name] += 1
print("ncu %s: %d kernels, %.1f us total" % (sys.argv[1].split("/")[-1], sum(cnt.values()), sum(tot.values())))
for k in sorted(tot, key=lambda k: -tot[k]): print("  %-60s n=%4d total %9.1f us  mean %7.2f us" % (k, cnt[k], tot[k], tot[k] / cnt[k]))
