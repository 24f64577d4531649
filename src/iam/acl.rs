//! Access control lists of buckets and objects: grants of S3's five permissions to users
//! (by canonical id) and to the two global groups, canned ACLs, and what a grant allows.
//! Pure: the S3 layer parses headers and XML into these, the stores persist them.

use serde::{Deserialize, Serialize};

pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
pub const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    FullControl,
    Read,
    Write,
    ReadAcp,
    WriteAcp,
}

impl Permission {
    pub fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "FULL_CONTROL" => Permission::FullControl,
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::FullControl => "FULL_CONTROL",
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
        }
    }

    fn covers(self, wanted: Permission) -> bool {
        self == Permission::FullControl || self == wanted
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// A user by canonical id.
    User(String),
    /// A predefined group by URI (AllUsers, AuthenticatedUsers, LogDelivery).
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An ACL: the owner (canonical id, with full control) and the grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub owner: String,
    pub grants: Vec<Grant>,
}

/// Who is asking, as ACLs see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester<'a> {
    Anonymous,
    /// An authenticated user of this deployment, by canonical id.
    User(&'a str),
}

pub const CANNED: [&str; 6] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

impl Acl {
    /// The owner alone, with full control.
    pub fn private(owner: &str) -> Acl {
        Acl {
            owner: owner.to_string(),
            grants: vec![Grant {
                grantee: Grantee::User(owner.to_string()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// A canned ACL by name; `bucket_owner` is the canonical id of the bucket's owner (for
    /// the `bucket-owner-*` ones on objects).
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Option<Acl> {
        let mut acl = Acl::private(owner);
        let mut add = |grantee: Grantee, permission| {
            acl.grants.push(Grant {
                grantee,
                permission,
            })
        };
        match name {
            "private" => {}
            "public-read" => add(Grantee::Group(ALL_USERS.into()), Permission::Read),
            "public-read-write" => {
                add(Grantee::Group(ALL_USERS.into()), Permission::Read);
                add(Grantee::Group(ALL_USERS.into()), Permission::Write);
            }
            "authenticated-read" => {
                add(Grantee::Group(AUTHENTICATED_USERS.into()), Permission::Read)
            }
            "bucket-owner-read" if bucket_owner != owner => {
                add(Grantee::User(bucket_owner.into()), Permission::Read)
            }
            "bucket-owner-full-control" if bucket_owner != owner => {
                add(Grantee::User(bucket_owner.into()), Permission::FullControl)
            }
            "bucket-owner-read" | "bucket-owner-full-control" => {}
            _ => return None,
        }
        Some(acl)
    }

    /// Does the ACL give `who` the permission `wanted`?
    pub fn allows(&self, who: Requester, wanted: Permission, ignore_public: bool) -> bool {
        if let Requester::User(id) = who {
            if id == self.owner {
                return true;
            }
        }
        self.grants.iter().any(|g| {
            if !g.permission.covers(wanted) {
                return false;
            }
            match (&g.grantee, who) {
                (Grantee::User(id), Requester::User(me)) => id == me,
                (Grantee::Group(g), _) if g == ALL_USERS => !ignore_public,
                (Grantee::Group(g), Requester::User(_)) if g == AUTHENTICATED_USERS => {
                    !ignore_public
                }
                _ => false,
            }
        })
    }

    /// Does the ACL grant anything to everyone or every authenticated user?
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| {
            matches!(&g.grantee, Grantee::Group(u) if u == ALL_USERS || u == AUTHENTICATED_USERS)
        })
    }
}

/// A canonical id for a user name: hex of the first 16 bytes of its blake3 (the root
/// user's is that of its access key).
pub fn canonical_id(name: &str) -> String {
    hex::encode(&blake3::hash(name.as_bytes()).as_bytes()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_acls_grant_what_aws_documents() {
        let pr = Acl::canned("public-read", "o", "o").expect("known");
        assert!(pr.allows(Requester::Anonymous, Permission::Read, false));
        assert!(!pr.allows(Requester::Anonymous, Permission::Write, false));
        assert!(!pr.allows(Requester::Anonymous, Permission::Read, true));
        assert!(pr.allows(Requester::User("o"), Permission::WriteAcp, false));
        assert!(pr.is_public());
        let ar = Acl::canned("authenticated-read", "o", "o").expect("known");
        assert!(!ar.allows(Requester::Anonymous, Permission::Read, false));
        assert!(ar.allows(Requester::User("x"), Permission::Read, false));
        let bo = Acl::canned("bucket-owner-full-control", "w", "b").expect("known");
        assert!(bo.allows(Requester::User("b"), Permission::WriteAcp, false));
        assert!(!bo.allows(Requester::User("x"), Permission::Read, false));
        assert!(!Acl::canned("private", "o", "o").expect("known").is_public());
        assert!(Acl::canned("nope", "o", "o").is_none());
    }
}
