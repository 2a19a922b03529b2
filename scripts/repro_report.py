#!/usr/bin/env python3
"""docs/results/ from a scripts/repro.sh run: tables (Markdown + CSV + JSON) and gnuplot plots.

Reads the records `lawcat eval` appended under <runs>/eval/parts/<model>/<task>/results.jsonl (one
JSON object per prompt / bucket / ppl cell, each with its score) and the `lawcat sweep` tables
under <runs>/students, <runs>/grid and <runs>/probe, and writes into <docs>:
  README.md              every table, with the commands that produced it
  summary.csv / .json    one row per model: the headline figures
  passkey.csv / .json    accuracy per model x length x depth
  longppl.csv / .json    mean NLL per model x position bucket
  <task>.csv / .json     the other eval tasks (niah, babilong, babilong_raw, ppl_*) when present
  passkey_heatmap.png    passkey accuracy, length x depth, one panel per model
  passkey_vs_length.png  passkey accuracy vs length, one line per model (_key.png: the compared ones)
  nll_by_position.png    long-document NLL by position, one line per model
  curves.png             stage-1 validation MSE and stage-2 validation CE per student
  records.tar.xz         every raw record (the eval results.jsonl files)

--prior DIR reports the runs beside an earlier docs/results (e.g. the committed one, in place): its
records wherever the runs hold no scored record of that model and task, its "made by" rows, its
training tables (rows of other runs kept beside the runs' sweep rows) and its training curves
(archived in records.tar.xz; a prior that did not archive them keeps its curves.png and the runs'
curves go to curves_added.png). The runs are git-ignored and a device machine's runs are gone after
its session, so a later session's new students are reported beside the earlier ones this way.

It only groups records and takes means (the same cells `lawcat eval` prints); standard library plus
gnuplot. Hand-written because the layout is this reproduction's, not a general tool.
"""
import argparse
import atexit
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict

CURVES_DIR = "_curves"  # the training curves' folder inside records.tar.xz (not a model)
PPL = {"ppl_tinystories": "TinyStories val", "ppl_gutenberg": "Gutenberg val", "ppl_wikipedia": "Wikipedia val"}


def klabel(n):
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def records(path):
    """The scored records of an eval results.jsonl (failed samples left out)."""
    return [r for r in records_any(path) if "score" in r and r.get("error") is None]


def cells(recs):
    """(variant, length, depth) -> [mean score, n]"""
    acc = defaultdict(lambda: [0.0, 0])
    for r in recs:
        c = acc[(r.get("variant", ""), r["length"], r.get("depth", -1))]
        c[0] += r["score"]
        c[1] += 1
    return {k: (s / n, n) for k, (s, n) in acc.items()}


def gnuplot(script):
    if not shutil.which("gnuplot"):
        return False
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


# The models NOTES.md compares: teacher, paper defaults, LoLCATs-style, and the retrieval-data
# students (passkey_vs_length_key.png); the ones absent from a run are left out.
KEY_MODELS = ["teacher", "lawcat", "lolcats", "tasks_heavy_phi128", "tasks_only", "tasks_only_lolcats",
              "tasks_only_phi128", "tasks_only_phi128_full", "tasks_only_phi128_w8",
              "tasks_only_phi128_w8_L3h3x6", "tasks_then_generic_phi128_w8", "tasks_then_generic_phi128_w8_L3h3x6",
              "tasks_then_generic_phi128_w8_lora4000", "tasks_then_generic_phi128_w8_lora4000_L3h3x4",
              "tasks_then_generic_phi128_w8_L3h3x3_lora1500_no3", "tasks_then_mixed_phi128_w8_lora1500_L3h3x3",
              "tasks_then_generic_phi128_w8_window_lora1500", "tasks_then_generic_phi128_w8_window_lora1500_L3h3x2",
              "tasks_then_mixed_phi128_w8_window_lora1500_L3h3x2"]


def lines_plot(png, title, xlabel, ylabel, series, logx=True, yrange="[*:*]"):
    dat = png[:-4] + ".dat"
    with open(dat, "w") as f:
        for name, pts in series.items():
            f.write(f"# {name}\n" + "".join(f"{x} {y}\n" for x, y in sorted(pts)) + "\n\n")
    plots = ", ".join(f"'{dat}' index {i} using 1:2 with linespoints lw 2 pt {7 + i // 8} ps 0.6 dt {1 + i // 8} "
                      f"title '{n}' noenhanced" for i, n in enumerate(series))
    ok = gnuplot(f"""set terminal pngcairo size 1000,560 font 'sans,10'
set output '{png}'
set title '{title}' noenhanced
set xlabel '{xlabel}'
set ylabel '{ylabel}'
{'set logscale x 2' if logx else ''}
set yrange {yrange}
set grid
set key outside right
plot {plots}
""")
    os.remove(dat)
    return ok


