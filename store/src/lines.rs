//! The inventory of external connection lines (see [`sekisho_domain::line`]). Every change and
//! every review is audited in its transaction.

use jiff::Timestamp;
use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::{LineId, VendorId};
use sekisho_domain::line::{Line, LineStatus, Route};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, conflict, from_micros, micros, now};

const COLUMNS: &str = "id, name, route, vendor_id, owner, location, device, firmware, \
    firmware_updated_at, measures, reviewed_at, status, notes, created_at, updated_at";

fn route_from(s: &str) -> Result<Route> {
    match s {
        "sekisho" => Ok(Route::Sekisho),
        "exception" => Ok(Route::Exception),
        other => Err(StoreError::Corrupt(format!("line route `{other}`"))),
    }
}

fn status_from(s: &str) -> Result<LineStatus> {
    match s {
        "active" => Ok(LineStatus::Active),
        "retired" => Ok(LineStatus::Retired),
        other => Err(StoreError::Corrupt(format!("line status `{other}`"))),
    }
}

fn opt_time(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    row.try_get::<Option<i64>, _>(col)?
        .map(from_micros)
        .transpose()
}

fn row_to_line(row: &AnyRow) -> Result<Line> {
    Ok(Line {
        id: super::parse("line id", &row.try_get::<String, _>("id")?)?,
        name: row.try_get("name")?,
        route: route_from(&row.try_get::<String, _>("route")?)?,
        vendor_id: row
            .try_get::<Option<String>, _>("vendor_id")?
            .map(|v| super::parse("vendor id", &v))
            .transpose()?,
        owner: row.try_get("owner")?,
        location: row.try_get("location")?,
        device: row.try_get("device")?,
        firmware: row.try_get("firmware")?,
        firmware_updated_at: opt_time(row, "firmware_updated_at")?,
        measures: row.try_get("measures")?,
        reviewed_at: opt_time(row, "reviewed_at")?,
        status: status_from(&row.try_get::<String, _>("status")?)?,
        notes: row.try_get("notes")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
    })
}

/// A line as entered; texts checked by the caller.
#[derive(Clone, Debug, Default)]
pub struct LineFields {
    pub name: String,
    pub route: Option<Route>,
    pub vendor_id: Option<VendorId>,
    pub owner: String,
    pub location: String,
    pub device: String,
    pub firmware: String,
    pub firmware_updated_at: Option<Timestamp>,
    pub measures: String,
    pub notes: String,
}

/// What may change on a line; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct LineChanges {
    pub name: Option<String>,
    pub route: Option<Route>,
    pub vendor_id: Option<Option<VendorId>>,
    pub owner: Option<String>,
    pub location: Option<String>,
    pub device: Option<String>,
    pub firmware: Option<String>,
    pub firmware_updated_at: Option<Option<Timestamp>>,
    pub measures: Option<String>,
    pub status: Option<LineStatus>,
    pub notes: Option<String>,
}

fn taken(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("a line named `{name}` is already in the inventory")
}

