#!/usr/bin/env python3
"""Benchmark: a month's statements for an MSP's customers as one PDF, written by licensewatch itself vs printed from
HTML by headless Chromium (the other way issue 37 allowed), on the same statements.

Usage: scripts/bench/statement_pdf.py [CUSTOMERS] [BINARY]
  (default 45 customers and target/release/licensewatch: run `cargo build --release -p licensewatch` first)
Builds state with `licensewatch demo` (35 days of a tenant), copies its seat counts, runs and licence events to
CUSTOMERS-1 more tenants, then times `licensewatch statement --month 2026-12 --all-tenants --pdf F --csv D` and
Chromium's `--print-to-pdf` of the same statements as an HTML page (a table per customer, a page break between).
Prints one JSON line: wall time, peak RSS (the largest process) and bytes of each.
"""
import html, json, os, shutil, sqlite3, subprocess, sys, tempfile, uuid

customers = int(sys.argv[1]) if len(sys.argv) > 1 else 45
binary = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/release/licensewatch")
chromium = os.environ.get("LICENSEWATCH_CHROMIUM") or shutil.which("chromium") or sys.exit("no chromium")
work = tempfile.mkdtemp(prefix="lw-statement-bench-")


WRAPPER = ("import resource, subprocess, sys, time\n"
           "t0 = time.perf_counter()\n"
           "out = subprocess.run(sys.argv[2:], check=True, capture_output=True).stdout\n"
           "wall = time.perf_counter() - t0\n"
           "open(sys.argv[1], 'wb').write(out)\n"
           "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd, **kw):
    """The command's stdout, wall seconds and peak RSS in MiB (of its largest process, measured in a fresh parent
    so that earlier commands do not count)."""
    stdout = os.path.join(work, "stdout")
    wall, rss = subprocess.run([sys.executable, "-c", WRAPPER, stdout, *cmd], check=True, capture_output=True,
                               text=True, **kw).stdout.split()
    return open(stdout, "rb").read(), float(wall), round(int(rss) / 1024, 1)


subprocess.run([binary, "demo", "--state-dir", work, "--json"], check=True, capture_output=True)
db = sqlite3.connect(os.path.join(work, "state.db"))
home = db.execute("SELECT DISTINCT tenant_id FROM seat_counts").fetchone()[0]
others = [str(uuid.UUID(int=i + 1)) for i in range(customers - 1)]
for table in ("seat_counts", "check_runs", "license_events"):
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    rest = ", ".join(c for c in cols if c != "tenant_id")
    for t in others:
        db.execute(f"INSERT INTO {table} (tenant_id, {rest}) SELECT ?, {rest} FROM {table} WHERE tenant_id = ?", (t, home))
db.commit()
db.close()
policy = os.path.join(work, "licensewatch.toml")
with open(policy, "w") as f:
    f.write('[prices]\ncurrency = "EUR"\n[prices.monthly]\nENTERPRISEPACK = 23.0\n')
    for t in others:
        f.write(f'[[tenants]]\nid = "{t}"\n')
env = dict(os.environ, LICENSEWATCH_TENANT_ID=home, LICENSEWATCH_CLIENT_ID="11111111-2222-3333-4444-555555555555",
           LICENSEWATCH_CLIENT_SECRET="unused", LICENSEWATCH_STATE=f"sqlite:{work}/state.db",
           LICENSEWATCH_ARCHIVE=f"file:{work}/audit-archive", LICENSEWATCH_CONFIG=policy,
           LICENSEWATCH_NOW="2027-01-01T06:00:00Z")

ours_pdf = os.path.join(work, "statements.pdf")
out, ours_wall, ours_rss = timed([binary, "statement", "--month", "2026-12", "--all-tenants", "--json", "--pdf",
                                  ours_pdf, "--csv", os.path.join(work, "csv")], env=env)
statements = json.loads(out)["statements"]

# The same statements as a page for Chromium to print.
parts = ["<!doctype html><meta charset=utf-8><style>body{font:9pt sans-serif} table{border-collapse:collapse}"
         "td,th{border:1px solid #999;padding:2px 4px} section{page-break-after:always}</style>"]
for st in statements:
    parts.append(f"<section><h1>Licence statement {st['month']}: {html.escape(st['tenant_id'])}</h1><table>"
                 "<tr><th>SKU<th>bought<th>assigned<th>peak<th>unassigned<th>cost</tr>")
    for l in st["skus"]:
        parts.append(f"<tr><td>{html.escape(l['sku'])}<td>{l['bought']}<td>{l['assigned']}<td>{l['peak_assigned']}"
                     f"<td>{l['unassigned']}<td>{l['monthly_cost'] or ''}</tr>")
    parts.append(f"</table><p>Total {st['total_cost']:.2f} {st['currency']}</p><table>")
    for c in st["changes"]:
        parts.append(f"<tr><td>{c['at']}<td>{html.escape(c['user'])}<td>{html.escape(', '.join(c['added']))}"
                     f"<td>{html.escape(', '.join(c['removed']))}<td>{html.escape(c['by'])}</tr>")
    parts.append("</table></section>")
page = os.path.join(work, "statements.html")
with open(page, "w") as f:
    f.write("".join(parts))
chrome_pdf = os.path.join(work, "chromium.pdf")
_, chrome_wall, chrome_rss = timed([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                                    f"--user-data-dir={work}/profile", f"--print-to-pdf={chrome_pdf}",
                                    f"file://{page}"])
print(json.dumps({
    "customers": len(statements),
    "licensewatch": {"wall_s": round(ours_wall, 3), "peak_rss_mib": ours_rss, "pdf_bytes": os.path.getsize(ours_pdf)},
    "chromium_print_to_pdf": {"wall_s": round(chrome_wall, 3), "peak_rss_mib": chrome_rss,
                              "pdf_bytes": os.path.getsize(chrome_pdf)},
}))
shutil.rmtree(work, ignore_errors=True)
