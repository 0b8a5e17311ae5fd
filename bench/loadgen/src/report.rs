//! Turns the result lines of a bench run into medians, ratios and a Markdown table per
//! profile, and checks the floors of the `defaults` profile (`floors`).

mod floors;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use crate::record::Record;

/// Report options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Result lines (JSONL) written by the scenarios' `--out`.
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// Write the summary (with every run) as JSON here.
    #[arg(long)]
    pub(crate) json_out: Option<PathBuf>,
    /// Write the Markdown table here.
    #[arg(long)]
    pub(crate) md_out: Option<PathBuf>,
    /// The broker the ratios are about: reference / peer.
    #[arg(long, default_value = "midge")]
    pub(crate) reference: String,
    /// A line of context for the report's heading (machine, commit, ...).
    #[arg(long, default_value = "")]
    pub(crate) title: String,
    /// Fail (exit status 1) when a floor of the `defaults` profile is not met or cannot be
    /// checked; without it the floors are only reported.
    #[arg(long)]
    pub(crate) enforce_floors: bool,
}

/// What a metric is called in the table and which way is better.
struct MetricInfo {
    scenario: &'static str,
    key: &'static str,
    label: &'static str,
    higher_is_better: bool,
}

/// The rows of the table, in order.
const METRICS: &[MetricInfo] = &[
    MetricInfo {
        scenario: "fan-in",
        key: "delivered_per_s",
        label: "msg/s delivered",
        higher_is_better: true,
    },
    MetricInfo {
        scenario: "fan-out",
        key: "delivered_per_s",
        label: "deliveries/s",
        higher_is_better: true,
    },
    MetricInfo {
        scenario: "latency",
        key: "p50_us",
        label: "p50 µs",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "latency",
        key: "p99_us",
        label: "p99 µs",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "latency",
        key: "max_us",
        label: "max µs",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connect-storm",
        key: "conn_per_s",
        label: "conn/s",
        higher_is_better: true,
    },
    MetricInfo {
        scenario: "connect-storm",
        key: "connack_p50_ms",
        label: "CONNACK p50 ms",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connect-storm",
        key: "connack_p99_ms",
        label: "CONNACK p99 ms",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connect-latency",
        key: "connack_p50_ms",
        label: "CONNACK p50 ms (one at a time)",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connect-latency",
        key: "connack_p99_ms",
        label: "CONNACK p99 ms (one at a time)",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "memory",
        key: "rss_growth_mib_per_10k",
        label: "RSS MiB / 10k idle conns",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "memory",
        key: "bytes_per_conn",
        label: "RSS bytes / idle conn",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connections",
        key: "bytes_per_conn",
        label: "RSS bytes / idle conn (held with keep-alives)",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connections",
        key: "bytes_per_conn_subscribed",
        label: "RSS bytes / idle conn, subscribed",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connections",
        key: "projected_1m_mib",
        label: "projected MiB for 1M conns",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connections",
        key: "connack_p99_ms",
        label: "CONNACK p99 ms (opening them)",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connections",
        key: "fanout_ms",
        label: "fan-out ms (publish → last receipt)",
        higher_is_better: false,
    },
    MetricInfo {
        scenario: "connections",
        key: "keepalive_misses",
        label: "keep-alive misses (must be 0)",
        higher_is_better: false,
    },
];

/// One broker's numbers for one row.
#[derive(Debug, Clone, Serialize)]
struct Cell {
    /// Median of the successful repetitions.
    median: Option<f64>,
    /// Every successful repetition's value.
    values: Vec<f64>,
    /// Repetitions that failed.
    failed: usize,
}

impl Cell {
    fn text(&self) -> String {
        match (self.median, self.failed) {
            (None, 0) => "–".to_owned(),
            (None, _) => "FAIL".to_owned(),
            (Some(m), 0) => number(m),
            (Some(m), f) => format!("{} ({f} FAIL)", number(m)),
        }
    }
}

/// One row of the summary.
#[derive(Debug, Clone, Serialize)]
struct Row {
    scenario: String,
    qos: Option<u8>,
    variant: String,
    metric: String,
    label: String,
    higher_is_better: bool,
    /// By broker.
    cells: BTreeMap<String, Cell>,
    /// reference / peer, by peer (for plugin variants: variant / plain Midge, under "baseline").
    ratios: BTreeMap<String, f64>,
}

/// One profile's tables (all the runs when the lines name no profile).
#[derive(Debug, Clone, Serialize)]
struct ProfileReport {
    /// `defaults`, `tuned`, or empty.
    profile: String,
    rows: Vec<Row>,
    plugin_rows: Vec<Row>,
    /// The floors, for the `defaults` profile only.
    floors: Vec<floors::Floor>,
}

