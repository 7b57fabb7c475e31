//! The monthly report for the hospital's security committee (issue #18), as data: the console
//! and `sekisho report monthly` render the same numbers.

use axum::Extension;
use axum::extract::{Query, State};
use sekisho_domain::report::{Month, MonthlyReport, monthly};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::token::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    /// `YYYY-MM` in the hospital's zone (default: last month).
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
    /// Only this site's targets (default: the whole hospital group; for staff limited to a
    /// site, their site).
    #[param(min_length = 1, max_length = 100)]
    pub site: Option<String>,
}

/// The report of one month: sessions per vendor, target and level with hours, sessions per
/// day, emergency uses and their approval delay, refusals by reason, reviews, files, and what
/// lapses or went stale. Of the whole hospital group, or of one site (its targets, the
/// contracts for them and the vendors maintaining them); staff limited to a site get theirs.
#[utoipa::path(get, path = "/api/v1/reports/monthly", tag = "reports", params(MonthQuery),
    responses((status = 200, body = MonthlyReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn monthly_report(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<MonthQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<MonthlyReport>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let site = match (super::site::filter(&caller), q.site) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::Forbidden(format!(
                "your account is limited to site {own}; it may not read the report of site {asked}"
            )));
        }
        (Some(own), _) => Some(own),
        (None, Some(asked)) => {
            if !state.store.site_exists(&asked).await? {
                return Err(ApiError::NotFound(format!(
                    "no target belongs to site `{asked}`"
                )));
            }
            Some(asked)
        }
        (None, None) => None,
    };
    let zone = &state.settings.zone;
    let month = match q.month {
        Some(m) => Month::parse(&m).map_err(ApiError::BadRequest)?,
        None => Month::of(jiff::Timestamp::now(), zone.tz()).previous(),
    };
    let inputs = state
        .store
        .monthly_inputs(month, &state.settings.report(), site.as_deref())
        .await?;
    Ok(Json(monthly(&inputs, zone.tz())))
}
