//! The bundled synthetic demo data (see `demo/README.md`): every English LA with fake phone
//! numbers, fictional care settings, a synthetic demographics index in the 999 test range and
//! upload files for eight LAs. Embedded in the binary so `cpis serve --demo` needs no files.

use crate::loaders::{self, LoadError};
use crate::upload::{EngineError, SpoolError, SpooledFile, Submitted, UploadEngine};
use chrono::NaiveDate;
use cpis_domain::report::UploadMeta;
use cpis_domain::upload::{UploadMode, FORMAT_V1};
use cpis_domain::OdsCode;

pub const LOCAL_AUTHORITIES: &str = include_str!("../../../demo/local_authorities.csv");
pub const CARE_SETTINGS: &str = include_str!("../../../demo/care_settings.csv");
pub const DEMOGRAPHICS: &str = include_str!("../../../demo/demographics.csv");

/// The demo LA upload files: (LA, content).
pub const UPLOADS: [(&str, &str); 8] = [
    (
        "E06000023",
        include_str!("../../../demo/uploads/E06000023.csv"),
    ),
    (
        "E06000052",
        include_str!("../../../demo/uploads/E06000052.csv"),
    ),
    (
        "E08000026",
        include_str!("../../../demo/uploads/E08000026.csv"),
    ),
    (
        "E08000035",
        include_str!("../../../demo/uploads/E08000035.csv"),
    ),
    (
        "E09000012",
        include_str!("../../../demo/uploads/E09000012.csv"),
    ),
    (
        "E09000033",
        include_str!("../../../demo/uploads/E09000033.csv"),
    ),
    (
        "E10000016",
        include_str!("../../../demo/uploads/E10000016.csv"),
    ),
    (
        "E10000017",
        include_str!("../../../demo/uploads/E10000017.csv"),
    ),
];

