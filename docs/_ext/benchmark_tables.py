"""Sphinx directives that render the benchmark JSON of ``benchmarks/results/`` as tables.

The performance page types no measured figure by hand: each table is made, at build time,
from the JSON file a benchmark command wrote (``--output``), so a new recorded run changes
the page with nothing else to edit. Every directive takes paths relative to
``benchmarks/results/`` and marks them as dependencies of the page (a changed file rebuilds it).

``benchmark-run FILE``
    ``python -m benchmarks.run``: the machine, then one table per workload.
``benchmark-longrun BEFORE AFTER``
    ``python -m benchmarks.longrun``: two runs side by side (before/after a change).
``benchmark-reference FILE``
    ``python -m benchmarks.reference``: arraynn's best preset next to PyTorch's reference.
``benchmark-onnx FILE``
    ``python -m benchmarks.onnx_check``: ONNX graphs against their models.
``benchmark-conv-step FILE``
    ``python -m benchmarks.conv_step``: one training step of a convolutional network, arraynn
    next to ``torch.nn`` (time and peak memory).
``benchmark-recorded FILE runs|reference-seeds|timings``
    Figures recorded by hand from the commands' output (``recorded.json``: each with its
    CPU), one row per command, per seed, or per timed case.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _sec(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f} s"


def _sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines + [""]


def _blas_pool(pool: dict) -> str:
    arch = pool.get("architecture")
    return (f"{pool.get('internal_api')} {(pool.get('version') or '').split('.188')[0]}"
            + (f" with its `{arch}` kernels" if arch else "") + f", {pool.get('num_threads')} threads")


def _blas(threadpools: dict | list) -> str:
    """OpenBLAS's kernel architecture and threads, as threadpoolctl saw them: in NumPy's
    worker (a dict of processes' pools), or in the one process (a list: its first BLAS)."""
    if isinstance(threadpools, list):
        pools = [p for p in threadpools if p.get("user_api") == "blas"]
        return _blas_pool(pools[0]) if pools else "BLAS not recorded"
    for name, pools in threadpools.items():
        if name.startswith("numpy"):
            for pool in pools:
                if pool.get("user_api") == "blas":
                    return _blas_pool(pool)
    return "BLAS not recorded"


def machine_line(doc: dict) -> str:
    m = doc["machine"]
    v = m["versions"]
    libs = ", ".join(f"{name} {v[name]}" for name in ("numpy", "numba", "torch", "sklearn", "arraynn")
                     if v.get(name))
    unset = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if m.get("env", {}).get(k) is None]
    return (f"**CPU:** {m['cpu_count']} vCPUs of an {m['cpu_model']} ({_blas(m.get('threadpools', {}))}); "
            f"Python {m['python']}, {libs}; {doc['data']}; recorded {doc['date'][:10]} by "
            f"`{doc['command']}`" + (f" ({' and '.join(f'`{k}`' for k in unset)} unset)." if unset else "."))


def run_tables(doc: dict) -> list[str]:
    lines = [machine_line(doc), ""]
    for name, workload in doc["workloads"].items():
        lines += [f"**{name}**: {workload['description']}", ""]
        rows = []
        for r in workload["results"]:
            ratio = r.get("ratio", {})
            epochs = r.get("warmup", 0) + r.get("repeats", 0)
            rows.append([
                r["label"] + (" (Numba pass)" if r.get("numba_updates") else ""),
                _sec(r["median_s"]),
                f"{r['samples_per_s']:,.0f}",
                f"{ratio['torch']:.2f}x" if "torch" in ratio else "–",
                f"{ratio['numpy']:.2f}x" if "numpy" in ratio else "–",
                _pct(r.get("roofline_share"), 0),
                f"{_pct(r.get('accuracy'))} ({epochs} epochs)",
            ])
        lines += _table(["implementation", "median epoch", "samples/s", "vs PyTorch", "vs plain NumPy",
                         "GEMM roofline", "test accuracy"], rows)
        gemm = workload.get("gemm", {})
        if gemm:
            parts = [f"{lib} {_sec(g['median_s'])} ({g['gflops']:.0f} GFLOP/s)" for lib, g in gemm.items()]
            lines += ["GEMM-only epoch: " + "; ".join(parts) + ".", ""]
    return lines


def longrun_table(before: dict, after: dict) -> list[str]:
    shares = list(after["final_subnormal_share"])
    rows = []
    for label, doc in (("before", before), ("after", after)):
        rows.append([
            label, _pct(doc["test_accuracy"]), _sec(doc["train_seconds"], 1),
            f"{doc['first_epoch_seconds']:.2f} / {doc['last_epoch_seconds']:.2f} s",
            f"{doc['late_over_early']:.2f}",
            ", ".join(_pct(doc["final_subnormal_share"].get(k), 1) for k in shares),
        ])
    cpu = (f"**CPU:** {after['cpu']}; {after['backend']}; Python {after['python']}; the `{after['preset']}` "
           f"preset, {after['epochs']} epochs, seed {after['seed']}; {after['data']}.")
    return [cpu, ""] + _table(
        ["", "test accuracy", "training", "first / last epoch", "late / early epochs",
         "subnormal at the end: " + ", ".join(shares)], rows)


