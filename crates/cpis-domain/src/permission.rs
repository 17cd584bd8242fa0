//! Permissions, named after national RBAC (SPEC 4).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Permission {
    /// `cpis:view-notify` (B0107): look up a child; unscheduled settings notify the LA.
    #[serde(rename = "cpis:view-notify")]
    ViewNotify,
    /// `cpis:view-silent` (B0170): look up a child without notifying.
    #[serde(rename = "cpis:view-silent")]
    ViewSilent,
    /// `la:upload`: send the LA's files.
    #[serde(rename = "la:upload")]
    LaUpload,
    /// `la:notifications`: read and acknowledge the LA's notifications.
    #[serde(rename = "la:notifications")]
    LaNotifications,
    /// `admin`: directories, users.
    #[serde(rename = "admin")]
    Admin,
    /// `auditor`: read and verify the audit trail.
    #[serde(rename = "auditor")]
    Auditor,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::ViewNotify,
        Permission::ViewSilent,
        Permission::LaUpload,
        Permission::LaNotifications,
        Permission::Admin,
        Permission::Auditor,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Permission::ViewNotify => "cpis:view-notify",
            Permission::ViewSilent => "cpis:view-silent",
            Permission::LaUpload => "la:upload",
            Permission::LaNotifications => "la:notifications",
            Permission::Admin => "admin",
            Permission::Auditor => "auditor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission '{0}' (expected cpis:view-notify, cpis:view-silent, la:upload, la:notifications, admin or auditor)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Permission::ALL
            .into_iter()
            .find(|p| p.code() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A set of permissions, written space-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Permissions(BTreeSet<Permission>);

impl Permissions {
    pub fn new(ps: impl IntoIterator<Item = Permission>) -> Self {
        Permissions(ps.into_iter().collect())
    }
    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }
    /// Parses `"la:upload la:notifications"` (spaces or commas).
    pub fn parse(s: &str) -> Result<Self, UnknownPermission> {
        s.split([' ', ','])
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Permissions)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: Vec<&str> = self.0.iter().map(|p| p.code()).collect();
        f.write_str(&v.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip() {
        let p = Permissions::parse("la:upload, la:notifications  admin").unwrap();
        assert!(p.contains(Permission::LaUpload) && p.contains(Permission::Admin));
        assert!(!p.contains(Permission::ViewNotify));
        assert_eq!(Permissions::parse(&p.to_string()).unwrap(), p);
        assert!(Permissions::parse("la:upload root").is_err());
    }
}