impl Store {
    pub async fn create_line(
        &self,
        f: LineFields,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Line> {
        let at = now();
        let line = Line {
            id: LineId::new(),
            name: f.name,
            route: f.route.unwrap_or(Route::Sekisho),
            vendor_id: f.vendor_id,
            owner: f.owner,
            location: f.location,
            device: f.device,
            firmware: f.firmware,
            firmware_updated_at: f.firmware_updated_at,
            measures: f.measures,
            reviewed_at: None,
            status: LineStatus::Active,
            notes: f.notes,
            created_at: at,
            updated_at: at,
        };
        let mut tx = self.begin().await?;
        let sql = format!(
            "INSERT INTO lines ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        bind_line(sqlx::query(sqlx::AssertSqlSafe(sql)), &line)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, taken(&line.name)))?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                line.vendor_id,
                source,
                AuditEvent::LineCreated {
                    line: line.id,
                    name: line.name.clone(),
                    route: line.route,
                    vendor: line.vendor_id,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(line)
    }

    /// Applies `changes` and audits the fields changed.
    pub async fn update_line(
        &self,
        id: LineId,
        c: LineChanges,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Line> {
        let mut tx = self.begin().await?;
        let mut l = line_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("line {id}")))?;
        let mut changed: Vec<String> = vec![];
        fn set<T: PartialEq>(field: &mut T, new: Option<T>, name: &str, changed: &mut Vec<String>) {
            if let Some(v) = new
                && *field != v
            {
                *field = v;
                changed.push(name.to_owned());
            }
        }
        set(&mut l.name, c.name, "name", &mut changed);
        set(&mut l.route, c.route, "route", &mut changed);
        set(&mut l.vendor_id, c.vendor_id, "vendor", &mut changed);
        set(&mut l.owner, c.owner, "owner", &mut changed);
        set(&mut l.location, c.location, "location", &mut changed);
        set(&mut l.device, c.device, "device", &mut changed);
        set(&mut l.firmware, c.firmware, "firmware", &mut changed);
        set(
            &mut l.firmware_updated_at,
            c.firmware_updated_at,
            "firmware_updated_at",
            &mut changed,
        );
        set(&mut l.measures, c.measures, "measures", &mut changed);
        set(&mut l.status, c.status, "status", &mut changed);
        set(&mut l.notes, c.notes, "notes", &mut changed);
        l.updated_at = now();
        let sql = "UPDATE lines SET name = $2, route = $3, vendor_id = $4, owner = $5, location = $6, \
                   device = $7, firmware = $8, firmware_updated_at = $9, measures = $10, reviewed_at = $11, \
                   status = $12, notes = $13, created_at = $14, updated_at = $15 WHERE id = $1";
        bind_line(sqlx::query(sql), &l)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, taken(&l.name)))?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                l.vendor_id,
                source,
                AuditEvent::LineUpdated {
                    line: l.id,
                    name: l.name.clone(),
                    changes: changed,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(l)
    }

    /// Records a review of the line now, with `note`.
    pub async fn review_line(
        &self,
        id: LineId,
        note: Option<String>,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Line> {
        let mut tx = self.begin().await?;
        let mut l = line_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("line {id}")))?;
        let at = now();
        l.reviewed_at = Some(at);
        l.updated_at = at;
        sqlx::query("UPDATE lines SET reviewed_at = $1, updated_at = $1 WHERE id = $2")
            .bind(micros(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                l.vendor_id,
                source,
                AuditEvent::LineReviewed {
                    line: l.id,
                    name: l.name.clone(),
                    note,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(l)
    }

    pub async fn line(&self, id: LineId) -> Result<Option<Line>> {
        line_in(&mut *self.pool.acquire().await?, id).await
    }

    /// Every line, by name.
    pub async fn lines(&self) -> Result<Vec<Line>> {
        let sql = format!("SELECT {COLUMNS} FROM lines ORDER BY name");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_line)
            .collect()
    }
}

fn bind_line<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    l: &Line,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(l.id.to_string())
        .bind(l.name.clone())
        .bind(l.route.as_str())
        .bind(l.vendor_id.map(|v| v.to_string()))
        .bind(l.owner.clone())
        .bind(l.location.clone())
        .bind(l.device.clone())
        .bind(l.firmware.clone())
        .bind(l.firmware_updated_at.map(micros))
        .bind(l.measures.clone())
        .bind(l.reviewed_at.map(micros))
        .bind(l.status.as_str())
        .bind(l.notes.clone())
        .bind(micros(l.created_at))
        .bind(micros(l.updated_at))
}

async fn line_in(conn: &mut AnyConnection, id: LineId) -> Result<Option<Line>> {
    let sql = format!("SELECT {COLUMNS} FROM lines WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(row_to_line)
        .transpose()
}