def reference_table(doc: dict) -> list[str]:
    rows = []
    for r in doc["rows"]:
        per_epoch = r["train_seconds"] / r["epochs"]
        rows.append([f"{r['name']} (seed {r.get('seed', 0)})", r.get("version", ""), str(r["epochs"]),
                     _pct(r["test_accuracy"]), _sec(r["train_seconds"], 1), _sec(per_epoch, 2),
                     _sec(_loop_seconds(r), 1)])
    spread = ""
    torch_rows = [r for r in doc["rows"] if r.get("epoch_seconds")]
    if torch_rows:
        e = [t for r in torch_rows for t in r["epoch_seconds"]]
        runs = f" in its {len(torch_rows)} runs" if len(torch_rows) > 1 else ""
        spread = (f" The reference's epochs ranged {min(e):.1f}-{max(e):.1f} s{runs} "
                  f"(median {statistics.median(e):.2f} s).")
    return ([f"**CPU:** {doc['cpus']} vCPUs of an {doc['cpu']}.{spread}", ""]
            + _table(["run", "version", "epochs", "test accuracy", "training time", "per epoch",
                      "epoch loop"], rows, ["---", "---", "---:", "---:", "---:", "---:", "---:"]))


def _loop_seconds(row: dict) -> float:
    """The epochs' steps alone (``loop_seconds``; in files written before it, arraynn's
    ``epoch_seconds_total`` or the sum of the reference's ``epoch_seconds``)."""
    if "loop_seconds" in row:
        return float(row["loop_seconds"])
    if "summary" in row:
        return float(row["summary"]["epoch_seconds_total"])
    return float(sum(row["epoch_seconds"]))


def onnx_table(rows_in: list[dict]) -> list[str]:
    rows = []
    for r in rows_in:
        rows.append([
            r["model"], f"{r['network']}, {r['preprocessing']}", _pct(r["same_labels"], 0),
            _sci(r["max_abs_probability_difference"]),
            f"{_sci(r['arraynn_float32_vs_float64'])} / {_sci(r['onnx_vs_float64'])}",
            _sci(r["batch_1_max_difference"]),
            f"{_pct(r['accuracy_arraynn'])} / {_pct(r['accuracy_onnx'])}",
            f"{1000 * r['seconds_arraynn']:.0f} / {1000 * r['seconds_onnxruntime']:.0f} ms",
            f"{r['onnx_bytes'] / 1e6:.2f} MB",
        ])
    return _table(["run", "network, preprocessing", "same labels", "max probability difference",
                   "float32 vs float64: arraynn / ONNX", "batch of 1 vs 10,000",
                   "test accuracy: arraynn / ONNX", "10,000 images: arraynn / onnxruntime", "graph"], rows,
                  ["---", "---"] + ["---:"] * 7)


def conv_step_table(doc: dict) -> list[str]:
    m = doc["machine"]
    head = (f"**CPU:** {m['cpu_count']} vCPUs of an {m['cpu_model']}, {doc['threads']} threads "
            f"({_blas(doc.get('threadpools', {}))}); recorded {doc['date'][:10]} by `{doc['command']}`. "
            f"Network `{doc['network']}` on {'x'.join(map(str, doc['input_shape']))} images, "
            f"{doc['n_params']:,} parameters, batch {doc['batch_size']}, {doc['dtype']}, "
            f"{doc['optimizer']}. Time: {doc['time_method']}. Memory: {doc['memory_method']}.")
    rows = []
    for r in doc["peers"]:
        mem = r.get("memory") or {}
        peak = mem.get("peak_growth_mib")
        rows.append([r["label"], f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}",
                     "–" if peak is None else f"{peak:.1f}",
                     "–" if r.get("vs_pytorch") is None else f"{r['vs_pytorch']:.2f}x"])
    header = ["peer", "ms/step (median)", "min", "peak MiB of one step", "vs PyTorch"]
    return [head, ""] + _table(header, rows)


def _seconds(v: float | list[float]) -> str:
    return f"{v[0]:.1f}-{v[1]:.1f} s" if isinstance(v, list) else f"{v:.1f} s"


def recorded_runs_table(doc: dict) -> list[str]:
    """``recorded.json``'s runs: accuracy and training time per CPU."""
    rows = []
    for run in doc["runs"]:
        acc = ", ".join(f"{100 * a:.2f} % ({cpu})" for cpu, a in run["accuracy"].items())
        if "article" in run:
            acc += f"; article: {100 * run['article']:.2f} %"
        secs = ", ".join(f"{_seconds(s)} ({cpu})" for cpu, s in run["seconds"].items())
        rows.append([run["command"], acc, secs])
    cpus = "; ".join(f"**{name}**: {what}" for name, what in doc["cpus"].items())
    return [f"{doc['conditions']}. {cpus}.", ""] + _table(["command", "test accuracy", "training time"], rows)