/// Prints the tables; writes the JSON and Markdown files. Fails when any run failed (or, with
/// `--enforce-floors`, when a floor is not met), after writing everything.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let mut records = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: Record = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a result line", args.input.display(), n + 1))?;
        records.push(record);
    }
    let mut brokers: Vec<String> = vec![args.reference.clone()];
    let mut profiles: Vec<String> = Vec::new();
    for r in &records {
        if !brokers.contains(&r.broker) {
            brokers.push(r.broker.clone());
        }
        if !profiles.contains(&r.profile) {
            profiles.push(r.profile.clone());
        }
    }
    let peers: Vec<String> = brokers[1..].to_vec();

    let mut reports = Vec::new();
    for profile in &profiles {
        let runs: Vec<Record> = records
            .iter()
            .filter(|r| &r.profile == profile)
            .cloned()
            .collect();
        let (rows, plugin_rows) = tables(args, &brokers, &peers, &runs);
        let floors = if profile == floors::PROFILE {
            // A peer that loses messages at its defaults is compared at its tuned, lossless
            // configuration of the same run instead (when there is one).
            let tuned: Vec<Record> = records
                .iter()
                .filter(|r| r.profile == floors::FALLBACK_PROFILE)
                .cloned()
                .collect();
            let (tuned_rows, _) = tables(args, &brokers, &peers, &tuned);
            floors::check(&args.reference, &rows, &runs, &tuned_rows)
        } else {
            Vec::new()
        };
        reports.push(ProfileReport {
            profile: profile.clone(),
            rows,
            plugin_rows,
            floors,
        });
    }

    let failures: Vec<&Record> = records.iter().filter(|r| !r.ok).collect();
    let md = markdown(args, &brokers, &peers, &reports, &failures);
    print!("{md}");
    if let Some(path) = &args.md_out {
        std::fs::write(path, &md).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json_out {
        let json = serde_json::json!({
            "title": args.title,
            "reference": args.reference,
            "brokers": brokers,
            "profiles": reports,
            "runs": records,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // A peer that fails at its own defaults (it loses messages) is reported, not a failure of
    // the bench: the promise under test is the reference broker's.
    let counted = failures
        .iter()
        .filter(|r| r.broker == args.reference || r.profile != floors::PROFILE)
        .count();
    let unmet = reports
        .iter()
        .flat_map(|r| &r.floors)
        .filter(|f| f.verdict != floors::Verdict::Pass)
        .count();
    anyhow::ensure!(counted == 0, "{counted} run(s) failed");
    anyhow::ensure!(
        !args.enforce_floors || unmet == 0,
        "{unmet} floor(s) not met (--enforce-floors)"
    );
    Ok(())
}

/// The main rows (every broker) and the plugin rows (reference broker, per variant) of one
/// profile's runs.
fn tables(
    args: &Args,
    brokers: &[String],
    peers: &[String],
    records: &[Record],
) -> (Vec<Row>, Vec<Row>) {
    let mut main_rows = Vec::new();
    let mut plugin_rows = Vec::new();
    for (scenario, qos, variant) in groups(records) {
        for info in METRICS.iter().filter(|m| m.scenario == scenario) {
            let cell = |broker: &str, variant: &str| {
                cell_of(records, &scenario, qos, variant, broker, info.key)
            };
            let mut row = Row {
                scenario: scenario.clone(),
                qos,
                variant: variant.clone(),
                metric: info.key.to_owned(),
                label: info.label.to_owned(),
                higher_is_better: info.higher_is_better,
                cells: BTreeMap::new(),
                ratios: BTreeMap::new(),
            };
            if variant.is_empty() {
                for b in brokers {
                    row.cells.insert(b.clone(), cell(b, ""));
                }
                let reference = row.cells[&args.reference].median;
                for p in peers {
                    // No ratio to a zero (e.g. keep-alive misses): it would be NaN or infinite.
                    if let (Some(r), Some(v)) = (reference, row.cells[p].median) {
                        if v != 0.0 {
                            row.ratios.insert(p.clone(), r / v);
                        }
                    }
                }
                main_rows.push(row);
            } else {
                let value = cell(&args.reference, &variant);
                let baseline = cell(&args.reference, "");
                if let (Some(v), Some(b)) = (value.median, baseline.median) {
                    row.ratios.insert("baseline".to_owned(), v / b);
                }
                row.cells.insert(args.reference.clone(), value);
                row.cells.insert("baseline".to_owned(), baseline);
                plugin_rows.push(row);
            }
        }
    }
    (main_rows, plugin_rows)
}

/// The distinct (scenario, qos, variant) in table order: known scenarios first, plain before
/// variants.
fn groups(records: &[Record]) -> Vec<(String, Option<u8>, String)> {
    let mut groups: Vec<(String, Option<u8>, String)> = Vec::new();
    for r in records {
        let g = (r.scenario.clone(), r.qos, r.variant.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let order = |s: &str| {
        METRICS
            .iter()
            .position(|m| m.scenario == s)
            .unwrap_or(usize::MAX)
    };
    groups.sort_by(|a, b| {
        (!a.2.is_empty(), order(&a.0), a.1, &a.2).cmp(&(!b.2.is_empty(), order(&b.0), b.1, &b.2))
    });
    groups
}

fn cell_of(
    records: &[Record],
    scenario: &str,
    qos: Option<u8>,
    variant: &str,
    broker: &str,
    key: &str,
) -> Cell {
    let runs = records.iter().filter(|r| {
        r.scenario == scenario && r.qos == qos && r.variant == variant && r.broker == broker
    });
    let mut values = Vec::new();
    let mut failed = 0;
    for r in runs {
        match (r.ok, r.metrics.get(key)) {
            (true, Some(v)) => values.push(*v),
            (true, None) => {}
            (false, _) => failed += 1,
        }
    }
    Cell {
        median: median(&values),
        values,
        failed,
    }
}

/// The median (mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Three significant digits, thousands grouped.
fn number(x: f64) -> String {
    if x.abs() >= 1000.0 {
        let rounded = x.round() as i64;
        let digits = rounded.abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if rounded < 0 {
            out.insert(0, '-');
        }
        out
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn scenario_name(row: &Row) -> String {
    match row.qos {
        Some(q) => format!("{} QoS {q}", row.scenario),
        None => row.scenario.clone(),
    }
}

/// What each profile is, for its heading.
fn profile_heading(profile: &str) -> String {
    match profile {
        "defaults" => "every broker with its own out-of-the-box configuration, only the port \
                       changed"
            .to_owned(),
        "tuned" => {
            "every broker tuned: in-flight windows of 100, queues unbounded or 100,000".to_owned()
        }
        other => other.to_owned(),
    }
}

fn markdown(
    args: &Args,
    brokers: &[String],
    peers: &[String],
    reports: &[ProfileReport],
    failures: &[&Record],
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Midge bench");
    if !args.title.is_empty() {
        let _ = writeln!(md, "\n{}", args.title);
    }
    let _ = writeln!(
        md,
        "\nMedians over the successful repetitions. Ratio = {} / peer: above 1 means {0} has \
         the larger number (better for rates, worse for latency and memory; see `better`).",
        args.reference
    );
    for report in reports {
        if !report.profile.is_empty() {
            let _ = writeln!(
                md,
                "\n## Profile `{}`: {}",
                report.profile,
                profile_heading(&report.profile)
            );
        }
        main_table(&mut md, args, brokers, peers, &report.rows);
        plugin_table(&mut md, args, &report.plugin_rows);
        if !report.floors.is_empty() {
            floors::markdown(&mut md, &report.floors, args.enforce_floors);
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failed runs\n");
        for r in failures {
            let qos = r.qos.map(|q| format!(" QoS {q}")).unwrap_or_default();
            let variant = if r.variant.is_empty() {
                String::new()
            } else {
                format!(" [{}]", r.variant)
            };
            let profile = if r.profile.is_empty() {
                String::new()
            } else {
                format!("{}: ", r.profile)
            };
            let _ = writeln!(
                md,
                "- {profile}{}{qos}{variant}, {}, rep {}: {}",
                r.scenario,
                r.broker,
                r.rep,
                r.error.as_deref().unwrap_or("failed")
            );
        }
    }
    md
}

fn main_table(md: &mut String, args: &Args, brokers: &[String], peers: &[String], rows: &[Row]) {
    let mut header = "\n| scenario | metric | better |".to_owned();
    let mut rule = "|---|---|---|".to_owned();
    for b in brokers {
        let _ = write!(header, " {b} |");
        rule.push_str("---:|");
    }
    for p in peers {
        let _ = write!(header, " {}/{p} |", args.reference);
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for row in rows {
        let mut line = format!(
            "| {} | {} | {} |",
            scenario_name(row),
            row.label,
            better(row)
        );
        for b in brokers {
            let _ = write!(
                line,
                " {} |",
                row.cells.get(b).map_or("–".to_owned(), Cell::text)
            );
        }
        for p in peers {
            let _ = write!(
                line,
                " {} |",
                row.ratios
                    .get(p)
                    .map_or("–".to_owned(), |r| format!("{r:.2}"))
            );
        }
        let _ = writeln!(md, "{line}");
    }
}

fn plugin_table(md: &mut String, args: &Args, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n### Plugin cost ({} only)\n\nRatio = with plugin / without (the same scenario on \
         plain {0} in this run).\n\n| scenario | plugin | metric | better | with plugin | \
         without | ratio |\n|---|---|---|---|---:|---:|---:|",
        args.reference
    );
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            scenario_name(row),
            row.variant,
            row.label,
            better(row),
            row.cells
                .get(&args.reference)
                .map_or("–".to_owned(), Cell::text),
            row.cells.get("baseline").map_or("–".to_owned(), Cell::text),
            row.ratios
                .get("baseline")
                .map_or("–".to_owned(), |r| format!("{r:.2}")),
        );
    }
}

fn better(row: &Row) -> &'static str {
    if row.higher_is_better {
        "higher"
    } else {
        "lower"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn numbers() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(123.4), "123");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1.234), "1.23");
    }
}
