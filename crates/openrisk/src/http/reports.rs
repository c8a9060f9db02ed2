//! `/api/v1/reports`: the risk-register export (streamed) and the executive summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use futures_util::{Stream, StreamExt, stream};
use rust_xlsxwriter::Workbook;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Auth, QueryParams, Register, Viewer, expensive};
use super::routes::Routes;
use super::spool::spooled;
use super::state::AppState;
use super::{respond, summary_page};
use crate::cache::policy::{cached_per_day, uncached};
use crate::cache::{Current, Namespace, Registered};
use crate::domain::auth::Principal;
use crate::domain::dashboard::{Matrix, Stats};
use crate::domain::report::{
    COLUMNS, Cell, ExportFormat, RegisterExport, SUMMARY_OVERDUE_LIMIT, SUMMARY_TOP_RISKS, Summary,
    SummaryFormat, cells, spreadsheet_safe,
};
use crate::domain::risk::RiskStatus;
use crate::limits::Running;
use crate::store::{RiskStream, StoreError};

pub fn routes() -> Routes {
    Routes::new()
        .add(routes!(risk_register), uncached())
        .add(routes!(summary), cached_per_day(Namespace::Reports))
}

/// Risks per body chunk: large enough to keep chunks efficient, small enough to stream.
const ROWS_PER_CHUNK: usize = 128;

#[utoipa::path(
    get, path = "/api/v1/reports/risk-register", tag = "reports",
    params(
        ("format" = Option<ExportFormat>, Query, description = "csv (default), json or xlsx"),
        ("status" = Option<Vec<RiskStatus>>, Query, explode = true),
        ("severity" = Option<Vec<crate::domain::risk::Severity>>, Query, explode = true),
        ("category" = Option<Vec<String>>, Query, explode = true),
        ("owner_id" = Option<Vec<uuid::Uuid>>, Query, explode = true),
        ("tag" = Option<Vec<String>>, Query, explode = true),
        ("q" = Option<String>, Query, max_length = 200),
        ("sort" = Option<crate::domain::list::Sort>, Query, description = "As for the list; default -score"),
    ),
    responses(
        (status = 200, description = "Every matching risk, streamed, as an attachment (`risk-register-<date>.<format>`). \
            CSV: RFC 4180 with a header row; cells that a spreadsheet would run as formulas are prefixed with `'`. \
            JSON: an array of risks.",
            content(
                (String = "text/csv"),
                (Vec<crate::domain::risk::Risk> = "application/json"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            ),
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"risk-register-<date>.<format>\"`"))),
        (status = 400, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn risk_register(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let export = RegisterExport::from_params(&params)?;
    let place = expensive(&state, &auth).await?;
    let risks = state
        .store
        .export_risks(auth.organization_id, export.filter, export.sort);
    // A failure before the first row can still be answered properly (503, 500).
    let risks = first_checked(risks).await?;
    let spool_failed = |e: std::io::Error| ApiError::Internal(format!("cannot spool the export: {e}"));
    let body = match export.format {
        ExportFormat::Csv => Body::from_stream(holding(
            place,
            spooled("csv export", csv_chunks(risks)).map_err(spool_failed)?,
        )),
        ExportFormat::Json => Body::from_stream(holding(
            place,
            spooled("json export", json_chunks(risks)).map_err(spool_failed)?,
        )),
        ExportFormat::Xlsx => Body::from_stream(holding(place, xlsx_chunks(risks))),
    };
    let disposition = format!(
        "attachment; filename=\"{}\"",
        export.format.file_name(Utc::now().date_naive())
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(export.format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(|e| ApiError::Internal(e.to_string()))?,
            ),
        ],
        body,
    )
        .into_response())
}

/// `chunks`, holding the organization's place for an export while the body is being sent (the
/// place goes when the stream is dropped: sent, or the client gone).
fn holding<S: Stream>(place: Running, chunks: S) -> impl Stream<Item = S::Item> {
    chunks.map(move |chunk| {
        let _held = &place;
        chunk
    })
}

/// Waits for the first item, so a database that cannot serve fails the request rather than
/// the body.
async fn first_checked(mut risks: RiskStream) -> Result<RiskStream, ApiError> {
    match risks.next().await {
        None => Ok(Box::pin(stream::empty())),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(first)) => Ok(Box::pin(stream::once(async { Ok(first) }).chain(risks))),
    }
}

fn csv_record(row: impl IntoIterator<Item = Cell>, out: &mut csv::Writer<Vec<u8>>) -> csv::Result<()> {
    let fields: Vec<String> = row
        .into_iter()
        .map(|cell| match cell {
            Cell::Text(text) => spreadsheet_safe(&text).into_owned(),
            Cell::Number(n) => n.to_string(),
            Cell::Empty => String::new(),
        })
        .collect();
    out.write_record(fields)
}

