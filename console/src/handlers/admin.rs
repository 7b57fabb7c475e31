//! Administration: registering vendors, engineers and targets, disabling accounts, issuing
//! enrollment codes.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::assignments::{AssignmentView, NewAssignmentBody};
use sekisho_approval_api::api::dto::{
    AttestationBody, ContactBody, CredentialBody, LevelBody, LevelsBody, NewTargetBody,
    NewVendorBody, NewVendorUserBody, TargetView, UserPatchBody, UserView, VendorView,
};
use sekisho_approval_api::api::users::EnrollmentCodeView;
use sekisho_approval_api::api::vendors::PolicyView;
use sekisho_domain::user::UserStatus;

use crate::client::{Console, Ignored, Refusal};
use crate::extract::{Fields, LoggedIn, Notice, Posted, back_to, field, frame, unix_newlines};
use crate::pages::admin::{self as page, AdminView};
use crate::pages::layout::urlencode;

pub(crate) async fn admin(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let vendors: Vec<VendorView> = console.fetch(&ctx, "/api/v1/vendors").await?;
    let users: Vec<UserView> = console.get(&ctx, "/api/v1/users").await.unwrap_or_default();
    let targets: Vec<TargetView> = console
        .get(&ctx, "/api/v1/targets")
        .await
        .unwrap_or_default();
    let assignments: Vec<AssignmentView> = console
        .get(&ctx, "/api/v1/assignments")
        .await
        .unwrap_or_default();
    let checklist = console
        .get::<PolicyView>(&ctx, "/api/v1/policy")
        .await
        .map(|p| p.checklist)
        .unwrap_or_default();
    Ok(page::admin(
        &frame(&ctx, &me, notice),
        &console.zone,
        &AdminView {
            vendors: &vendors,
            users: &users,
            targets: &targets,
            assignments: &assignments,
            checklist: &checklist,
        },
    ))
}

/// Back to the administration page with the API's verdict.
fn back_to_admin<T>(answer: &Result<T, Refusal>) -> Response {
    back_to("/console/admin", "ok", answer)
}

/// Back to the administration page with a problem of the form itself.
fn form_problem(message: &str) -> Response {
    Redirect::to(&format!("/console/admin?error={}", urlencode(message))).into_response()
}

