"""Audit reports assembled from the database queries in `storage.audit`: the summary and the plots."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cascade.router.config import CascadeConfig
from cascade.router.intervals import shown
from cascade.router.risk import live_bound, live_tier
from cascade.storage import audit, live_audit
from cascade.storage.batches import get_batch
from cascade.storage.engine import session_scope


def make_filter(database_url: str, *, batch: str | None, since, until, tier: str | None, key: str | None = None) -> audit.AuditFilter:
    batch_id = key_id = None
    with session_scope(database_url) as session:
        if batch:
            batch_id = get_batch(session, batch).id
        if key:
            from cascade.storage.keys import ApiKeyError, key_by_name

            row = key_by_name(session, key)
            if row is None:
                raise ApiKeyError(f"no API key named {key!r}: see `cascade keys list`")
            key_id = row.id
    return audit.AuditFilter(batch_id=batch_id, since=since, until=until, tier=tier, api_key_id=key_id)


def live(database_url: str, config: CascadeConfig, where: audit.AuditFilter, *, window_s: float | None = None,
         confidence: float | None = None) -> dict[str, Any]:
    """The live audit from shadow attempts: per tier that keeps answers (and per time window), the
    agreement of its kept answers with the last tier and its share of the PD against the last tier
    alone, with 95% intervals; with `confidence`, a lower bound on the whole cascade's PD."""
    keepers = [t.name for t in config.tiers[:-1]]
    with session_scope(database_url) as session:
        finished = live_audit.finished_jobs(session, where)
        counts = live_audit.shadow_counts(session, where, keepers, config.last.name)
        windows = live_audit.shadow_counts(session, where, keepers, config.last.name, window_s=window_s) if window_s else []
        cost = live_audit.audit_cost(session, where)
    tiers = [live_tier(c, finished) for c in counts]
    report: dict[str, Any] = {
        "finished_jobs": finished,
        "last_tier": config.last.name,
        "tiers": [vars(t) for t in tiers],
        "pd_pp": round(sum(t.pd_pp for t in tiers if t.pd_pp is not None), 2) if any(t.shadowed for t in tiers) else None,
        "audit_cost": cost,
    }
    if confidence is not None:
        report.update(confidence=confidence, pd_bound=live_bound(tiers, counts, finished, confidence))
    if window_s:
        # Within a window a tier's share is of the jobs it kept there, over all jobs finished overall.
        report["windows"] = [
            {"start": c.window_start_s, **vars(live_tier(c, max(finished, 1)))}
            for c in windows
        ]
    return report


def format_live(report: dict[str, Any]) -> str:
    lines = [f"{'tier':<14}{'kept share':>11}{'shadowed':>10}{'agreement':>24}{'PD vs ' + report['last_tier']:>30}  basis"]
    for t in report["tiers"]:
        agreement = "-" if t["agreement"] is None else f"{t['agreement']:.1f}%{shown(t['agreement_interval'])}"
        pd = "-" if t["pd_pp"] is None else f"{t['pd_pp']:+.2f}{shown(t['pd_interval'], signed=True)} pp"
        lines.append(f"{t['tier']:<14}{t['share']:>10.1%}{t['shadowed']:>10}{agreement:>24}{pd:>30}  {t['kind']}")
    if report["pd_pp"] is None:
        lines.append("no shadow attempts here: give the tiers before the last a shadow_rate (e.g. 0.02)")
    else:
        lines.append(f"live PD vs {report['last_tier']} alone: {report['pd_pp']:+.2f} pp over {report['finished_jobs']} finished jobs"
                     + (f"; >= {report['pd_bound']:+.2f} pp at confidence {report['confidence']}" if report.get("pd_bound") is not None else ""))
    cost = report["audit_cost"]
    lines.append(f"audit cost: {cost['attempts']} shadow attempts, {cost['flops']:.3g} FLOPs, ${cost['cost_usd']:.4f}")
    for w in report.get("windows", []):
        pd = "-" if w["pd_pp"] is None else f"{w['pd_pp']:+.2f}{shown(w['pd_interval'], signed=True)} pp"
        lines.append(f"  window {datetime.fromtimestamp(w['start'], UTC).isoformat(timespec='minutes')}  {w['tier']:<12}"
                     f" shadowed {w['shadowed']:>6}  PD {pd}")
    return "\n".join(lines)


