//! Configuration: defaults, then an optional TOML file (`--config`), then environment variables,
//! then flags. Every setting has a flag and a `CPIS_*` variable.

use anyhow::{Context, Result};
use clap::Args;
use cpis_core::UploadSettings;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "CPIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://FILE` (embedded SQLite; the file's folder must exist) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (PostgreSQL, for several servers)
    /// [default: sqlite://cpis.db; `serve --demo`: sqlite://cpis-demo.db].
    #[arg(long, global = true, env = "CPIS_DATABASE_URL")]
    pub database: Option<String>,
    /// Log filter (tracing syntax), e.g. `info` or `cpis_api=debug`.
    #[arg(long, global = true, env = "CPIS_LOG", default_value = "info")]
    pub log: String,
    /// Log line format on standard error: `text` (human) or `json` (one object a line, for log
    /// shippers). Colour only when standard error is a terminal.
    #[arg(
        long,
        global = true,
        env = "CPIS_LOG_FORMAT",
        value_enum,
        default_value_t = crate::logging::LogFormat::Text
    )]
    pub log_format: crate::logging::LogFormat,
}

/// The configuration file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    /// PostgreSQL read replica for read-only queries outside transactions (`cpis serve`).
    pub read_database_url: Option<String>,
    pub bind: Option<String>,
    pub max_upload_bytes: Option<u64>,
    pub spool_dir: Option<PathBuf>,
    pub mass_end_threshold: Option<f64>,
    /// Days a CPP/LAC plan stays visible after its end (default 365).
    pub ended_plan_days: Option<u32>,
    /// Days a UCPP stays visible after the earlier of its EDD and end (default 28).
    pub ucpp_days: Option<u32>,
    /// Days after a UCPP's expected delivery date with no plan uploaded for the baby before the
    /// LA is sent a `birth-reminder` notification (default 14).
    pub birth_reminder_days: Option<u32>,
    /// Public base URL for FHIR `fullUrl`s, e.g. `https://cpis.example.org`.
    pub public_base_url: Option<String>,
    /// Canonical base of cpis's own FHIR extension and code systems (default: the server's
    /// FHIR base, `{public_base_url}/fhir/R4`, where they are served).
    pub fhir_canonical_base: Option<String>,
    /// The LA work queue: `escalation_hours` (default 24), `repeat_window_minutes` (default
    /// 240).
    pub work_queue: Option<cpis_domain::work_queue::WorkQueuePolicy>,
    /// Webhook retry policy.
    pub webhooks: Option<cpis_core::delivery::RetryPolicy>,
    /// Where webhooks may be sent (https only; internal addresses only when allow-listed).
    pub webhook_destinations: Option<cpis_core::webhook_url::DestinationPolicy>,
    /// When a child's attendance across settings is a `frequent-attendance` pattern
    /// (`seen_6_months`, default 3; `organisations_30_days`, default 2; each at least 2).
    pub attendance: Option<cpis_domain::attendance::AttendanceThresholds>,
    /// Lookup anomaly detection thresholds.
    pub anomaly: Option<cpis_core::anomaly::AnomalyPolicy>,
    /// Failed-authentication limits per client address and credential.
    pub auth_failures: Option<cpis_auth::failure_throttle::FailurePolicy>,
    /// External identity provider (JWT bearer tokens verified against its JWKS).
    pub oidc: Option<OidcConfig>,
    /// NHS CIS2 for people (instead of `[oidc]`): discovery, keys by URL, the selected role's
    /// national RBAC activity codes.
    pub cis2: Option<Cis2Config>,
    /// Application-restricted clients of `POST /oauth2/token`: where their JWKS URLs may point.
    pub oauth_clients: Option<cpis_auth::jwks::FetchPolicy>,
    /// cpis's MESH mailbox: with this section `cpis serve` runs the MESH worker.
    pub mesh: Option<crate::mesh_config::MeshFileConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's JWKS document, kept in sync by deployment.
    pub jwks_file: PathBuf,
    pub issuer: String,
    pub audience: String,
    /// Claim with the caller's ODS code [default: ods].
    pub org_claim: Option<String>,
    /// Claim with the caller's permissions [default: cpis_permissions].
    pub permissions_claim: Option<String>,
    /// Browser sign-in to the web pages through the same provider (docs/WEB.md).
    pub sign_in: Option<OidcSignInConfig>,
}

/// `[cis2]`: NHS CIS2 Authentication as the identity provider of people.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cis2Config {
    /// The provider's issuer; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// cpis's client id at CIS2: the audience of ID tokens.
    pub client_id: String,
    /// The audience of bearer tokens on the FHIR API [default: client_id].
    pub audience: Option<String>,
    /// The lowest assurance level (1-3) at which a person may look children up [default: 3].
    pub min_assurance_for_lookups: Option<u8>,
    /// Allows `http://` discovery and keys on a loopback host (tests only) [default: false].
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// Web sign-in through CIS2 (endpoints from discovery).
    pub sign_in: Option<Cis2SignInConfig>,
}

