//! Vendors and their attestation.

use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::VendorId;
use sekisho_domain::vendor::{Attestation, Contact, Vendor, VendorStatus};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, conflict, from_micros, json, micros, now, parse_json};

const COLUMNS: &str = "id, name, contact, attestation, status, created_at";

pub(crate) fn status_from(s: &str) -> Result<VendorStatus> {
    match s {
        "active" => Ok(VendorStatus::Active),
        "suspended" => Ok(VendorStatus::Suspended),
        "offboarded" => Ok(VendorStatus::Offboarded),
        other => Err(StoreError::Corrupt(format!("vendor status `{other}`"))),
    }
}

fn row_to_vendor(row: &AnyRow) -> Result<Vendor> {
    let attestation: Option<String> = row.try_get("attestation")?;
    Ok(Vendor {
        id: super::parse("vendor id", &row.try_get::<String, _>("id")?)?,
        name: row.try_get("name")?,
        contact: parse_json("vendor contact", &row.try_get::<String, _>("contact")?)?,
        attestation: attestation
            .map(|a| parse_json::<Attestation>("attestation", &a))
            .transpose()?,
        status: status_from(&row.try_get::<String, _>("status")?)?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

/// What may change on a vendor.
#[derive(Debug, Default)]
pub struct VendorChanges {
    pub name: Option<String>,
    pub contact: Option<Contact>,
    pub attestation: Option<Attestation>,
    pub status: Option<VendorStatus>,
}

impl Store {
    pub async fn create_vendor(
        &self,
        name: String,
        contact: Contact,
        attestation: Option<Attestation>,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Vendor> {
        let vendor = Vendor {
            id: VendorId::new(),
            name,
            contact,
            attestation,
            status: VendorStatus::Active,
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO vendors (id, name, contact, attestation, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(vendor.id.to_string())
        .bind(&vendor.name)
        .bind(json(&vendor.contact)?)
        .bind(vendor.attestation.as_ref().map(json).transpose()?)
        .bind(vendor.status.as_str())
        .bind(micros(vendor.created_at))
        .bind(micros(vendor.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || format!("a vendor named `{}` already exists", vendor.name)))?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                Some(vendor.id),
                source,
                AuditEvent::VendorCreated {
                    vendor: vendor.id,
                    name: vendor.name.clone(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(vendor)
    }

    pub async fn vendor(&self, id: VendorId) -> Result<Option<Vendor>> {
        vendor_in(&mut *self.pool.acquire().await?, id).await
    }

    pub async fn vendors(&self) -> Result<Vec<Vendor>> {
        let sql = format!("SELECT {COLUMNS} FROM vendors ORDER BY name");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_vendor)
            .collect()
    }

    /// Applies `changes` and audits them with the list of fields changed.
    pub async fn update_vendor(
        &self,
        id: VendorId,
        changes: VendorChanges,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<Vendor> {
        let mut tx = self.begin().await?;
        let mut v = vendor_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("vendor {id}")))?;
        let mut changed = vec![];
        if let Some(name) = changes.name {
            changed.push("name".to_owned());
            v.name = name;
        }
        if let Some(contact) = changes.contact {
            changed.push("contact".to_owned());
            v.contact = contact;
        }
        if let Some(a) = changes.attestation {
            changed.push("attestation".to_owned());
            v.attestation = Some(a);
        }
        if let Some(status) = changes.status
            && status != v.status
        {
            changed.push(format!(
                "status: {} -> {}",
                v.status.as_str(),
                status.as_str()
            ));
            v.status = status;
        }
        sqlx::query("UPDATE vendors SET name = $1, contact = $2, attestation = $3, status = $4, updated_at = $5 WHERE id = $6")
            .bind(&v.name)
            .bind(json(&v.contact)?)
            .bind(v.attestation.as_ref().map(json).transpose()?)
            .bind(v.status.as_str())
            .bind(micros(now()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || format!("a vendor named `{}` already exists", v.name)))?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                Some(id),
                source,
                AuditEvent::VendorUpdated {
                    vendor: id,
                    name: v.name.clone(),
                    changes: changed,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(v)
    }
}

pub(crate) async fn vendor_in(conn: &mut AnyConnection, id: VendorId) -> Result<Option<Vendor>> {
    let sql = format!("SELECT {COLUMNS} FROM vendors WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(row_to_vendor)
        .transpose()
}