def summary(database_url: str, config: CascadeConfig, where: audit.AuditFilter, *, reference_batch: str | None = None) -> dict[str, Any]:
    """Per-tier routing, overall accuracy, cost against the largest tier alone, latency and failures."""
    with session_scope(database_url) as session:
        tiers = audit.tier_summary(session, where, [t.name for t in config.tiers])
        report = audit.overall(session, where)
        report["audit_cost"] = live_audit.audit_cost(session, where)
        largest = audit.largest_tier_cost(
            session, where, first=config.first.name, last=config.last.name, last_params=config.last.params
        )
        reference = None
        if reference_batch:
            if where.batch_id is None:
                raise ValueError("--reference-batch compares two batches: pass --batch as well")
            reference = audit.reference_accuracy(session, where.batch_id, get_batch(session, reference_batch).id)
    flops_alone = largest["largest_alone_flops"]
    reduced = round(100.0 * (1 - report["flops"] / flops_alone), 2) if flops_alone else None
    report.update(
        tiers=tiers,
        largest_tier=config.last.name,
        largest_alone_flops=flops_alone,
        reduced_cc=reduced,
        reduced_cc_estimated=largest["estimated"],
        reduced_cc_interval=None,
        pd_pp=None,
        pd_relative=None,
        pd_interval=None,
        largest_accuracy=None,
        largest_hallucination_rate=None,
    )
    if reference and reference.get("common_rows"):
        report.update(
            pd_pp=reference["pd_pp"],
            pd_relative=reference["pd_relative"],
            pd_interval=reference["pd_interval"],
            largest_accuracy=reference["largest_accuracy"],
            largest_hallucination_rate=reference["largest_hallucination_rate"],
            reference={"batch": reference_batch, **reference},
        )
        if reference.get("reduced_cc") is not None:
            report.update(reduced_cc=reference["reduced_cc"], reduced_cc_estimated=False,
                          reduced_cc_interval=reference["reduced_cc_interval"])
    return report


def format_summary(report: dict[str, Any]) -> str:
    lines = [
        f"{'tier':<14}{'attempts':>9}{'answered':>10}{'escalated':>10}{'failed':>7}{'esc. rate':>10}"
        f"{'P(T) p10/p50/p90':>20}{'P(IK) p50':>10}{'kept acc.':>10}"
    ]
    for t in report["tiers"]:
        p_t = t["p_t"]
        quant = "/".join("-" if p_t[k] is None else f"{p_t[k]:.2f}" for k in ("p10", "p50", "p90"))
        p_ik = "-" if t["p_ik"]["p50"] is None else f"{t['p_ik']['p50']:.2f}"
        kept = "-" if t["accuracy_of_kept"] is None else f"{t['accuracy_of_kept']:.1f}%"
        rate = "-" if t["escalation_rate"] is None else f"{t['escalation_rate']:.1%}"
        lines.append(
            f"{t['tier']:<14}{t['attempts']:>9}{t['answered']:>10}{t['escalated']:>10}{t['failed']:>7}{rate:>10}{quant:>20}{p_ik:>10}{kept:>10}"
        )
    s = report["statuses"]
    lines.append("")
    lines.append(f"jobs {report['jobs']}: done {s['done']}, failed {s['failed']}, queued {s['queued']}, cancelled {s['cancelled']}")
    if report["accuracy"] is not None:
        lines.append(f"accuracy {report['accuracy']:.2f}% on {report['graded']} graded jobs")
    if report.get("open_jobs") and report["hallucination_rate"] is not None:
        lines.append(f"hallucination {report['hallucination_rate']:.2f}% (answered wrongly), abstained {report['abstained']}"
                     f" ({report['abstention_rate'] or 0:.2f}% of done jobs)")
    if report["pd_pp"] is not None:
        relative = "" if report.get("pd_relative") is None else f", {report['pd_relative']:+.2f}% relative"
        lines.append(f"largest tier alone {report['largest_accuracy']:.2f}%  PD {report['pd_pp']:+.2f} pp"
                     f"{shown(report['pd_interval'], signed=True)} (95%){relative}")
    else:
        lines.append("PD: n/a (needs the largest tier on the same rows: demo --reference, or a batch run with --start-tier LARGEST passed as --reference-batch)")
    if report["reduced_cc"] is not None:
        note = " (estimated; a reference batch gives it exactly, with an interval)" if report["reduced_cc_estimated"] else (
            f"{shown(report['reduced_cc_interval'])} (95%)")
        lines.append(f"reduced compute vs {report['largest_tier']} answering everything: {report['reduced_cc']:.2f}%{note}")
    else:
        lines.append(f"reduced compute: n/a ({report['largest_tier']} answered nothing here and its config gives no `params`)")
    lines.append(
        f"tokens {report['tokens_in']:,} in / {report['tokens_out']:,} out, {report['flops']:.3g} FLOPs, ${report['cost_usd']:.4f}"
    )
    audit_cost = report.get("audit_cost") or {}
    if audit_cost.get("attempts"):
        lines.append(f"audit cost (shadow attempts, not in the totals above): {audit_cost['attempts']} attempts, "
                     f"{audit_cost['flops']:.3g} FLOPs, ${audit_cost['cost_usd']:.4f}; see `cascade audit live`")
    lat = report["latency_ms"]
    if lat["p50"] is not None:
        lines.append(f"latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms")
    for err in report["top_errors"]:
        lines.append(f"  {err['count']:>6} x {err['error']}")
    return "\n".join(lines)