def heatmaps(png, title, models, grid):
    """grid: model -> {(length, depth): score}"""
    lengths = sorted({L for g in grid.values() for L, _ in g})
    depths = sorted({d for g in grid.values() for _, d in g})
    dat = png[:-4] + ".dat"
    with open(dat, "w") as f:
        for m in models:
            f.write(f"# {m}\n")
            for yi, d in enumerate(depths):
                for xi, L in enumerate(lengths):
                    v = grid[m].get((L, d))
                    f.write(f"{xi} {yi} {100 * v if v is not None else 'NaN'}\n")
            f.write("\n\n")
    cols = min(len(models), 4)
    rows = (len(models) + cols - 1) // cols
    xt = ", ".join(f"'{klabel(L)}' {i}" for i, L in enumerate(lengths))
    yt = ", ".join(f"'{d}' {i}" for i, d in enumerate(depths))
    body = "".join(f"set title '{m}' noenhanced\nplot '{dat}' index {i} using 1:2:3 with image notitle, "
                   f"'' index {i} using 1:2:(sprintf('%.0f', $3)) with labels notitle\n" for i, m in enumerate(models))
    ok = gnuplot(f"""set terminal pngcairo size {330 * cols},{260 * rows} font 'sans,9'
set output '{png}'
set palette defined (0 '#b2182b', 50 '#fee08b', 100 '#1a9850')
set cbrange [0:100]
unset colorbox
set xlabel 'length'
set ylabel 'depth %'
set xrange [-0.5:{len(lengths) - 0.5}]
set yrange [-0.5:{len(depths) - 0.5}]
set xtics ({xt})
set ytics ({yt})
set datafile missing 'NaN'
set multiplot layout {rows},{cols} title '{title}'
{body}unset multiplot
""")
    os.remove(dat)
    return ok


def write_csv_json(base, header, rows):
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    with open(base + ".json", "w") as f:
        json.dump([dict(zip(header, r)) for r in rows], f, indent=1)


def fmt(v, pct=True):
    if v is None:
        return "-"
    return f"{100 * v:.0f}" if pct else f"{v:.2f}"


def collect_curves(runs_root):
    """(stage, run) -> [(step, validation loss)] from the runs' metrics.jsonl (grid runs as grid/<run>)."""
    curves = {}
    for sweep in ("students", "grid"):  # (the probe's curves are in its own table)
        d = os.path.join(runs_root, sweep)
        if not os.path.isdir(d):
            continue
        for run in sorted(os.listdir(d)):
            for stage in ("distill", "lora"):
                mf = os.path.join(d, run, stage, "metrics.jsonl")
                if os.path.exists(mf):
                    pts = [(r["step"], r["val_loss"]) for r in records_any(mf) if r.get("val_loss") is not None]
                    if pts:
                        curves[(stage, run if sweep == "students" else f"grid/{run}")] = pts
    return curves


def curves_plot(png, curves):
    if not curves:
        return False
    dat = png[:-4] + ".dat"
    idx = {"distill": [], "lora": []}
    with open(dat, "w") as f:
        for i, ((stage, name), pts) in enumerate(curves.items()):
            f.write(f"# {stage} {name}\n" + "".join(f"{s} {v}\n" for s, v in pts) + "\n\n")
            idx[stage].append((i, name))
    plot = lambda st: ", ".join(f"'{dat}' index {i} using 1:2 with lines lw 2 title '{n}' noenhanced"
                                 for i, n in idx[st]) or "0 notitle"
    ok = gnuplot(f"""set terminal pngcairo size 1400,560 font 'sans,9'
set output '{png}'
set multiplot layout 1,2
set grid
set key outside right
set xlabel 'optimizer step (8 x 1024 tokens)'
set title 'stage 1: validation attention MSE x1000'
set logscale y
plot {plot('distill')}
unset logscale y
set title 'stage 2 (LoRA): validation cross-entropy'
plot {plot('lora')}
unset multiplot
""")
    os.remove(dat)
    return ok