/// RFC 4180: CRLF line ends, fields quoted when they need it.
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn csv_chunks(risks: RiskStream) -> impl Stream<Item = Result<Bytes, StoreError>> {
    let header = COLUMNS.iter().map(|c| Cell::Text((*c).to_owned()));
    let mut writer = csv_writer();
    let header = csv_record(header, &mut writer).map(|()| writer.into_inner().unwrap_or_default());
    let header = header
        .map(Bytes::from)
        .map_err(|e| StoreError::Corrupt(e.to_string()));
    stream::once(async { header }).chain(risks.ready_chunks(ROWS_PER_CHUNK).map(|chunk| {
        let mut writer = csv_writer();
        for risk in chunk {
            csv_record(cells(&risk?), &mut writer).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        Ok(Bytes::from(writer.into_inner().unwrap_or_default()))
    }))
}

fn json_chunks(risks: RiskStream) -> impl Stream<Item = Result<Bytes, StoreError>> {
    let items = risks.ready_chunks(ROWS_PER_CHUNK).enumerate().map(|(i, chunk)| {
        let mut out = Vec::new();
        for (j, risk) in chunk.into_iter().enumerate() {
            if i > 0 || j > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &risk?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        Ok(Bytes::from(out))
    });
    stream::once(async { Ok(Bytes::from_static(b"[")) })
        .chain(items)
        .chain(stream::once(async { Ok(Bytes::from_static(b"]")) }))
}

/// Sets its flag when dropped: the response body is gone, so the work behind it can stop.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An XLSX file can only be finished once every row is known: rows go to a worksheet in constant
/// memory mode (flushed to disk row by row), the workbook to a temporary file that is then
/// streamed. The work runs while the body is read, so the request time limit does not cut it,
/// and stops if the client goes away.
fn xlsx_chunks(risks: RiskStream) -> impl Stream<Item = std::io::Result<Bytes>> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(cancelled.clone());
    stream::once(xlsx_file(risks, cancelled))
        .flat_map(|file| match file {
            Ok(file) => tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)).left_stream(),
            Err(e) => stream::once(async { Err(e) }).right_stream(),
        })
        .map(move |chunk| {
            let _alive = &guard;
            chunk
        })
}

async fn xlsx_file(mut risks: RiskStream, cancelled: Arc<AtomicBool>) -> std::io::Result<std::fs::File> {
    let runtime = tokio::runtime::Handle::current();
    let build = move || -> std::io::Result<std::fs::File> {
        let failed = |e: rust_xlsxwriter::XlsxError| std::io::Error::other(format!("xlsx: {e}"));
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet_with_constant_memory().map_err(failed)?;
        sheet.set_name("Risk register").map_err(failed)?;
        for (col, name) in COLUMNS.iter().enumerate() {
            sheet.write_string(0, col as u16, *name).map_err(failed)?;
        }
        let mut row = 1;
        while let Some(risk) = runtime.block_on(risks.next()) {
            if cancelled.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("the client went away"));
            }
            for (col, cell) in cells(&risk.map_err(std::io::Error::other)?)
                .into_iter()
                .enumerate()
            {
                match cell {
                    Cell::Text(text) => sheet.write_string(row, col as u16, text).map_err(failed)?,
                    Cell::Number(n) => sheet.write_number(row, col as u16, n).map_err(failed)?,
                    Cell::Empty => sheet,
                };
            }
            row += 1;
        }
        let mut file = tempfile::tempfile()?;
        workbook.save_to_writer(&mut file).map_err(failed)?;
        std::io::Seek::rewind(&mut file)?;
        Ok(file)
    };
    tokio::task::spawn_blocking(build)
        .await
        .map_err(std::io::Error::other)?
}

#[utoipa::path(
    get, path = "/api/v1/reports/summary", tag = "reports",
    params(("format" = Option<SummaryFormat>, Query, description = "json (default) or html: one self-contained, printable page")),
    responses(
        (status = 200, description = "The summary: JSON, or with `format=html` one self-contained page",
            content((Summary = "application/json"), (String = "text/html"))),
        (status = 400, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn summary(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Register(register): Register,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let format = SummaryFormat::from_params(&params)?;
    let today = Utc::now().date_naive();
    // Only a summary computed afresh gets here: a cached one is served before the handler.
    let (summary, registered) = match register {
        Some(r) => (summary_from_register(&r, today), Some(Registered(r.number()))),
        None => (summary_from_store(&state, &auth, today).await?, None),
    };
    let response = match format {
        SummaryFormat::Json => respond::json(&summary),
        SummaryFormat::Html => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            summary_page::render(&summary),
        )
            .into_response(),
    };
    Ok(respond::noting_any(response, registered))
}

fn summary_from_register(register: &Current, today: NaiveDate) -> Summary {
    let limit = |n: i64| usize::try_from(n).unwrap_or(0);
    Summary {
        organization: register.organization().clone(),
        generated_at: crate::domain::now(),
        stats: register.stats(today),
        matrix: Matrix::from_counts(&register.matrix(RiskStatus::OPEN)),
        top_risks: register.top_risks(limit(SUMMARY_TOP_RISKS)),
        overdue_mitigations: register.overdue_mitigations(today, limit(SUMMARY_OVERDUE_LIMIT)),
    }
}

async fn summary_from_store(state: &AppState, auth: &Principal, today: NaiveDate) -> ApiResult<Summary> {
    let _place = expensive(state, auth).await?;
    let (org, store) = (auth.organization_id, &state.store);
    let (organization, risk_groups, mitigation_groups, matrix, top_risks, overdue_mitigations) = tokio::try_join!(
        store.organization(org),
        store.risk_groups(org, today),
        store.mitigation_groups(org, today),
        store.risk_matrix(org, RiskStatus::OPEN),
        store.top_risks(org, SUMMARY_TOP_RISKS),
        store.overdue_mitigations(org, today, SUMMARY_OVERDUE_LIMIT),
    )?;
    Ok(Summary {
        organization,
        generated_at: crate::domain::now(),
        stats: Stats::from_groups(&risk_groups, &mitigation_groups),
        matrix: Matrix::from_counts(&matrix),
        top_risks,
        overdue_mitigations,
    })
}