/// `[cis2.sign_in]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cis2SignInConfig {
    /// A confidential client's secret; `CPIS_OIDC_CLIENT_SECRET` overrides it.
    pub client_secret: Option<String>,
    /// `https://<cpis>/sign-in/oidc/callback`, as registered with CIS2.
    pub redirect_uri: String,
    /// [default: "openid profile nationalrbacaccess selectedrole"]
    pub scope: Option<String>,
    /// [default: "Sign in with NHS Care Identity"]
    pub label: Option<String>,
}

/// `[oidc.sign_in]`: cpis as an OpenID Connect web client (authorization code + PKCE).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSignInConfig {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// A confidential client's secret; `CPIS_OIDC_CLIENT_SECRET` overrides it. Neither: a public
    /// client (PKCE only).
    pub client_secret: Option<String>,
    /// `https://<cpis>/sign-in/oidc/callback`, as registered with the provider.
    pub redirect_uri: String,
    /// [default: "openid profile"]
    pub scope: Option<String>,
    /// The sign-in button [default: "Sign in with your identity provider"].
    pub label: Option<String>,
}

impl OidcSignInConfig {
    pub fn client(&self) -> cpis_auth::oidc::OidcClientConfig {
        let secret = std::env::var("CPIS_OIDC_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.client_secret.clone());
        cpis_auth::oidc::OidcClientConfig {
            authorization_endpoint: self.authorization_endpoint.clone(),
            token_endpoint: self.token_endpoint.clone(),
            client_id: self.client_id.clone(),
            client_secret: secret,
            redirect_uri: self.redirect_uri.clone(),
            scope: self
                .scope
                .clone()
                .unwrap_or_else(|| "openid profile".into()),
            label: self
                .label
                .clone()
                .unwrap_or_else(|| "Sign in with your identity provider".into()),
        }
    }
}

impl FileConfig {
    pub fn visibility(&self) -> cpis_domain::VisibilityPolicy {
        let d = cpis_domain::VisibilityPolicy::default();
        cpis_domain::VisibilityPolicy {
            ended_plan_days: self.ended_plan_days.unwrap_or(d.ended_plan_days),
            ucpp_days: self.ucpp_days.unwrap_or(d.ucpp_days),
        }
    }
}

impl FileConfig {
    /// The attendance thresholds, checked: a threshold below 2 would flag every attendance.
    pub fn attendance(&self) -> Result<cpis_domain::attendance::AttendanceThresholds> {
        self.attendance
            .unwrap_or_default()
            .validated()
            .context("[attendance] in the config file")
    }

    /// What lookups apply: plan visibility and attendance thresholds.
    pub fn lookup_settings(&self) -> Result<cpis_core::LookupSettings> {
        Ok(cpis_core::LookupSettings {
            visibility: self.visibility(),
            attendance: self.attendance()?,
        })
    }
}

impl GlobalArgs {
    pub fn file(&self) -> Result<FileConfig> {
        match &self.config {
            None => Ok(FileConfig::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))
            }
        }
    }

    pub fn database_url(&self, file: &FileConfig, default: &str) -> String {
        self.database
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| default.to_owned())
    }
}

pub fn upload_settings(file: &FileConfig, flag: Option<f64>) -> Result<UploadSettings> {
    let mut s = UploadSettings::default();
    if let Some(t) = flag.or(file.mass_end_threshold) {
        anyhow::ensure!(
            (0.0..=1.0).contains(&t),
            "mass_end_threshold must be between 0 and 1"
        );
        s.mass_end_threshold = t;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attendance_thresholds_default_and_are_checked() {
        let file: FileConfig = toml::from_str("").unwrap();
        let t = file.attendance().unwrap();
        assert_eq!((t.seen_6_months, t.organisations_30_days), (3, 2));
        let file: FileConfig =
            toml::from_str("[attendance]\nseen_6_months = 4\norganisations_30_days = 3\n").unwrap();
        let t = file.lookup_settings().unwrap().attendance;
        assert_eq!((t.seen_6_months, t.organisations_30_days), (4, 3));
        let file: FileConfig = toml::from_str("[attendance]\nseen_6_months = 1\n").unwrap();
        let err = format!("{:#}", file.attendance().unwrap_err());
        assert!(err.contains("seen_6_months must be at least 2"), "{err}");
        assert!(toml::from_str::<FileConfig>("[attendance]\nseen = 3\n").is_err());
    }
}
