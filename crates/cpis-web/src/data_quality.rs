//! `GET /la/data-quality`: an LA's upload data quality over the last 12 weeks — its NHS-number
//! match rate against the 95% target and its rejected rows by outcome code per week, as a table
//! and as a server-rendered SVG bar chart (the table is the chart's accessible equivalent).
//! Only the caller's own LA (from its `la:upload` capability). The match rate is defined in
//! `cpis_store::stats` and docs/WEB.md ("Data quality").

use super::format;
use super::page::{self, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use cpis_api::AppState;
use cpis_auth::Principal;
use cpis_domain::data_quality::{
    MatchCounts, UploadOutcomeCounts, MATCH_RATE_TARGET_BASIS_POINTS as TARGET_BASIS_POINTS,
};
use cpis_domain::RecordOutcome;
/// Weeks shown, the current one included.
pub const WEEKS: usize = 12;

/// The rejection codes, in the table's and the chart's order, with the chart colours (NHS
/// palette, each at least 3:1 against white).
const REJECTIONS: [(RecordOutcome, &str); 6] = [
    (RecordOutcome::NotFound, "#005eb8"),
    (RecordOutcome::Sensitive, "#330072"),
    (RecordOutcome::DobMismatch, "#d5281b"),
    (RecordOutcome::MalformedNhsNumber, "#007f3b"),
    (RecordOutcome::Superseded, "#7c2855"),
    (RecordOutcome::Invalid, "#425563"),
];

struct Code {
    code: &'static str,
    description: &'static str,
    colour: &'static str,
    /// The fill: `url(#cpis-fill-CPR01)`, a pattern over the colour (below).
    fill: String,
    /// Which pattern draws over the colour: `solid`, `diagonal`, `dots`, `horizontal`,
    /// `crosshatch` or `vertical` (the template draws each), so codes differ by more than
    /// colour.
    pattern: &'static str,
}

struct WeekRow {
    /// `16 November 2026`.
    label: String,
    /// `16 Nov`.
    short: String,
    rows: u64,
    /// One count per [`REJECTIONS`] code.
    rejected: Vec<u64>,
    match_rate: String,
}

struct Segment {
    x: String,
    y: String,
    width: String,
    height: String,
    fill: String,
}

struct Bar {
    segments: Vec<Segment>,
    label_x: String,
    label: String,
    /// The bar's total, written above it (empty for a week without rejections).
    total: String,
    total_y: String,
}

struct Tick {
    y: String,
    label: u64,
}

#[derive(Template)]
#[template(path = "data_quality.html")]
struct DataQualityPage {
    layout: Layout,
    la_name: String,
    period: String,
    match_rate: String,
    /// `Some(true)` met, `Some(false)` not met, `None` nothing to judge.
    target_met: Option<bool>,
    matched: u64,
    not_matched: u64,
    other_rejections: u64,
    uploads: usize,
    codes: Vec<Code>,
    weeks: Vec<WeekRow>,
    totals: Vec<u64>,
    total_rows: u64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    chart: Chart,
}

/// The chart's geometry (SVG user units).
struct Chart {
    width: u32,
    height: u32,
    left: u32,
    plot_right: u32,
    plot_top: u32,
    baseline: String,
    label_y: String,
    /// Where the axis titles go.
    x_title_x: String,
    x_title_y: String,
    y_title_x: String,
    y_title_y: String,
}

const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 56.0;

/// The pattern over each code's colour, in [`REJECTIONS`] order.
const PATTERNS: [&str; 6] = [
    "solid",
    "diagonal",
    "dots",
    "horizontal",
    "crosshatch",
    "vertical",
];

fn fill_of(o: RecordOutcome) -> String {
    format!("url(#cpis-fill-{})", o.code())
}

/// `92.3%` (rounded down, so 94.99% never shows as 95.0%).
pub fn percent(basis_points: u64) -> String {
    format!("{}.{}%", basis_points / 100, (basis_points % 100) / 10)
}

/// Monday 00:00 UTC of the week `t` falls in.
fn week_start(t: DateTime<Utc>) -> NaiveDate {
    let d = t.date_naive();
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// The first Monday of the report, `WEEKS - 1` weeks before the current week's.
pub fn report_start(now: DateTime<Utc>) -> NaiveDate {
    week_start(now) - Duration::weeks(WEEKS as i64 - 1)
}

fn rate_text(m: &MatchCounts) -> String {
    m.rate_basis_points()
        .map_or_else(|| "No records checked".into(), percent)
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: midnight"
)]
pub async fn page(State(state): State<AppState>, user: SignedIn) -> Result<Response, WebError> {
    let cap = user
        .caller()
        .grant(&state, "la.data-quality", Principal::la_upload)
        .await?;
    let la = cap.la().clone();
    let first = report_start(state.clock.now());
    let since = first.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let store = state.store.clone();
    let stats = tokio::task::spawn_blocking(move || store.la_upload_stats(&la, since)).await??;
    let la_name = user.principal.organisation_name().to_owned();
    Ok(page::html(
        StatusCode::OK,
        &build(&user, la_name, first, &stats),
    ))
}

fn build(
    user: &SignedIn,
    la_name: String,
    first: NaiveDate,
    stats: &[UploadOutcomeCounts],
) -> DataQualityPage {
    let total = MatchCounts::of(stats);
    let weeks: Vec<WeekRow> = (0..WEEKS)
        .map(|i| {
            let start = first + Duration::weeks(i as i64);
            let uploads: Vec<&UploadOutcomeCounts> = stats
                .iter()
                .filter(|u| week_start(u.received_at) == start)
                .collect();
            let m = MatchCounts::of(uploads.iter().copied());
            WeekRow {
                label: format::long_date(start),
                short: start.format("%-d %b").to_string(),
                rows: uploads.iter().map(|u| u.rows).sum(),
                rejected: REJECTIONS
                    .iter()
                    .map(|(o, _)| uploads.iter().map(|u| u.count(*o)).sum())
                    .collect(),
                match_rate: if uploads.is_empty() {
                    "No uploads".into()
                } else {
                    rate_text(&m)
                },
            }
        })
        .collect();
    let totals: Vec<u64> = (0..REJECTIONS.len())
        .map(|c| weeks.iter().map(|w| w.rejected[c]).sum())
        .collect();
    let all_rejected: u64 = stats.iter().map(UploadOutcomeCounts::rejected).sum();
    let (bars, ticks) = chart(&weeks);
    DataQualityPage {
        // Full width: the weekly table has nine columns.
        layout: Layout::signed_in(user, "Data quality", "/la/data-quality").wide(),
        la_name,
        period: format!("{} weeks from {} to today", WEEKS, format::long_date(first)),
        match_rate: rate_text(&total),
        target_met: total.meets(TARGET_BASIS_POINTS),
        matched: total.matched,
        not_matched: total.not_matched,
        other_rejections: all_rejected - total.not_matched,
        uploads: stats.len(),
        codes: REJECTIONS
            .iter()
            .zip(PATTERNS)
            .map(|((o, colour), pattern)| Code {
                code: o.code(),
                description: o.description(),
                colour,
                fill: fill_of(*o),
                pattern,
            })
            .collect(),
        total_rows: weeks.iter().map(|w| w.rows).sum(),
        weeks,
        totals,
        bars,
        ticks,
        chart: Chart {
            width: CHART_WIDTH as u32,
            height: CHART_HEIGHT as u32,
            left: LEFT as u32,
            plot_right: (CHART_WIDTH - RIGHT) as u32,
            plot_top: TOP as u32,
            baseline: num(CHART_HEIGHT - BOTTOM),
            label_y: num(CHART_HEIGHT - BOTTOM + 18.0),
            x_title_x: num(LEFT + (CHART_WIDTH - LEFT - RIGHT) / 2.0),
            x_title_y: num(CHART_HEIGHT - 10.0),
            y_title_x: num(16.0),
            y_title_y: num(TOP + (CHART_HEIGHT - TOP - BOTTOM) / 2.0),
        },
    }
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// A "nice" axis maximum at or above `max`: 1, 2 or 5 times a power of ten (at least 4).
fn axis_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max.max(4) {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// Stacked bars (one per week, one segment per rejection code) and y-axis ticks.
fn chart(weeks: &[WeekRow]) -> (Vec<Bar>, Vec<Tick>) {
    let top = axis_max(
        weeks
            .iter()
            .map(|w| w.rejected.iter().sum::<u64>())
            .max()
            .unwrap_or(0),
    );
    let plot_h = CHART_HEIGHT - TOP - BOTTOM;
    let slot = (CHART_WIDTH - LEFT - RIGHT) / weeks.len().max(1) as f64;
    let bar_w = slot * 0.6;
    let scale = plot_h / top as f64;
    let bars = weeks
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
            let mut y = CHART_HEIGHT - BOTTOM;
            let segments = w
                .rejected
                .iter()
                .zip(REJECTIONS.iter())
                .filter(|(n, _)| **n > 0)
                .map(|(n, (o, _))| {
                    let h = *n as f64 * scale;
                    y -= h;
                    Segment {
                        x: num(x),
                        y: num(y),
                        width: num(bar_w),
                        height: num(h),
                        fill: fill_of(*o),
                    }
                })
                .collect();
            let total: u64 = w.rejected.iter().sum();
            Bar {
                segments,
                label_x: num(x + bar_w / 2.0),
                label: w.short.clone(),
                total: if total > 0 {
                    total.to_string()
                } else {
                    String::new()
                },
                total_y: num(y - 5.0),
            }
        })
        .collect();
    // Every axis maximum is 1, 2 or 5 times a power of ten, at least 5: five equal steps.
    let ticks = (0..=5)
        .map(|i| top / 5 * i)
        .map(|v| Tick {
            y: num(CHART_HEIGHT - BOTTOM - v as f64 * scale),
            label: v,
        })
        .collect();
    (bars, ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent(10_000), "100.0%");
        assert_eq!(percent(9_499), "94.9%");
        assert_eq!(percent(3_750), "37.5%");
        assert_eq!(percent(0), "0.0%");
    }

    #[test]
    fn weeks_start_on_monday() {
        let fri = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(week_start(fri).to_string(), "2026-11-16");
        assert_eq!(report_start(fri).to_string(), "2026-08-31");
    }

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(axis_max(0), 5);
        assert_eq!(axis_max(7), 10);
        assert_eq!(axis_max(11), 20);
        assert_eq!(axis_max(120), 200);
        assert_eq!(axis_max(500), 500);
        for top in [5, 10, 20, 50, 100, 200, 500, 1000] {
            assert_eq!(top % 5, 0, "five whole steps");
        }
    }
}
