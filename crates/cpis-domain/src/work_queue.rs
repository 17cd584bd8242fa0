//! The LA work queue's rules (docs/WORKFLOW.md, "The LA work queue"): acknowledgement outcomes
//! and notes, assignment, which notifications can become overdue, the queue's order, and how
//! repeat lookups of one child at one setting collapse into one work item.

use crate::NotificationKind;
use chrono::{DateTime, Duration, Utc};

/// What the LA did about a notification, recorded when it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckOutcome {
    /// The child's case is known and nothing more is needed.
    KnownNoAction,
    /// The allocated social worker was told.
    SocialWorkerInformed,
    /// The LA contacted the care setting.
    ContactedSetting,
    /// Referred to the multi-agency safeguarding hub.
    ReferredToMash,
    /// Anything else (the note says what).
    Other,
}

impl AckOutcome {
    pub const ALL: [AckOutcome; 5] = [
        AckOutcome::KnownNoAction,
        AckOutcome::SocialWorkerInformed,
        AckOutcome::ContactedSetting,
        AckOutcome::ReferredToMash,
        AckOutcome::Other,
    ];

    /// The code stored and used by the API.
    pub fn code(self) -> &'static str {
        match self {
            AckOutcome::KnownNoAction => "known-no-action",
            AckOutcome::SocialWorkerInformed => "social-worker-informed",
            AckOutcome::ContactedSetting => "contacted-setting",
            AckOutcome::ReferredToMash => "referred-to-mash",
            AckOutcome::Other => "other",
        }
    }

    /// What people read.
    pub fn label(self) -> &'static str {
        match self {
            AckOutcome::KnownNoAction => "Known, no action",
            AckOutcome::SocialWorkerInformed => "Social worker informed",
            AckOutcome::ContactedSetting => "Contacted the setting",
            AckOutcome::ReferredToMash => "Referred to MASH",
            AckOutcome::Other => "Other",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == s)
    }

    /// Every code, comma separated (for error messages).
    pub fn codes() -> String {
        Self::ALL.map(AckOutcome::code).join(", ")
    }
}

/// Longest acknowledgement note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Longest assignee name, in characters.
pub const MAX_ASSIGNEE_CHARS: usize = 100;

/// Why an acknowledgement or assignment was refused. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueInputError {
    #[error("outcome must be one of: {}", AckOutcome::codes())]
    UnknownOutcome,
    #[error("note must be at most {MAX_NOTE_CHARS} characters (it has {0})")]
    NoteTooLong(usize),
    #[error("assign to a team or worker: a name of 1 to {MAX_ASSIGNEE_CHARS} characters")]
    BadAssignee,
}

/// An acknowledgement's content: the outcome and an optional note (trimmed, never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckDetails {
    pub outcome: Option<AckOutcome>,
    pub note: Option<String>,
}

impl AckDetails {
    /// No outcome, no note (an API client that acknowledges receipt only).
    pub fn receipt() -> Self {
        AckDetails {
            outcome: None,
            note: None,
        }
    }

    /// Parses an outcome code (absent allowed) and a note.
    pub fn parse(outcome: Option<&str>, note: Option<&str>) -> Result<Self, QueueInputError> {
        let outcome = match outcome.map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(AckOutcome::from_code(c).ok_or(QueueInputError::UnknownOutcome)?),
        };
        let note = match note.map(str::trim) {
            None | Some("") => None,
            Some(n) => {
                let len = n.chars().count();
                if len > MAX_NOTE_CHARS {
                    return Err(QueueInputError::NoteTooLong(len));
                }
                Some(n.to_owned())
            }
        };
        Ok(AckDetails { outcome, note })
    }
}

/// A team or worker a notification is assigned to (free text, trimmed, 1 to
/// [`MAX_ASSIGNEE_CHARS`] characters, no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee(String);

