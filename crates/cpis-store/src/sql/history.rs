//! A child's whole access history, read a page at a time (the LA's evidence export,
//! docs/WORKFLOW.md "Evidence export"): oldest first, after a cursor, so a long history is
//! streamed rather than held in memory.

use super::{big, from_row, Db};
use crate::StoreResult;
use cpis_domain::{Access, Accessor, NhsIdentity, NhsNumber};

/// Up to `limit` unscheduled accesses to the child with a cursor after `after` (0: from the
/// first), oldest first, each with its cursor (the access's `seq`). Served by the
/// `accesses_history` index (NHS number, seq; unscheduled only).
pub fn access_history_page(
    db: &mut dyn Db,
    nhs: NhsNumber,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<(u64, Access)>> {
    db.list(
        "SELECT seq, id, time, nhs_number, kind, trace_id, user_id, user_name, role, org_ods,
                org_name, setting_type, sds_user_id, role_profile_id, role_code
         FROM accesses WHERE nhs_number = $1 AND kind = 'unscheduled' AND seq > $2
         ORDER BY seq LIMIT $3",
        &[&nhs.digits(), &big(after), &i64::from(limit)],
        |r| {
            let seq: i64 = r.get(0)?;
            let nhs = from_row!(r, 12 => NhsIdentity { sds_user_id, role_profile_id, role_code });
            let accessor = from_row!(r, 6 => Accessor {
                user_id, user_name, role, organisation, organisation_name, setting_type, nhs = nhs,
                organisation_phone = None, contact = Default::default()
            });
            let access = from_row!(r, 1 => Access {
                id, time, nhs_number, kind, trace_id, accessor = accessor
            });
            Ok((u64::try_from(seq).unwrap_or_default(), access))
        },
    )
}