def records_any(path):
    """Every JSON line of a file (a torn last line is skipped)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def read_prior(prior, parts):
    """An earlier docs/results: its records unpacked with the runs' parts over them (the runs win task
    by task, where they hold a scored record), its archived training curves, and from its README.md
    the "made by" rows by model, the training sections by sweep and the devices each task ran on."""
    if not os.path.isdir(prior) or not any(os.path.isfile(os.path.join(prior, f)) for f in ("README.md", "records.tar.xz")):
        sys.exit(f"repro_report: --prior {prior}: not an earlier docs/results (no README.md or records.tar.xz there)")
    merged = tempfile.mkdtemp(prefix="repro_prior_")
    atexit.register(shutil.rmtree, merged, True)
    rec = os.path.join(prior, "records.tar.xz")
    if os.path.isfile(rec):
        with tarfile.open(rec, "r:xz") as tf:
            try:
                tf.extractall(merged, filter="data")
            except TypeError:  # Python without extraction filters (< 3.11.4): our own archive
                tf.extractall(merged)
    curves = {}
    cdir = os.path.join(merged, CURVES_DIR)
    if os.path.isdir(cdir):
        for root, _, files in os.walk(cdir):
            for f in files:
                stage, _, name = os.path.relpath(os.path.join(root, f), cdir)[:-len(".json")].partition(os.sep)
                with open(os.path.join(root, f)) as fh:
                    curves[(stage, name.replace(os.sep, "/"))] = [tuple(p) for p in json.load(fh)]
        shutil.rmtree(cdir)
    prior_cells = {(m, t) for m in os.listdir(merged) for t in os.listdir(os.path.join(merged, m))}
    if os.path.isdir(parts):
        for m in os.listdir(parts):
            for t in os.listdir(os.path.join(parts, m)):
                # an eval that failed or is still running (no scored record) does not replace earlier records
                f = os.path.join(parts, m, t, "results.jsonl")
                if not (os.path.exists(f) and records(f)):
                    continue
                dst = os.path.join(merged, m, t)
                prior_cells.discard((m, t))
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(os.path.join(parts, m, t), dst)
    prior_tasks = {t for _, t in prior_cells}  # tasks some of whose records are still the prior's
    made_by, training, section, in_made_by = {}, {}, None, False
    readme = os.path.join(prior, "README.md")
    lines = open(readme).read().split("\n") if os.path.isfile(readme) else []
    run_on = {}  # task -> the devices its section names (the records do not say)
    for line in lines:
        if line.startswith("## "):
            t = line[3:].split(" ")[0]
            if "; run on " in line and t in prior_tasks:
                run_on[t] = line.rsplit("; run on ", 1)[1].rstrip(")")
            section = line[len("## Training: "):].split(" ")[0] if line.startswith("## Training: ") else None
            if section:
                training[section] = []
            continue
        if section:
            training[section].append(line)
        elif line == "| model | made by |":
            in_made_by = True
        elif in_made_by and line.startswith("| ") and "`" in line:
            made_by[line.split("|")[1].strip()] = line
        elif not line.startswith("|"):
            in_made_by = False
    return {"parts": merged, "made_by": made_by, "run_on": run_on, "curves": curves,
            "training": {k: "\n".join(v).strip() for k, v in training.items()}}


def merge_md_table(prior_body, runs_body):
    """The runs' sweep table with the prior's rows of other runs kept (rows keyed by their first cell;
    the runs' rows win, prior rows with another column count are dropped)."""
    def split(body):
        tab = [l for l in body.split("\n") if l.startswith("|")]
        rest = [l for l in body.split("\n") if l and not l.startswith("|")]
        return tab[:2], tab[2:], rest
    head, runs_rows, rest = split(runs_body)
    _, prior_rows, _ = split(prior_body)
    if not head:
        return runs_body
    key = lambda l: l.split("|")[1].strip()
    new = {key(l): l for l in runs_rows}
    ncol = head[0].count("|")
    rows = [new.pop(key(l), l) for l in prior_rows if l.count("|") == ncol or key(l) in new]
    return "\n".join(head + rows + list(new.values()) + ([""] + rest if rest else []))


def merge_csv(prior_csv, runs_csv, out):
    """train_<sweep>.csv: the prior's rows of other runs, then the runs' (keyed by the first column)."""
    with open(runs_csv, newline="") as f:
        rd = csv.DictReader(f)
        header, runs_rows = rd.fieldnames, list(rd)
    prior_rows = []
    if os.path.isfile(prior_csv):
        with open(prior_csv, newline="") as f:
            prior_rows = list(csv.DictReader(f))
    k = header[0]
    new = {r[k]: r for r in runs_rows}
    rows = [new.pop(r.get(k), r) for r in prior_rows] + list(new.values())
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore", restval="")
        w.writeheader()
        w.writerows(rows)


def copy_prior(prior, docs, name):
    src = os.path.join(prior, name)
    if os.path.isfile(src) and os.path.abspath(src) != os.path.abspath(os.path.join(docs, name)):
        shutil.copy(src, os.path.join(docs, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/repro")
    ap.add_argument("--docs", default="docs/results")
    ap.add_argument("--parts", default=None, help="eval parts folder (default <runs>/eval/parts)")
    ap.add_argument("--prior", default=None, help="an earlier docs/results to report beside the runs")
    a = ap.parse_args()
    parts = a.parts or os.path.join(a.runs, "eval", "parts")
    os.makedirs(a.docs, exist_ok=True)
    prior = read_prior(a.prior, parts) if a.prior else None
    if prior:
        parts = prior["parts"]
    models = sorted(os.listdir(parts), key=lambda m: (m != "teacher", m)) if os.path.isdir(parts) else []
    data = {m: {} for m in models}  # model -> task -> cells
    tasks = set()
    for m in models:
        for t in sorted(os.listdir(os.path.join(parts, m))):
            f = os.path.join(parts, m, t, "results.jsonl")
            if os.path.exists(f):
                data[m][t] = cells(records(f))
                tasks.add(t)
    md = ["# Results: retriever13m distilled at 1K tokens into LAWCAT, evaluated to 32K", "",
          "Generated by `python3 scripts/repro_report.py` (the `report` stage of `scripts/repro.sh`) from the",
          "records `lawcat eval` wrote and the tables `lawcat sweep` wrote. NOTES.md beside this file says",
          "what the experiments show and why; every figure here is from those records.", ""]

    # ---- headline ----
    pk_lengths = sorted({L for m in models for (_, L, _) in data[m].get("passkey", {})})
    lp_marks = [1024, 4096, 16384, 32768]
    header = ["model"] + [f"passkey {klabel(L)} %" for L in pk_lengths] + \
             [f"ppl 1K {v}" for k, v in PPL.items() if k in tasks] + \
             [f"NLL @{klabel(L)}" for L in lp_marks if any((("", L, -1) in data[m].get("longppl", {})) for m in models)]
    rows = []
    for m in models:
        r = [m]
        pk = data[m].get("passkey", {})
        for L in pk_lengths:
            vs = [(s, n) for (v, LL, d), (s, n) in pk.items() if LL == L]
            r.append(fmt(sum(s * n for s, n in vs) / sum(n for _, n in vs)) if vs else "-")
        for k in PPL:
            if k in tasks:
                c = data[m].get(k, {})
                r.append(fmt(next(iter(c.values()))[0], pct=False) if c else "-")
        for L in lp_marks:
            if any((("", L, -1) in data[mm].get("longppl", {})) for mm in models):
                c = data[m].get("longppl", {}).get(("", L, -1))
                r.append(fmt(c[0], pct=False) if c else "-")
        rows.append(r)
    write_csv_json(os.path.join(a.docs, "summary"), header, rows)
    md += ["## Headline", "",
           "Passkey: % correct over 5 depths x samples per length (fixed eval seed 0). Perplexity at 1K",
           "tokens on held-out text. NLL @L: mean NLL (nats/token) of the 1K-token bucket ending at L in",
           "long held-out Gutenberg books (one pass over the first 32K tokens of each).", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    # Students edited after training (the sharpen stage, NOTES.md's sixth round): name <- command.
    edited = []
    for m in models:
        f = os.path.join(a.runs, "students", m, "perturb.txt")
        if os.path.isfile(f):
            with open(f) as fh:
                edited.append(f"| {m} | `{fh.read().strip()}` |")
        elif prior and m in prior["made_by"]:
            edited.append(prior["made_by"][m])
    if edited:
        md += ["Rows named `<student>_L<layer>h<head>x<scale>` (or `_L<layer>x<scale>`: every head of the",
               "layer) are that student with the feature map of one layer's heads multiplied by the scale",
               "after training (not part of the paper's method; the scale picked on eval seed 1, never on the",
               "seed 0 reported here):", "", "| model | made by |", "|---|---|"] + edited + [""]

    # ---- passkey detail ----
    if "passkey" in tasks:
        grid = {m: {(L, d): s for (_, L, d), (s, n) in data[m].get("passkey", {}).items()} for m in models}
        depths = sorted({d for g in grid.values() for _, d in g})
        hdr = ["model", "length", "depth", "accuracy", "samples"]
        rws = [[m, L, d, round(s, 4), n] for m in models for (_, L, d), (s, n) in sorted(data[m].get("passkey", {}).items())]
        write_csv_json(os.path.join(a.docs, "passkey"), hdr, rws)
        md += ["## Passkey by length and depth (% correct)", "",
               "| model | length | " + " | ".join(f"depth {d}" for d in depths) + " |",
               "|---|---|" + "---|" * len(depths)]
        for m in models:
            for L in pk_lengths:
                md.append(f"| {m} | {klabel(L)} | " + " | ".join(fmt(grid[m].get((L, d))) for d in depths) + " |")
        md.append("")
        heatmaps(os.path.join(a.docs, "passkey_heatmap.png"), "passkey accuracy (%), length x depth", models, grid)
        by_length = {m: [(L, 100 * sum(s for (LL, _), s in grid[m].items() if LL == L) /
                              max(1, sum(1 for (LL, _) in grid[m] if LL == L))) for L in pk_lengths] for m in models}
        lines_plot(os.path.join(a.docs, "passkey_vs_length.png"), "passkey accuracy vs context length",
                   "context length (tokens)", "accuracy (%)", by_length, yrange="[-5:105]")
        # the same for the models the NOTES compare (readable beside the all-models plot)
        key = [m for m in KEY_MODELS if m in grid]
        if key:
            lines_plot(os.path.join(a.docs, "passkey_vs_length_key.png"), "passkey accuracy vs context length (key models)",
                       "context length (tokens)", "accuracy (%)", {m: by_length[m] for m in key}, yrange="[-5:105]")

    # ---- long-document NLL by position ----
    if "longppl" in tasks:
        hdr = ["model", "position_end", "mean_nll", "documents"]
        rws = [[m, L, round(s, 5), n] for m in models for (_, L, _), (s, n) in sorted(data[m].get("longppl", {}).items())]
        write_csv_json(os.path.join(a.docs, "longppl"), hdr, rws)
        lines_plot(os.path.join(a.docs, "nll_by_position.png"),
                   "held-out Gutenberg books: mean NLL per 1K-token bucket (teacher trained at 1K)",
                   "position (tokens, bucket end)", "NLL (nats/token)",
                   {m: [(L, s) for (_, L, _), (s, n) in data[m].get("longppl", {}).items()] for m in models})

    # ---- other tasks, when run ----
    for t in sorted(tasks - {"passkey", "longppl"} - set(PPL)):
        hdr = ["model", "variant", "length", "depth", "score", "samples"]
        rws = [[m, v, L, d, round(s, 4), n] for m in models for (v, L, d), (s, n) in sorted(data[m].get(t, {}).items())]
        write_csv_json(os.path.join(a.docs, t), hdr, rws)
        devices = set()
        for m in models:
            for j in ("niah.json", "babilong.json", "ppl.json"):
                f = os.path.join(parts, m, t, j)
                if os.path.exists(f):
                    with open(f) as fh:
                        devices.add(json.load(fh).get("settings", {}).get("device", "?"))
        if prior and t in prior["run_on"]:
            devices |= set(d for d in prior["run_on"][t].split(", ") if d != "?")
        md += [f"## {t} (% correct, mean over depths; run on {', '.join(sorted(devices)) or '?'})", ""]
        variants = sorted({v for m in models for (v, _, _) in data[m].get(t, {})})
        lens = sorted({L for m in models for (_, L, _) in data[m].get(t, {})})
        md += ["| model | variant | " + " | ".join(klabel(L) for L in lens) + " |", "|---|---|" + "---|" * len(lens)]
        for m in models:
            if not data[m].get(t):
                continue
            for v in variants:
                vals = []
                for L in lens:
                    vs = [(s, n) for (vv, LL, d), (s, n) in data[m].get(t, {}).items() if vv == v and LL == L]
                    vals.append(fmt(sum(s * n for s, n in vs) / sum(n for _, n in vs)) if vs else "-")
                md.append(f"| {m} | {v} | " + " | ".join(vals) + " |")
        md.append("")

    # ---- the diagnosis sweep's passkey (configs/repro/probe.yaml; scripts/gpu_repro.sh probe) ----
    probe = os.path.join(a.runs, "eval", "probe_parts")
    if os.path.isdir(probe):
        pm = sorted(os.listdir(probe), key=lambda m: (m != "teacher", m))
        pc = {m: cells(records(os.path.join(probe, m, "passkey", "results.jsonl"))) for m in pm
              if os.path.exists(os.path.join(probe, m, "passkey", "results.jsonl"))}
        lens = sorted({L for c in pc.values() for (_, L, _) in c})
        depths = sorted({d for c in pc.values() for (_, _, d) in c})
        md += ["## Diagnosis sweep: passkey (% correct; configs/repro/probe.yaml, 600 + 300 steps)", "",
               "| model | " + " | ".join(f"{klabel(L)} depth {d}" for L in lens for d in depths) + " |",
               "|---|" + "---|" * (len(lens) * len(depths))]
        for m, c in pc.items():
            md.append(f"| {m} | " + " | ".join(fmt(c.get(("", L, d), (None,))[0]) for L in lens for d in depths) + " |")
        md.append("")

    # ---- training ----
    for sweep in ("students", "probe", "grid"):
        p = os.path.join(a.runs, sweep, "results.md")
        prior_sec = prior["training"].get(sweep) if prior else None
        title = f"## Training: {sweep} (`lawcat sweep configs/repro/{sweep}.yaml`)"
        if os.path.exists(p):
            with open(p) as f:
                body = f.read().split("\n", 3)[-1].strip()
            csv_out = os.path.join(a.docs, f"train_{sweep}.csv")
            if prior_sec:  # a sweep of a few students (--only): the prior's other students stay
                body = merge_md_table(prior_sec, body)
                merge_csv(os.path.join(a.prior, f"train_{sweep}.csv"), os.path.join(a.runs, sweep, "results.csv"), csv_out)
            else:
                shutil.copy(os.path.join(a.runs, sweep, "results.csv"), csv_out)
            md += [title, "", body, ""]
        elif prior_sec:
            md += [title, "", prior_sec, ""]
            copy_prior(a.prior, a.docs, f"train_{sweep}.csv")
    curves = collect_curves(a.runs)
    if prior:
        for k, v in prior["curves"].items():
            curves.setdefault(k, v)
    curves = dict(sorted(curves.items()))  # the same colours whichever way the curves were gathered
    # A prior whose curves.png was drawn without archiving its curves (no archived curves, or a
    # curves_added.png beside it) keeps that plot; every archived or new curve goes beside it.
    prior_png_only = prior and os.path.isfile(os.path.join(a.prior, "curves.png")) and (
        not prior["curves"] or os.path.isfile(os.path.join(a.prior, "curves_added.png")))
    if prior_png_only:
        copy_prior(a.prior, a.docs, "curves.png")
        if curves and curves_plot(os.path.join(a.docs, "curves_added.png"), curves):
            print("repro_report: the prior's curves.png kept (drawn before curves were archived); the other curves in curves_added.png")
    else:
        curves_plot(os.path.join(a.docs, "curves.png"), curves)

    # ---- raw records (and the training curves, so that a later --prior can redraw them) ----
    if os.path.isdir(parts):
        with tarfile.open(os.path.join(a.docs, "records.tar.xz"), "w:xz") as tf:
            for m in models:
                for t in sorted(os.listdir(os.path.join(parts, m))):
                    f = os.path.join(parts, m, t, "results.jsonl")
                    if os.path.exists(f):
                        tf.add(f, arcname=f"{m}/{t}/results.jsonl")
            for (stage, name), pts in sorted(curves.items()):
                data = json.dumps(pts).encode()
                info = tarfile.TarInfo(f"{CURVES_DIR}/{stage}/{name}.json")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    md += ["## Commands", "",
           "```", "scripts/repro.sh            # on the GPU machine (scripts/gpu_repro.sh carries the data); resumable",
           "```", "",
           "What it runs: `lawcat tasks` (retrieval-task text, training seeds), `lawcat sweep",
           "configs/repro/students.yaml --shard i/n` (all students in parallel on one GPU), `lawcat eval --task",
           "passkey|niah|babilong|ppl|longppl` per model into eval/parts/<model>/<task>, then this report.",
           "Plots: passkey_heatmap.png, passkey_vs_length.png (passkey_vs_length_key.png: the models NOTES.md compares), nll_by_position.png, curves.png"
           + (" (curves_added.png: the training curves of later runs)" if os.path.isfile(os.path.join(a.docs, "curves_added.png")) else "") + ".", ""]
    with open(os.path.join(a.docs, "README.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"repro_report: wrote {a.docs}/README.md ({len(models)} models, tasks: {', '.join(sorted(tasks))})")


if __name__ == "__main__":
    main()
