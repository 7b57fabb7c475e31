//! The last report of a walk of the audit chain, and the lock that lets one walk run at a
//! time: a walk reads every row (10 s for a million events on SQLite, see BENCHMARKS.md), so
//! it is never done per page view (`audit::check_chain`, `audit::keep_chain_checked`).

use jiff::{SignedDuration, Timestamp};

use super::dto::VerifyView;
use super::error::ApiResult;

#[derive(Debug, Default)]
pub struct ChainCheck {
    walking: tokio::sync::Mutex<()>,
    last: std::sync::Mutex<Option<VerifyView>>,
}

impl ChainCheck {
    /// The last report, if it finished at most `max_age` ago.
    fn young(&self, max_age: Option<SignedDuration>) -> Option<VerifyView> {
        let max_age = max_age?;
        let last = self.last.lock().ok()?.clone()?;
        (Timestamp::now().duration_since(last.verified_at) <= max_age).then_some(last)
    }

    /// The last report if it is at most `max_age` old, else the report of `walk`, run now. A
    /// caller that finds a walk running waits for it and, when it allows an age, takes its
    /// report instead of walking again.
    pub async fn report<F, Fut>(
        &self,
        max_age: Option<SignedDuration>,
        walk: F,
    ) -> ApiResult<VerifyView>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<VerifyView>>,
    {
        if let Some(report) = self.young(max_age) {
            return Ok(report);
        }
        let _one_walk = self.walking.lock().await;
        if let Some(report) = self.young(max_age) {
            return Ok(report);
        }
        let view = walk().await?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(view.clone());
        }
        Ok(view)
    }
}
