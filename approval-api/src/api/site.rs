//! Sites of a hospital group: what staff limited to one site may see and act on. Things of
//! other sites read as absent (404), as another vendor's things do for a vendor engineer.

use std::collections::HashSet;

use sekisho_domain::ids::TargetId;
use sekisho_domain::site::{in_scope, limited_to};
use sekisho_recorder::manifest::Manifest;

use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use super::token::Caller;

fn absent() -> ApiError {
    ApiError::not_found("no such item at your site")
}

/// The site the caller is limited to, if any (a filter for lists).
pub(crate) fn filter(caller: &Caller) -> Option<String> {
    limited_to(&caller.user).map(ToOwned::to_owned)
}

/// Checks the caller may see and act on things of `target`.
pub(crate) async fn check_target(
    state: &ApiState,
    caller: &Caller,
    target: TargetId,
) -> ApiResult<()> {
    if limited_to(&caller.user).is_none() {
        return Ok(());
    }
    match state.store.target(target).await? {
        Some(t) if in_scope(&caller.user, &t) => Ok(()),
        _ => Err(absent()),
    }
}

/// The targets the caller may see; `None` for all.
async fn visible(
    state: &ApiState,
    caller: &Caller,
) -> ApiResult<Option<Vec<sekisho_domain::target::Target>>> {
    if limited_to(&caller.user).is_none() {
        return Ok(None);
    }
    Ok(Some(
        state
            .store
            .targets()
            .await?
            .into_iter()
            .filter(|t| in_scope(&caller.user, t))
            .collect(),
    ))
}

/// The names of the targets the caller may see; `None` for all.
pub(crate) async fn target_names(
    state: &ApiState,
    caller: &Caller,
) -> ApiResult<Option<HashSet<String>>> {
    Ok(visible(state, caller)
        .await?
        .map(|v| v.into_iter().map(|t| t.name).collect()))
}

/// The ids of the targets the caller may see; `None` for all.
pub(crate) async fn target_ids(
    state: &ApiState,
    caller: &Caller,
) -> ApiResult<Option<HashSet<TargetId>>> {
    Ok(visible(state, caller)
        .await?
        .map(|v| v.into_iter().map(|t| t.id).collect()))
}

/// Checks the caller may see the recording `id` (its target's site).
pub(crate) async fn check_recording(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<()> {
    if limited_to(&caller.user).is_none() {
        return Ok(());
    }
    let lib = state.recordings.clone();
    let id = id.to_owned();
    let target =
        super::extract::blocking(move || Ok(Manifest::read(&lib.find(&id)?)?.meta.target)).await?;
    match state.store.target_by_name(&target).await? {
        Some(t) if in_scope(&caller.user, &t) => Ok(()),
        _ => Err(absent()),
    }
}