/// The date the demo files were written for.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: valid date"
)]
pub fn file_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).expect("valid date")
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo data: {0}")]
    Load(#[from] LoadError),
    #[error("demo data: {0}")]
    Engine(#[from] EngineError),
    #[error("demo data: {0}")]
    Spool(#[from] SpoolError),
    #[error("demo data: {0}")]
    Store(#[from] cpis_store::StoreError),
}

/// What loading the demo data did.
#[derive(Debug, Default)]
pub struct DemoLoaded {
    pub local_authorities: usize,
    pub care_settings: usize,
    pub demographics: usize,
    pub uploads_applied: usize,
    pub uploads_already_present: usize,
}

/// Loads the directories, the demographics index and the eight demo uploads. Safe to run again:
/// directories upsert and the uploads are idempotent.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: demo LA code"
)]
pub fn load(engine: &UploadEngine) -> Result<DemoLoaded, DemoError> {
    let store = engine.store();
    let now = chrono::Utc::now();
    let mut done = DemoLoaded {
        local_authorities: store.upsert_local_authorities(
            &loaders::parse_local_authorities(LOCAL_AUTHORITIES.as_bytes())?,
            now,
        )?,
        care_settings: store.upsert_care_settings(
            &loaders::parse_care_settings(CARE_SETTINGS.as_bytes())?,
            now,
        )?,
        demographics: store
            .upsert_demographics(&loaders::parse_demographics(DEMOGRAPHICS.as_bytes())?, now)?,
        ..Default::default()
    };
    for (la, content) in UPLOADS {
        let meta = UploadMeta {
            la: OdsCode::parse(la).expect("demo LA code"),
            file_id: format!("demo-{la}"),
            mode: UploadMode::Delta,
            file_date: file_date(),
            format: FORMAT_V1.to_owned(),
            channel: "demo".to_owned(),
        };
        let file = SpooledFile::from_bytes(content.as_bytes())?;
        match engine.submit(
            &crate::upload::operator_capability(&meta.la.clone(), "demo-loader"),
            meta,
            &file,
            &|_| {},
        )? {
            Submitted::New(_) => done.uploads_applied += 1,
            Submitted::Replay(_) => done.uploads_already_present += 1,
        }
    }
    Ok(done)
}

/// The password of the demo login accounts (demo only; documented in the README).
pub const DEMO_PASSWORD: &str = "cpis-demo-password";

/// The organisation code of the service's own operators (admins, auditors).
pub const OPERATIONS_ORG: &str = "CPISOPS";

/// Creates the demo identities, once (existing ones are left alone):
/// - every LA: system `demo-la-<ODS>` with `la:upload la:notifications`, API token `demo-<ODS>`;
/// - every care setting: `demo-clinician-<ODS>` (`cpis:view-notify`, token `demo-<ODS>`) and
///   `demo-silent-<ODS>` (`cpis:view-silent`, token `demo-silent-<ODS>`);
/// - `demo-admin` (token `demo-admin`) and `demo-auditor` (token `demo-auditor`);
/// - password logins `demo.clinician` (an emergency department), `demo.gp` (a GP practice, which
///   reports children not brought), `demo.coventry` (Coventry social care), `demo.admin`,
///   `demo.auditor`, all with [`DEMO_PASSWORD`].
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: valid code"
)]
pub fn create_identities(
    store: &dyn cpis_store::Store,
) -> Result<usize, cpis_auth::users::UserError> {
    use cpis_auth::users::{self, NewUser};
    use cpis_domain::{Permission as P, Permissions};
    use cpis_store::UserKind;
    let now = chrono::Utc::now();
    let mut created = 0;
    let mut add = |username: String,
                   display: &str,
                   kind: UserKind,
                   org: OdsCode,
                   role: &str,
                   perms: &[P],
                   token: Option<String>,
                   password: Option<&str>|
     -> Result<(), cpis_auth::users::UserError> {
        if store.user_by_username(&username)?.is_some() {
            return Ok(());
        }
        let user = users::add(
            store,
            NewUser {
                username,
                display_name: display.into(),
                kind,
                organisation: org,
                role: role.into(),
                permissions: Permissions::new(perms.iter().copied()),
                password: password.map(str::to_owned),
            },
            now,
        )?;
        if let Some(t) = token {
            users::store_token(store, &user, &t, "demo", None, now)?;
        }
        created += 1;
        Ok(())
    };
    for la in store.local_authorities()? {
        add(
            format!("demo-la-{}", la.ods_code),
            &format!("{} children's social care (demo system)", la.name),
            UserKind::System,
            la.ods_code.clone(),
            "LA system",
            &[P::LaUpload, P::LaNotifications],
            Some(format!("demo-{}", la.ods_code)),
            None,
        )?;
    }
    for line in CARE_SETTINGS.lines().skip(1) {
        let Some(code) = line.split(',').next().and_then(|c| OdsCode::parse(c).ok()) else {
            continue;
        };
        add(
            format!("demo-clinician-{code}"),
            "Demo Clinician",
            UserKind::User,
            code.clone(),
            "Clinician",
            &[P::ViewNotify],
            Some(format!("demo-{code}")),
            None,
        )?;
        add(
            format!("demo-silent-{code}"),
            "Demo Silent Viewer",
            UserKind::User,
            code.clone(),
            "Clinician",
            &[P::ViewSilent],
            Some(format!("demo-silent-{code}")),
            None,
        )?;
    }
    let ops = OdsCode::parse(OPERATIONS_ORG).expect("valid code");
    add(
        "demo-admin".into(),
        "Demo Administrator",
        UserKind::User,
        ops.clone(),
        "Administrator",
        &[P::Admin],
        Some("demo-admin".into()),
        None,
    )?;
    add(
        "demo-auditor".into(),
        "Demo Auditor",
        UserKind::User,
        ops.clone(),
        "Auditor",
        &[P::Auditor],
        Some("demo-auditor".into()),
        None,
    )?;
    let ed = OdsCode::parse("RDEMO01").expect("valid code");
    let coventry = OdsCode::parse("E08000026").expect("valid code");
    add(
        "demo.clinician".into(),
        "Dr Demo Clinician",
        UserKind::User,
        ed,
        "Clinician",
        &[P::ViewNotify],
        None,
        Some(DEMO_PASSWORD),
    )?;
    add(
        "demo.gp".into(),
        "Dr Demo GP",
        UserKind::User,
        OdsCode::parse("RDEMO25").expect("valid code"),
        "GP",
        &[P::ViewNotify],
        None,
        Some(DEMO_PASSWORD),
    )?;
    add(
        "demo.coventry".into(),
        "Demo Social Worker",
        UserKind::User,
        coventry,
        "Social worker",
        &[P::LaUpload, P::LaNotifications],
        None,
        Some(DEMO_PASSWORD),
    )?;
    add(
        "demo.admin".into(),
        "Demo Administrator",
        UserKind::User,
        ops.clone(),
        "Administrator",
        &[P::Admin],
        None,
        Some(DEMO_PASSWORD),
    )?;
    add(
        "demo.auditor".into(),
        "Demo Auditor",
        UserKind::User,
        ops,
        "Auditor",
        &[P::Auditor],
        None,
        Some(DEMO_PASSWORD),
    )?;
    Ok(created)
}
