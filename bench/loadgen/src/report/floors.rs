//! The floors of issue #16, checked on the `defaults` profile: what Midge must reach with every
//! broker at its out-of-the-box configuration. Reported with a verdict each; `report
//! --enforce-floors` (`FLOORS=enforce bench/run.sh`) makes any verdict but PASS fail the run.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Row, number};
use crate::record::Record;

/// The profile whose runs the floors are about.
pub(super) const PROFILE: &str = "defaults";

/// The profile a peer is compared at when it failed every run at its defaults (lost or
/// duplicated messages): its tuned configuration, which is lossless, is the fairest number left.
pub(super) const FALLBACK_PROFILE: &str = "tuned";

/// A floor on the reference broker's median over a peer's, in one scenario.
struct RatioFloor {
    scenario: &'static str,
    qos: u8,
    metric: &'static str,
    peer: &'static str,
    min: f64,
}

/// The ratio floors. Zero loss is checked on top of them, over every run.
const RATIO_FLOORS: &[RatioFloor] = &[
    RatioFloor {
        scenario: "fan-in",
        qos: 1,
        metric: "delivered_per_s",
        peer: "mosquitto",
        min: 3.0,
    },
    RatioFloor {
        scenario: "fan-out",
        qos: 1,
        metric: "delivered_per_s",
        peer: "rumqttd",
        min: 1.5,
    },
];

/// A floor's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub(super) enum Verdict {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Not checkable with these runs: the scenario or the peer was not run, or the peer
    /// failed every run (so there is no number to compare with).
    Unchecked,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unchecked => "UNCHECKED",
        }
    }
}

/// One floor, what was measured, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Floor {
    /// The promise, e.g. `fan-in QoS 1 ≥ 3× mosquitto`.
    pub(super) floor: String,
    /// The numbers behind the verdict, or why there is none.
    pub(super) measured: String,
    pub(super) verdict: Verdict,
}

/// Checks the floors against one profile's main rows and runs; `fallback` holds the rows of
/// [`FALLBACK_PROFILE`] from the same bench run (empty when it was not run).
pub(super) fn check(
    reference: &str,
    rows: &[Row],
    runs: &[Record],
    fallback: &[Row],
) -> Vec<Floor> {
    let mut floors: Vec<Floor> = RATIO_FLOORS
        .iter()
        .map(|f| ratio_floor(reference, rows, fallback, f))
        .collect();
    floors.push(zero_loss(reference, runs));
    floors
}