impl Assignee {
    pub fn parse(s: &str) -> Result<Self, QueueInputError> {
        let s = s.trim();
        let len = s.chars().count();
        if len == 0 || len > MAX_ASSIGNEE_CHARS || s.chars().any(char::is_control) {
            return Err(QueueInputError::BadAssignee);
        }
        Ok(Assignee(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Kinds someone must act on: they become overdue when left unacknowledged. Upload reports and
/// escalations themselves never do.
pub fn actionable(kind: NotificationKind) -> bool {
    !matches!(
        kind,
        NotificationKind::UploadReport | NotificationKind::Escalation
    )
}

/// The actionable kinds, as codes (for queries).
pub fn actionable_codes() -> Vec<String> {
    NotificationKind::ALL
        .into_iter()
        .filter(|k| actionable(*k))
        .map(|k| k.code().to_owned())
        .collect()
}

/// Whether a notification created at `created_at` is overdue at `now`.
pub fn overdue(
    kind: NotificationKind,
    created_at: DateTime<Utc>,
    acknowledged: bool,
    now: DateTime<Utc>,
    deadline: Duration,
) -> bool {
    actionable(kind) && !acknowledged && created_at + deadline <= now
}

/// What the grouping and ordering rules read of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKey {
    pub kind: NotificationKind,
    /// The child's (or mother's) NHS number, when the notification names one.
    pub nhs_number: Option<String>,
    /// The ODS code of the setting that looked, for accesses.
    pub setting: Option<String>,
    /// When the lookup (or event) happened.
    pub time: DateTime<Utc>,
    pub acknowledged: bool,
}

/// Collapses repeat lookups: indexes into `items` (any order), grouped into work items. Access
/// notifications of the same child at the same setting, in the same acknowledgement state,
/// belong to one item while each lies within `window` of the item's earliest lookup; a lookup
/// later than that starts a new item. Everything else is an item of its own. Items come out
/// newest first (by their latest time), and each item's indexes newest first.
pub fn group_repeats(items: &[QueueKey], window: Duration) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Oldest first, so each item is anchored at its earliest lookup.
    order.sort_by_key(|&i| (items[i].time, i));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    // Open items by (child, setting, acknowledged): the group's index and its start.
    let mut open: std::collections::HashMap<(String, String, bool), (usize, DateTime<Utc>)> =
        std::collections::HashMap::new();
    for i in order {
        let it = &items[i];
        let key = match (it.kind, &it.nhs_number, &it.setting) {
            (NotificationKind::Access, Some(n), Some(s)) => {
                Some((n.clone(), s.clone(), it.acknowledged))
            }
            _ => None,
        };
        match key {
            Some(k) => match open.get(&k) {
                Some(&(g, start)) if it.time - start <= window => groups[g].push(i),
                _ => {
                    open.insert(k, (groups.len(), it.time));
                    groups.push(vec![i]);
                }
            },
            None => groups.push(vec![i]),
        }
    }
    for g in &mut groups {
        g.sort_by_key(|&i| std::cmp::Reverse((items[i].time, i)));
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.first().map(|&i| (items[i].time, i))));
    groups
}

/// The work queue's configuration (`[work_queue]` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkQueuePolicy {
    /// Hours an actionable notification may stay unacknowledged before it is overdue and
    /// escalated (default 24: information about an open case is an Initial Contact, to be
    /// acted on within a working day).
    pub escalation_hours: u32,
    /// Minutes within which repeat lookups of one child at one setting collapse into one item
    /// (default 240: one emergency department attendance, by the four-hour standard, is looked
    /// up by triage, the treating clinician and the paediatrician; 0 turns collapsing off).
    pub repeat_window_minutes: u32,
}

impl Default for WorkQueuePolicy {
    fn default() -> Self {
        WorkQueuePolicy {
            escalation_hours: 24,
            repeat_window_minutes: 240,
        }
    }
}

impl WorkQueuePolicy {
    /// Checks the bounds: escalation 1 to 168 hours (a week), repeat window 0 to 1440 minutes.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=168).contains(&self.escalation_hours) {
            return Err("work_queue.escalation_hours must be 1 to 168".into());
        }
        if self.repeat_window_minutes > 1440 {
            return Err("work_queue.repeat_window_minutes must be 0 to 1440".into());
        }
        Ok(())
    }
    pub fn deadline(&self) -> Duration {
        Duration::hours(i64::from(self.escalation_hours))
    }
    pub fn repeat_window(&self) -> Duration {
        Duration::minutes(i64::from(self.repeat_window_minutes))
    }
}

/// What the work queue files a notification under, read from its payload: the child's (or
/// mother's) NHS number, the setting that looked (accesses), and an attendance pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadKeys {
    pub nhs_number: Option<String>,
    pub setting: Option<String>,
    pub pattern: Option<String>,
}

