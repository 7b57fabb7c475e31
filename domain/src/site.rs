//! Sites of a hospital group: a target belongs to a site (or to none: the group's own), and a
//! staff account may be limited to one site. One rule decides what such an account sees and
//! decides.

use crate::target::Target;
use crate::text::{TextError, check_name};
use crate::user::{Role, User};

/// The longest site name.
pub const MAX_SITE: usize = 64;

/// A site name as people type it: a short name without invisible characters.
pub fn check_site(name: &str) -> Result<(), TextError> {
    check_name(name, MAX_SITE)
}

/// Whether accounts of `role` may be limited to a site: approvers and auditors. Admins
/// manage the whole group; a vendor engineer's scope is its vendor.
pub fn may_be_limited(role: Role) -> bool {
    matches!(role, Role::Approver | Role::Auditor)
}

/// The site an approver or auditor is limited to; `None` for the whole group.
pub fn limited_to(user: &User) -> Option<&str> {
    if may_be_limited(user.role) {
        user.site.as_deref()
    } else {
        None
    }
}

/// Whether `user` may see and act on things of `target`: everyone but staff limited to
/// another site. A limited account does not reach targets without a site either: those belong
/// to the group as a whole.
pub fn in_scope(user: &User, target: &Target) -> bool {
    match limited_to(user) {
        None => true,
        Some(site) => target.site.as_deref() == Some(site),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TargetId, UserId};
    use crate::user::UserStatus;

    fn user(role: Role, site: Option<&str>) -> User {
        User {
            id: UserId::new(),
            username: "hana".into(),
            display_name: "Hana".into(),
            email: None,
            role,
            vendor_id: None,
            status: UserStatus::Active,
            expires_at: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            site: site.map(Into::into),
            language: None,
            source: Default::default(),
        }
    }

    fn target(site: Option<&str>) -> Target {
        Target {
            id: TargetId::new(),
            name: "pacs".into(),
            host: "10.0.0.1".into(),
            port: 22,
            reference: None,
            change: None,
            host_key: None,
            rdp_port: None,
            rdp_certificate: None,
            site: site.map(Into::into),
        }
    }

    #[test]
    fn a_limited_account_reaches_its_own_sites_targets_only() {
        let east = target(Some("east"));
        let west = target(Some("west"));
        let group = target(None);
        let everywhere = user(Role::Approver, None);
        let east_only = user(Role::Approver, Some("east"));
        for t in [&east, &west, &group] {
            assert!(in_scope(&everywhere, t));
        }
        assert!(in_scope(&east_only, &east));
        assert!(!in_scope(&east_only, &west));
        assert!(!in_scope(&east_only, &group));
        // A vendor engineer's scope is its vendor, not a site.
        assert!(in_scope(&user(Role::Vendor, Some("east")), &west));
        assert_eq!(limited_to(&user(Role::Auditor, Some("east"))), Some("east"));
        assert_eq!(limited_to(&user(Role::Admin, Some("east"))), None);
        assert!(check_site("east").is_ok() && check_site("").is_err());
    }
}