def plot(
    database_url: str, config: CascadeConfig, where: audit.AuditFilter, out_dir: Path, *, replay_points=None, reference_batch: str | None = None
) -> list[Path]:
    """PNGs (signal histograms split by correct/incorrect, share answered per tier over time, the
    cost-accuracy frontier when a reference batch gives one) and one self-contained HTML page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with session_scope(database_url) as session:
        histograms = {
            (t.name, signal): audit.signal_histogram(session, where, t.name, signal)
            for t in config.tiers
            for signal in ("p_t", "p_ik")
        }
        timeline = audit.answered_over_time(session, where)
    report = summary(database_url, config, where, reference_batch=reference_batch)

    for (tier, signal), hist in histograms.items():
        if not any(hist["correct"]) and not any(hist["incorrect"]):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        edges = [i / len(hist["correct"]) for i in range(len(hist["correct"]))]
        width = 1.0 / len(edges)
        ax.bar(edges, hist["correct"], width=width, align="edge", alpha=0.6, label="answer correct", color="tab:green")
        ax.bar(edges, hist["incorrect"], width=width, align="edge", alpha=0.6, label="answer wrong", color="tab:red")
        tier_cfg = config.tier(tier) if tier in [t.name for t in config.tiers] else None
        tau = None if tier_cfg is None else (tier_cfg.tau_t if signal == "p_t" else tier_cfg.tau_ik)
        if tau is not None and not (tier_cfg and config.is_last(tier_cfg)):
            ax.axvline(tau, color="black", linestyle="--", label=f"threshold {tau:g}")
        label = "P(T)" if signal == "p_t" else "P(IK)"
        ax.set(title=f"{label} on tier {tier}", xlabel=label, ylabel="attempts", xlim=(0, 1))
        ax.legend()
        written.append(_save(fig, out_dir / f"{signal}_{tier}.png"))
        plt.close(fig)

    if timeline:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = [t.name for t in config.tiers]
        xs = [b["start_s"] for b in timeline]
        totals = [sum(b["counts"].values()) or 1 for b in timeline]
        bottom = [0.0] * len(timeline)
        for name in names:
            share = [b["counts"].get(name, 0) / total for b, total in zip(timeline, totals)]
            ax.bar(xs, share, bottom=bottom, width=(xs[1] - xs[0]) if len(xs) > 1 else 1.0, align="edge", label=name)
            bottom = [b + s for b, s in zip(bottom, share)]
        ax.set(title="share answered per tier over time", xlabel="seconds since the first answer", ylabel="share", ylim=(0, 1))
        ax.legend()
        written.append(_save(fig, out_dir / "answered_over_time.png"))
        plt.close(fig)

    if replay_points:
        from cascade.router.operating_point import frontier

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter([p.reduced_cc for p in replay_points], [p.accuracy for p in replay_points], s=6, alpha=0.3, label="thresholds tried")
        front = frontier(replay_points)
        ax.plot([p.reduced_cc for p in front], [p.accuracy for p in front], color="tab:blue", label="frontier")
        if report["reduced_cc"] is not None and report["accuracy"] is not None:
            ax.scatter([report["reduced_cc"]], [report["accuracy"]], color="tab:red", zorder=5, label="operating point")
        ax.set(title="cost-accuracy frontier", xlabel="reduced compute (%)", ylabel="accuracy (%)")
        ax.legend()
        written.append(_save(fig, out_dir / "frontier.png"))
        plt.close(fig)

    html = out_dir / "report.html"
    images = "\n".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
        for p in written
    )
    html.write_text(
        "<!doctype html><meta charset=utf-8><title>cascade audit</title>"
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em}pre{background:#f4f4f4;padding:1em}</style>"
        f"<h1>cascade audit</h1><pre>{_escape(format_summary(report))}</pre>{images}",
        encoding="utf-8",
    )
    written.append(html)
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def frontier_points(url, config, batch_id, reference_batch):
    """Replay the audited batch's first tier against the reference batch at every threshold."""
    import numpy as np

    from cascade.router import replay as rp

    first, last = config.first.name, config.last.name
    with session_scope(url) as session:
        rows = audit.paired_results(session, batch_id, get_batch(session, reference_batch).id, first)
        params = {name: (audit.tier_params(session, name) or 1.0) for name in (first, last)}
    if not rows:
        return None
    cols = list(zip(*rows))

    def model(offset):
        return rp.ModelLog(
            correct=np.array(cols[offset + 1], dtype=bool),
            p_t=np.array([p or 0.0 for p in cols[offset]]),
            tokens_in=np.array(cols[offset + 2]),
            tokens_out=np.array(cols[offset + 3]),
            usd=np.zeros(len(rows)),
        )

    log = rp.ReplayLog(ids=[str(i) for i in range(len(rows))], models={first: model(0), last: model(4)})
    return rp.search(log, [first, last], params, max_tiers=2)