fn ratio_floor(reference: &str, rows: &[Row], fallback: &[Row], f: &RatioFloor) -> Floor {
    let floor = format!("{} QoS {} ≥ {}× {}", f.scenario, f.qos, f.min, f.peer);
    let verdict = |verdict, measured: String| Floor {
        floor: floor.clone(),
        measured,
        verdict,
    };
    let Some(row) = rows
        .iter()
        .find(|r| r.scenario == f.scenario && r.qos == Some(f.qos) && r.metric == f.metric)
    else {
        return verdict(
            Verdict::Unchecked,
            format!("not run (needs `{}-qos{}` in SCENARIOS)", f.scenario, f.qos),
        );
    };
    let ours = row.cells.get(reference);
    let theirs = row.cells.get(f.peer);
    let runs = |c: &super::Cell| c.values.len() + c.failed;
    match (ours, theirs) {
        (Some(o), _) if o.failed > 0 => verdict(
            Verdict::Fail,
            format!("{reference} failed {} of {} runs", o.failed, runs(o)),
        ),
        (None, _) | (Some(super::Cell { median: None, .. }), _) => {
            verdict(Verdict::Unchecked, format!("{reference} not run"))
        }
        (Some(_), None) => verdict(
            Verdict::Unchecked,
            format!("{} not run (needs it in BROKERS)", f.peer),
        ),
        (Some(o), Some(t)) => {
            let ours = o.median.unwrap_or_default();
            let tuned_peer = || {
                fallback
                    .iter()
                    .find(|r| {
                        r.scenario == f.scenario && r.qos == Some(f.qos) && r.metric == f.metric
                    })
                    .and_then(|r| r.cells.get(f.peer))
                    .and_then(|c| c.median)
            };
            if t.median.is_none()
                && t.failed > 0
                && let Some(peer) = tuned_peer()
            {
                let ratio = ours / peer;
                let met = if ratio >= f.min {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                };
                return verdict(
                    met,
                    format!(
                        "{} vs {} {} = {ratio:.2}× ({} lost messages at its defaults in every \
                         run; compared with its {FALLBACK_PROFILE} configuration)",
                        number(ours),
                        number(peer),
                        row.label,
                        f.peer
                    ),
                );
            }
            let Some(peer) = t.median else {
                return verdict(
                    Verdict::Unchecked,
                    if t.failed > 0 {
                        format!(
                            "{reference} {} {}; {} failed every run (lost or duplicated \
                             messages, see the failed runs): no number to compare with",
                            number(ours),
                            row.label,
                            f.peer
                        )
                    } else {
                        format!("{} not run", f.peer)
                    },
                );
            };
            let ratio = ours / peer;
            let mut measured = format!(
                "{} vs {} {} = {ratio:.2}×",
                number(ours),
                number(peer),
                row.label
            );
            if t.failed > 0 {
                let _ = write!(
                    measured,
                    " ({} failed {} of {} runs)",
                    f.peer,
                    t.failed,
                    runs(t)
                );
            }
            let met = if ratio >= f.min {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            verdict(met, measured)
        }
    }
}

/// Every run of the reference broker passed: no message lost or duplicated (nor any other
/// failure, which would leave the question open).
fn zero_loss(reference: &str, runs: &[Record]) -> Floor {
    let ours: Vec<&Record> = runs.iter().filter(|r| r.broker == reference).collect();
    let failed: Vec<&&Record> = ours.iter().filter(|r| !r.ok).collect();
    let floor = format!("zero loss ({reference}: no message lost or duplicated)");
    let (verdict, measured) = match (ours.len(), failed.first()) {
        (0, _) => (Verdict::Unchecked, format!("{reference} not run")),
        (n, None) => (
            Verdict::Pass,
            format!("{n} of {n} runs passed the sequence checks"),
        ),
        (n, Some(first)) => {
            let qos = first.qos.map(|q| format!(" QoS {q}")).unwrap_or_default();
            (
                Verdict::Fail,
                format!(
                    "{} of {n} runs failed; first, {}{qos}: {}",
                    failed.len(),
                    first.scenario,
                    first.error.as_deref().unwrap_or("failed")
                ),
            )
        }
    };
    Floor {
        floor,
        measured,
        verdict,
    }
}

/// The floors as a Markdown section.
pub(super) fn markdown(md: &mut String, floors: &[Floor], enforced: bool) {
    let _ = writeln!(
        md,
        "\n### Floors (issue #16, at defaults)\n\n| floor | measured | verdict |\n|---|---|---|"
    );
    for f in floors {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            f.floor,
            f.measured.replace('|', "\\|"),
            f.verdict.text()
        );
    }
    let _ = writeln!(
        md,
        "\n{}",
        if enforced {
            "Enforced (`FLOORS=enforce`): a floor that is not PASS fails the run."
        } else {
            "Reported only: `FLOORS=enforce` makes a floor that is not PASS fail the run."
        }
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::Cell;
    use super::*;

    fn cell(values: &[f64], failed: usize) -> Cell {
        Cell {
            median: super::super::median(values),
            values: values.to_vec(),
            failed,
        }
    }

    fn row(scenario: &str, cells: &[(&str, Cell)]) -> Row {
        Row {
            scenario: scenario.to_owned(),
            qos: Some(1),
            variant: String::new(),
            metric: "delivered_per_s".to_owned(),
            label: "msg/s".to_owned(),
            higher_is_better: true,
            cells: cells
                .iter()
                .map(|(b, c)| ((*b).to_owned(), c.clone()))
                .collect(),
            ratios: BTreeMap::new(),
        }
    }

    fn record(broker: &str, error: Option<&str>) -> Record {
        serde_json::from_value(serde_json::json!({
            "scenario": "fan-in", "qos": 1, "broker": broker, "variant": "", "rep": 1,
            "profile": "defaults", "ok": error.is_none(), "error": error,
            "metrics": {}, "details": {},
        }))
        .unwrap()
    }

    #[test]
    fn ratio_floors_pass_fail_and_unchecked() {
        let rows = [
            row(
                "fan-in",
                &[
                    ("midge", cell(&[300.0], 0)),
                    ("mosquitto", cell(&[100.0], 0)),
                ],
            ),
            row(
                "fan-out",
                &[("midge", cell(&[140.0], 0)), ("rumqttd", cell(&[100.0], 0))],
            ),
        ];
        let runs = [record("midge", None), record("mosquitto", None)];
        let floors = check("midge", &rows, &runs, &[]);
        let verdicts: Vec<Verdict> = floors.iter().map(|f| f.verdict).collect();
        assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail, Verdict::Pass]);
        assert_eq!(floors[0].floor, "fan-in QoS 1 ≥ 3× mosquitto");
        assert!(
            floors[1].measured.contains("1.40×"),
            "{}",
            floors[1].measured
        );

        // A peer that lost messages leaves nothing to compare with; not run, the same.
        let rows = [row(
            "fan-in",
            &[("midge", cell(&[300.0], 0)), ("mosquitto", cell(&[], 1))],
        )];
        let floors = check("midge", &rows, &runs, &[]);
        assert_eq!(floors[0].verdict, Verdict::Unchecked);
        assert!(floors[0].measured.contains("mosquitto failed every run"));
        assert_eq!(floors[1].verdict, Verdict::Unchecked);
        assert!(floors[1].measured.contains("not run"));

        // ... unless its tuned configuration ran, losslessly: then that is the comparison.
        let tuned = [row("fan-in", &[("mosquitto", cell(&[120.0], 0))])];
        let floors = check("midge", &rows, &runs, &tuned);
        assert_eq!(floors[0].verdict, Verdict::Fail, "{}", floors[0].measured);
        assert!(
            floors[0].measured.contains("2.50×"),
            "{}",
            floors[0].measured
        );
        assert!(floors[0].measured.contains("tuned configuration"));
    }

    #[test]
    fn a_failed_reference_run_fails_its_floor_and_zero_loss() {
        let rows = [row(
            "fan-in",
            &[
                ("midge", cell(&[900.0], 1)),
                ("mosquitto", cell(&[100.0], 0)),
            ],
        )];
        let runs = [
            record("midge", None),
            record("midge", Some("loss: subscriber 0 expected message 8")),
            record("mosquitto", Some("loss: elsewhere")),
        ];
        let floors = check("midge", &rows, &runs, &[]);
        assert_eq!(floors[0].verdict, Verdict::Fail);
        assert_eq!(floors[0].measured, "midge failed 1 of 2 runs");
        let zero_loss = floors.last().unwrap();
        assert_eq!(zero_loss.verdict, Verdict::Fail);
        assert!(
            zero_loss
                .measured
                .starts_with("1 of 2 runs failed; first, fan-in QoS 1: loss: subscriber 0"),
            "{}",
            zero_loss.measured
        );
    }
}