def recorded_seeds_table(doc: dict) -> list[str]:
    """``recorded.json``'s reference runs over seeds, with their mean."""
    ref = doc["reference_seeds"]
    rows = [[seed, f"{100 * a[0]:.2f} % in {a[1]:.1f} s", f"{100 * r[0]:.2f} % in {r[1]:.1f} s"]
            for seed, a, r in ref["rows"]]
    first = [row for row in ref["rows"] if row[0].isdigit()]
    if len(first) > 1:
        mean = [statistics.mean(v) for v in zip(*(row[1] for row in first))]
        mean_ref = [statistics.mean(v) for v in zip(*(row[2] for row in first))]
        rows.insert(len(first), [f"mean of seeds {first[0][0]}-{first[-1][0]}",
                                 f"{100 * mean[0]:.2f} % in {mean[1]:.1f} s",
                                 f"{100 * mean_ref[0]:.2f} % in {mean_ref[1]:.1f} s"])
    head = f"`{ref['command']}` on the {ref['cpu']} ({ref['versions']}):"
    return [head, ""] + _table(["seed", "`arraynn --preset best`", "PyTorch reference"], rows,
                               ["---", "---:", "---:"])


def recorded_timings_table(doc: dict) -> list[str]:
    """``recorded.json``'s other timings: one row per figure, grouped by what was compared."""
    rows = []
    for group in doc["timings"]["rows"]:
        cpu = group["cpu"] + (f": {doc['cpus'][group['cpu']]}" if group["cpu"] in doc["cpus"] else "")
        for i, (what, figure) in enumerate(group["figures"]):
            rows.append([f"{group['what']} ({cpu}); {group['command']}" if i == 0 else "",
                         what, figure])
    return _table(["measurement", "case", "time"], rows, ["---", "---", "---:"])


class _BenchmarkDirective(SphinxDirective):
    has_content = False
    optional_arguments = 0

    def _load(self, name: str):
        path = RESULTS / name
        self.env.note_dependency(str(path))
        return json.loads(path.read_text(encoding="utf-8"))

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        try:
            lines = self.lines()
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise self.error(f"{self.name}: cannot render {' '.join(self.arguments)}: {exc!r}") from exc
        container = nodes.container(classes=["benchmark-table"])
        source = f"benchmarks/results/{self.arguments[0]}"
        self.state.nested_parse(StringList(lines, source=source), self.content_offset, container)
        return [container]


class BenchmarkRun(_BenchmarkDirective):
    required_arguments = 1

    def lines(self) -> list[str]:
        return run_tables(self._load(self.arguments[0]))


class BenchmarkLongrun(_BenchmarkDirective):
    required_arguments = 2

    def lines(self) -> list[str]:
        return longrun_table(self._load(self.arguments[0]), self._load(self.arguments[1]))


class BenchmarkReference(_BenchmarkDirective):
    required_arguments = 1

    def lines(self) -> list[str]:
        return reference_table(self._load(self.arguments[0]))


class BenchmarkOnnx(_BenchmarkDirective):
    required_arguments = 1

    def lines(self) -> list[str]:
        return onnx_table(self._load(self.arguments[0]))


class BenchmarkConvStep(_BenchmarkDirective):
    required_arguments = 1

    def lines(self) -> list[str]:
        return conv_step_table(self._load(self.arguments[0]))


class BenchmarkRecorded(_BenchmarkDirective):
    required_arguments = 2

    def lines(self) -> list[str]:
        doc = self._load(self.arguments[0])
        table = {"runs": recorded_runs_table, "reference-seeds": recorded_seeds_table,
                 "timings": recorded_timings_table}[self.arguments[1]]
        return table(doc)


def _included_readme(app, relative_path, parent_docname, content) -> None:
    """benchmarks/README.md links its JSON files, which are not pages: show them as paths."""
    if Path(relative_path).as_posix().endswith("benchmarks/README.md"):
        content[0] = re.sub(r"\[(`[^`\]]+`)\]\((results/[^)]+\.json)\)", r"\1", content[0])


def setup(app):
    app.connect("include-read", _included_readme)
    app.add_directive("benchmark-run", BenchmarkRun)
    app.add_directive("benchmark-longrun", BenchmarkLongrun)
    app.add_directive("benchmark-reference", BenchmarkReference)
    app.add_directive("benchmark-onnx", BenchmarkOnnx)
    app.add_directive("benchmark-conv-step", BenchmarkConvStep)
    app.add_directive("benchmark-recorded", BenchmarkRecorded)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
