//! Who maintains what: vendors assigned to targets under maintenance contracts
//! (see [`sekisho_domain::assignment`]). Every change is audited in its transaction.

use jiff::Timestamp;
use sekisho_domain::assignment::Assignment;
use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::{AssignmentId, TargetId, VendorId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, conflict, from_micros, micros, now};

const COLUMNS: &str =
    "id, vendor_id, target_id, contract, sla, boundary, ends_at, created_at, updated_at";

fn row_to_assignment(row: &AnyRow) -> Result<Assignment> {
    Ok(Assignment {
        id: super::parse("assignment id", &row.try_get::<String, _>("id")?)?,
        vendor_id: super::parse("vendor id", &row.try_get::<String, _>("vendor_id")?)?,
        target_id: super::parse("target id", &row.try_get::<String, _>("target_id")?)?,
        contract: row.try_get("contract")?,
        sla: row.try_get("sla")?,
        boundary: row.try_get("boundary")?,
        ends_at: row
            .try_get::<Option<i64>, _>("ends_at")?
            .map(from_micros)
            .transpose()?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
    })
}

/// A new assignment; the texts are checked by the caller
/// ([`sekisho_domain::assignment::check_texts`]).
#[derive(Debug)]
pub struct NewAssignment {
    pub vendor_id: VendorId,
    pub target_id: TargetId,
    pub contract: String,
    pub sla: String,
    pub boundary: String,
    pub ends_at: Option<Timestamp>,
}

/// What may change on an assignment (its vendor and target may not: remove it and assign anew).
#[derive(Debug, Default)]
pub struct AssignmentChanges {
    pub contract: Option<String>,
    pub sla: Option<String>,
    pub boundary: Option<String>,
    pub ends_at: Option<Option<Timestamp>>,
}

/// Which assignments to list.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssignmentFilter {
    pub vendor: Option<VendorId>,
    pub target: Option<TargetId>,
}

impl Store {
    /// Assigns a vendor to a target. A second assignment of the same pair is a conflict.
    pub async fn create_assignment(
        &self,
        new: NewAssignment,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Assignment> {
        let at = now();
        let a = Assignment {
            id: AssignmentId::new(),
            vendor_id: new.vendor_id,
            target_id: new.target_id,
            contract: new.contract,
            sla: new.sla,
            boundary: new.boundary,
            ends_at: new.ends_at,
            created_at: at,
            updated_at: at,
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO assignments (id, vendor_id, target_id, contract, sla, boundary, ends_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(a.id.to_string())
        .bind(a.vendor_id.to_string())
        .bind(a.target_id.to_string())
        .bind(&a.contract)
        .bind(&a.sla)
        .bind(&a.boundary)
        .bind(a.ends_at.map(micros))
        .bind(micros(at))
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || "this vendor is already assigned to this target".into()))?;
        commit_audited(
            tx,
            actor,
            source,
            a.vendor_id,
            AuditEvent::AssignmentCreated {
                assignment: a.id,
                vendor: a.vendor_id,
                target: a.target_id,
                contract: a.contract.clone(),
                ends_at: a.ends_at,
            },
        )
        .await?;
        Ok(a)
    }

    /// Applies `changes` and audits the fields changed.
    pub async fn update_assignment(
        &self,
        id: AssignmentId,
        changes: AssignmentChanges,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Assignment> {
        let mut tx = self.begin().await?;
        let mut a = assignment_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("assignment {id}")))?;
        let mut changed = vec![];
        if let Some(c) = changes.contract.filter(|c| *c != a.contract) {
            changed.push("contract".to_owned());
            a.contract = c;
        }
        if let Some(s) = changes.sla.filter(|s| *s != a.sla) {
            changed.push("sla".to_owned());
            a.sla = s;
        }
        if let Some(b) = changes.boundary.filter(|b| *b != a.boundary) {
            changed.push("boundary".to_owned());
            a.boundary = b;
        }
        if let Some(e) = changes.ends_at.filter(|e| *e != a.ends_at) {
            let show =
                |t: Option<Timestamp>| t.map_or_else(|| "none".to_owned(), |t| t.to_string());
            changed.push(format!("ends_at: {} -> {}", show(a.ends_at), show(e)));
            a.ends_at = e;
        }
        a.updated_at = now();
        sqlx::query(
            "UPDATE assignments SET contract = $1, sla = $2, boundary = $3, ends_at = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&a.contract)
        .bind(&a.sla)
        .bind(&a.boundary)
        .bind(a.ends_at.map(micros))
        .bind(micros(a.updated_at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        commit_audited(
            tx,
            actor,
            source,
            a.vendor_id,
            AuditEvent::AssignmentUpdated {
                assignment: a.id,
                vendor: a.vendor_id,
                target: a.target_id,
                changes: changed,
            },
        )
        .await?;
        Ok(a)
    }

    /// Ends an assignment: the vendor's engineers lose the target at once (open sessions are
    /// ended by the gateway's next check).
    pub async fn remove_assignment(
        &self,
        id: AssignmentId,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Assignment> {
        let mut tx = self.begin().await?;
        let a = assignment_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("assignment {id}")))?;
        sqlx::query("DELETE FROM assignments WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        commit_audited(
            tx,
            actor,
            source,
            a.vendor_id,
            AuditEvent::AssignmentRemoved {
                assignment: a.id,
                vendor: a.vendor_id,
                target: a.target_id,
                contract: a.contract.clone(),
            },
        )
        .await?;
        Ok(a)
    }

    pub async fn assignment(&self, id: AssignmentId) -> Result<Option<Assignment>> {
        assignment_in(&mut *self.pool.acquire().await?, id).await
    }

    /// The assignment of `vendor` to `target`, if there is one.
    pub async fn assignment_for(
        &self,
        vendor: VendorId,
        target: TargetId,
    ) -> Result<Option<Assignment>> {
        let sql =
            format!("SELECT {COLUMNS} FROM assignments WHERE vendor_id = $1 AND target_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(vendor.to_string())
            .bind(target.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_to_assignment)
            .transpose()
    }

    /// Assignments, of one vendor or one target when the filter says so, oldest first.
    pub async fn assignments(&self, filter: AssignmentFilter) -> Result<Vec<Assignment>> {
        let mut clauses = vec![];
        let mut binds = vec![];
        if let Some(v) = filter.vendor {
            binds.push(v.to_string());
            clauses.push(format!("vendor_id = ${}", binds.len()));
        }
        if let Some(t) = filter.target {
            binds.push(t.to_string());
            clauses.push(format!("target_id = ${}", binds.len()));
        }
        let condition = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!("SELECT {COLUMNS} FROM assignments {condition} ORDER BY created_at, id");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_assignment)
            .collect()
    }
}

/// Audits `event` (about vendor `vendor`) in `tx` and commits both.
async fn commit_audited(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    actor: &Actor,
    source: Option<&str>,
    vendor: VendorId,
    event: AuditEvent,
) -> Result<()> {
    audit::append(
        &mut tx,
        NewAuditEvent::success(actor.clone(), Some(vendor), source, event),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn assignment_in(
    conn: &mut sqlx::AnyConnection,
    id: AssignmentId,
) -> Result<Option<Assignment>> {
    let sql = format!("SELECT {COLUMNS} FROM assignments WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(row_to_assignment)
        .transpose()
}