impl PayloadKeys {
    /// The keys of `payload`: each one a non-empty string where the payload has it, else
    /// `None` (and all `None` for text that is not a JSON object). Only the values on the
    /// keys' paths are read; the rest of the payload is skipped, not built into a tree (the
    /// log thread reads every notification it copies in: 1.6 µs a payload against 4.1 for
    /// the tree; issue #16). cpis writes no payload with a repeated key (one would read as none).
    pub fn of(payload: &str) -> Self {
        type Raw<'a> = Option<&'a serde_json::value::RawValue>;
        #[derive(serde::Deserialize)]
        struct Top<'a> {
            #[serde(borrow, default)]
            child: Raw<'a>,
            #[serde(borrow, default)]
            nhs_number: Raw<'a>,
            #[serde(borrow, default)]
            access: Raw<'a>,
            #[serde(borrow, default)]
            pattern: Raw<'a>,
        }
        #[derive(serde::Deserialize)]
        struct Child<'a> {
            #[serde(borrow, default)]
            nhs_number: Raw<'a>,
        }
        #[derive(serde::Deserialize)]
        struct AccessKeys<'a> {
            #[serde(borrow, default)]
            organisation: Raw<'a>,
        }
        #[derive(serde::Deserialize)]
        struct Organisation<'a> {
            #[serde(borrow, default)]
            ods_code: Raw<'a>,
        }
        /// A non-empty string, else `None` (any other value, or none).
        fn text(raw: Raw<'_>) -> Option<String> {
            serde_json::from_str::<String>(raw?.get())
                .ok()
                .filter(|s| !s.is_empty())
        }
        /// `json` read as `T` when it is an object (serde would read a struct from an array too).
        fn object<'a, T: serde::Deserialize<'a>>(json: &'a str) -> Option<T> {
            let json = json.trim_start_matches([' ', '\t', '\n', '\r']);
            json.starts_with('{')
                .then(|| serde_json::from_str(json).ok())
                .flatten()
        }
        let Some(top) = object::<Top<'_>>(payload) else {
            return PayloadKeys::default();
        };
        PayloadKeys {
            nhs_number: (top.child.and_then(|c| object::<Child<'_>>(c.get())))
                .and_then(|c| text(c.nhs_number))
                .or_else(|| text(top.nhs_number)),
            setting: (top.access.and_then(|a| object::<AccessKeys<'_>>(a.get())))
                .and_then(|a| {
                    a.organisation
                        .and_then(|o| object::<Organisation<'_>>(o.get()))
                })
                .and_then(|o| text(o.ods_code)),
            pattern: text(top.pattern),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(min)
    }

    fn access(nhs: &str, setting: &str, min: i64) -> QueueKey {
        QueueKey {
            kind: NotificationKind::Access,
            nhs_number: Some(nhs.into()),
            setting: Some(setting.into()),
            time: at(min),
            acknowledged: false,
        }
    }

    #[test]
    fn outcome_codes_round_trip_and_unknown_is_refused() {
        for o in AckOutcome::ALL {
            assert_eq!(AckOutcome::from_code(o.code()), Some(o));
        }
        assert_eq!(
            AckDetails::parse(Some("shrug"), None),
            Err(QueueInputError::UnknownOutcome)
        );
        let d = AckDetails::parse(Some("referred-to-mash"), Some("  called  ")).unwrap();
        assert_eq!(d.outcome, Some(AckOutcome::ReferredToMash));
        assert_eq!(d.note.as_deref(), Some("called"));
        assert_eq!(
            AckDetails::parse(None, Some(" ")).unwrap(),
            AckDetails::receipt()
        );
    }

    #[test]
    fn note_is_bounded_in_characters() {
        let ok = "é".repeat(MAX_NOTE_CHARS);
        assert!(AckDetails::parse(None, Some(&ok)).is_ok());
        let long = "é".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            AckDetails::parse(None, Some(&long)),
            Err(QueueInputError::NoteTooLong(MAX_NOTE_CHARS + 1))
        );
    }

    #[test]
    fn assignee_is_bounded_and_printable() {
        assert_eq!(
            Assignee::parse(" MASH team ").unwrap().as_str(),
            "MASH team"
        );
        assert!(Assignee::parse("  ").is_err());
        assert!(Assignee::parse("a\nb").is_err());
        assert!(Assignee::parse(&"x".repeat(MAX_ASSIGNEE_CHARS + 1)).is_err());
    }

    #[test]
    fn only_actionable_kinds_become_overdue_at_the_deadline() {
        let d = Duration::hours(24);
        let k = NotificationKind::Access;
        assert!(!overdue(
            k,
            at(0),
            false,
            at(0) + d - Duration::seconds(1),
            d
        ));
        assert!(overdue(k, at(0), false, at(0) + d, d));
        assert!(!overdue(k, at(0), true, at(0) + d, d));
        assert!(!overdue(
            NotificationKind::UploadReport,
            at(0),
            false,
            at(0) + d,
            d
        ));
        assert!(!overdue(
            NotificationKind::Escalation,
            at(0),
            false,
            at(0) + d,
            d
        ));
        assert!(actionable_codes().contains(&"was-not-brought".to_owned()));
    }

    #[test]
    fn repeats_within_the_window_collapse_anchored_at_the_first() {
        let items = vec![
            access("9000000009", "RX1", 0),
            access("9000000009", "RX1", 60),
            access("9000000009", "RX2", 70),
            access("9000000009", "RX1", 240),
            access("9000000009", "RX1", 241),
            access("9000000017", "RX1", 30),
        ];
        let g = group_repeats(&items, Duration::hours(4));
        // The 241-minute lookup is more than 4 h after the first: a new item.
        assert_eq!(g, vec![vec![4], vec![3, 1, 0], vec![2], vec![5]]);
    }

    #[test]
    fn acknowledged_and_other_kinds_are_not_merged() {
        let mut acked = access("9000000009", "RX1", 5);
        acked.acknowledged = true;
        let mut other = access("9000000009", "RX1", 6);
        other.kind = NotificationKind::WasNotBrought;
        let items = vec![access("9000000009", "RX1", 0), acked, other];
        let g = group_repeats(&items, Duration::hours(4));
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn policy_bounds_are_checked() {
        assert!(WorkQueuePolicy::default().validate().is_ok());
        let bad = WorkQueuePolicy {
            escalation_hours: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = WorkQueuePolicy {
            repeat_window_minutes: 1441,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn payload_keys_are_read_from_access_and_other_payloads() {
        let k = PayloadKeys::of(
            r#"{"child":{"nhs_number":"9000000009"},"access":{"organisation":{"ods_code":"RX1"}},"pattern":"frequent-attendance"}"#,
        );
        assert_eq!(k.nhs_number.as_deref(), Some("9000000009"));
        assert_eq!(k.setting.as_deref(), Some("RX1"));
        assert_eq!(k.pattern.as_deref(), Some("frequent-attendance"));
        let k = PayloadKeys::of(r#"{"nhs_number":"9000000017"}"#);
        assert_eq!(k.nhs_number.as_deref(), Some("9000000017"));
        assert_eq!(PayloadKeys::of("not json"), PayloadKeys::default());
    }

    /// The keys as cpis read them before: the whole payload parsed into a `Value` tree.
    fn keys_from_a_tree(payload: &str) -> PayloadKeys {
        let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(&v, |v, k| v.get(*k))
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        PayloadKeys {
            nhs_number: text(&["child", "nhs_number"]).or_else(|| text(&["nhs_number"])),
            setting: text(&["access", "organisation", "ods_code"]),
            pattern: text(&["pattern"]),
        }
    }

    #[test]
    fn payload_keys_read_without_a_tree_are_the_keys_the_tree_gave() {
        let payloads = [
            r#"{"access":{"contact":null,"id":"a","organisation":{"name":"ED","ods_code":"RX1","phone":null}},"attendance":{"seen_6_months":3},"child":{"nhs_number":"9000000009","plans":[{"state":"active"}]},"pattern":"frequent-attendance"}"#,
            r#"{"child":{"nhs_number":""},"nhs_number":"9000000017"}"#,
            r#"{"child":{"nhs_number":5},"nhs_number":"9000000017","pattern":null}"#,
            r#"{"child":"9000000009","access":{"organisation":"RX1"},"pattern":["x"]}"#,
            r#"{"child":null,"access":null,"pattern":""}"#,
            r#"{"access":{"organisation":{"ods_code":"RX"1"}},"pattern":"a\b"}"#,
            r#"{"nested":{"child":{"nhs_number":"1"}},"unknown":[1,{"a":2}]}"#,
            r#"["not","an","object"]"#,
            r#" {"child":["9000000009"],"access":{"organisation":["RX1"]}}"#,
            r#"{"access":[{"organisation":{"ods_code":"RX1"}}],"pattern":"p"}"#,
            r#""text""#,
            "not json",
            "",
            r#"{"child":{"nhs_number":"9000000009"}"#,
        ];
        for p in payloads {
            assert_eq!(PayloadKeys::of(p), keys_from_a_tree(p), "{p}");
        }
    }

    proptest! {
        #[test]
        fn grouping_partitions_and_respects_the_window(
            raw in proptest::collection::vec((0u8..3, 0u8..3, 0i64..2000, any::<bool>()), 0..40),
            window in 1i64..600,
        ) {
            let items: Vec<QueueKey> = raw.iter().map(|(c, s, m, a)| {
                let mut k = access(&format!("child{c}"), &format!("S{s}"), *m);
                k.acknowledged = *a;
                k
            }).collect();
            let w = Duration::minutes(window);
            let groups = group_repeats(&items, w);
            // Every index exactly once.
            let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..items.len()).collect::<Vec<_>>());
            for g in &groups {
                let first = &items[g[0]];
                let times: Vec<_> = g.iter().map(|&i| items[i].time).collect();
                let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
                prop_assert!(*max - *min <= w);
                for &i in g {
                    prop_assert_eq!(&items[i].nhs_number, &first.nhs_number);
                    prop_assert_eq!(&items[i].setting, &first.setting);
                    prop_assert_eq!(items[i].acknowledged, first.acknowledged);
                }
            }
            // Newest first.
            let latest: Vec<_> = groups.iter().map(|g| items[g[0]].time).collect();
            prop_assert!(latest.windows(2).all(|p| p[0] >= p[1]));
        }
    }
}