/// An optional text field: `None` when left empty.
fn optional(f: &Fields, name: &str) -> Option<String> {
    Some(field(f, name))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

pub(crate) async fn create_vendor(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    // Every checklist item is answered: ticked is yes, unticked no.
    let checklist = match console.get::<PolicyView>(&ctx, "/api/v1/policy").await {
        Ok(p) => p.checklist,
        Err(r) => return back_to_admin::<()>(&Err(r)),
    };
    let answers: BTreeMap<String, bool> = checklist
        .iter()
        .map(|i| (i.key.clone(), f.contains_key(&format!("check_{}", i.key))))
        .collect();
    let body = NewVendorBody {
        name: field(&f, "name").to_owned(),
        contact: ContactBody {
            name: field(&f, "contact").to_owned(),
            email: None,
            phone: None,
        },
        attestation: Some(AttestationBody {
            answers,
            attested_by: field(&f, "attested_by").to_owned(),
            attested_at: None,
            expires_at: None,
        }),
    };
    back_to_admin(
        &console
            .send::<Ignored>(&ctx, Method::POST, "/api/v1/vendors", &body)
            .await,
    )
}

pub(crate) async fn create_engineer(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let body = NewVendorUserBody {
        username: field(&f, "username").to_owned(),
        display_name: optional(&f, "display_name"),
        email: None,
        // Passwords are taken as typed, spaces included.
        password: f.get("password").cloned().unwrap_or_default(),
        expires_at: None,
    };
    let path = format!("/api/v1/vendors/{}/users", urlencode(field(&f, "vendor")));
    back_to_admin(
        &console
            .send::<Ignored>(&ctx, Method::POST, &path, &body)
            .await,
    )
}

pub(crate) async fn set_user_status(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let wanted = field(&f, "status");
    let Some(status) = [UserStatus::Active, UserStatus::Disabled]
        .into_iter()
        .find(|s| s.as_str() == wanted)
    else {
        return form_problem(&format!(
            "status: `{wanted}` is neither active nor disabled"
        ));
    };
    let body = UserPatchBody {
        display_name: None,
        email: None,
        status: Some(status),
        expires_at: None,
        password: None,
        site: None,
        language: None,
    };
    let path = format!("/api/v1/users/{}", urlencode(&id));
    back_to_admin(
        &console
            .send::<Ignored>(&ctx, Method::PATCH, &path, &body)
            .await,
    )
}

pub(crate) async fn enrollment_code(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Path(id): Path<String>,
    _: Posted<Fields>,
) -> Response {
    let path = format!("/api/v1/users/{}/enrollment-codes", urlencode(&id));
    match console.post::<EnrollmentCodeView>(&ctx, &path).await {
        Ok(code) => {
            page::enrollment_code(&frame(&ctx, &me, Notice::default()), &console.zone, &code)
        }
        Err(r) => back_to_admin::<()>(&Err(r)),
    }
}

pub(crate) async fn create_target(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let ports: Result<Vec<u16>, _> = field(&f, "allowed_ports")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse::<u16>)
        .collect();
    let Ok(ports) = ports else {
        return form_problem(&format!(
            "allowed ports: `{}` is not a list of port numbers",
            field(&f, "allowed_ports")
        ));
    };
    let level = |prefix: &str| -> Option<LevelBody> {
        let account = field(&f, &format!("{prefix}_account"));
        if account.is_empty() {
            return None;
        }
        let key = unix_newlines(f.get(&format!("{prefix}_key")).map_or("", String::as_str));
        let change = prefix == "change";
        Some(LevelBody {
            account: account.to_owned(),
            credential: Some(CredentialBody {
                password: None,
                private_key: Some(key),
            }),
            ssh: true,
            allowed_ports: if change { ports.clone() } else { vec![] },
            port_forwarding: change && f.contains_key("port_forwarding"),
            file_upload: change && f.contains_key("file_upload"),
            file_download: f.contains_key(&format!("{prefix}_download")),
            download_max_bytes: None,
            rdp: f.contains_key(&format!("{prefix}_rdp")),
            rdp_clipboard: change && f.contains_key("rdp_clipboard"),
            rdp_drives: change && f.contains_key("rdp_drives"),
        })
    };
    let port = match field(&f, "port") {
        "" => 22,
        p => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => return form_problem(&format!("SSH port: `{p}` is not a port number")),
        },
    };
    let rdp_port = match field(&f, "rdp_port") {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => {
                return form_problem(&format!("Remote Desktop port: `{p}` is not a port number"));
            }
        },
    };
    let body = NewTargetBody {
        name: field(&f, "name").to_owned(),
        host: field(&f, "host").to_owned(),
        port,
        rdp_port,
        host_key: optional(&f, "host_key"),
        site: optional(&f, "site"),
        levels: LevelsBody {
            reference: level("reference"),
            change: level("change"),
        },
    };
    back_to_admin(
        &console
            .send::<Ignored>(&ctx, Method::POST, "/api/v1/targets", &body)
            .await,
    )
}

pub(crate) async fn create_assignment(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let ends_at = match field(&f, "last_day") {
        "" => None,
        day => match console.zone.after_day(day) {
            Ok(at) => Some(at),
            Err(_) => {
                return form_problem(&format!("last day of the contract: `{day}` is not a date"));
            }
        },
    };
    let body = NewAssignmentBody {
        vendor_id: field(&f, "vendor_id").to_owned(),
        target_id: field(&f, "target_id").to_owned(),
        contract: field(&f, "contract").to_owned(),
        sla: unix_newlines(field(&f, "sla")),
        boundary: unix_newlines(field(&f, "boundary")),
        ends_at,
    };
    back_to_admin(
        &console
            .send::<Ignored>(&ctx, Method::POST, "/api/v1/assignments", &body)
            .await,
    )
}

pub(crate) async fn remove_assignment(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, .. }: Posted<Fields>,
) -> Response {
    let path = format!("/api/v1/assignments/{}", urlencode(&id));
    back_to_admin(&console.delete::<Ignored>(&ctx, &path).await)
}
