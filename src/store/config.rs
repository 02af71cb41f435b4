//! How syllabus reaches object stores: retry and timeout settings (flags and a pipeline's
//! `[store]` table), the client of each store kind built from the standard credential chains,
//! and the redaction of secrets from every message that leaves the process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Retries, timeouts and extra client options for every store (the `[store]` table of a
/// pipeline, `--store-*` flags on the command line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Retries of a failed request (a timeout, a 5xx, a connection reset, a body cut short),
    /// with exponential backoff; 0 turns retries off.
    pub retries: usize,
    /// No retry starts later than this after the first attempt (seconds).
    pub retry_timeout_s: f64,
    /// The first backoff (seconds); each next one is up to twice as long, at most
    /// `max_backoff_s`.
    pub backoff_s: f64,
    pub max_backoff_s: f64,
    /// One request, from connecting to the last byte of its body (seconds). A read that takes
    /// longer is retried from the byte where it stopped.
    pub timeout_s: f64,
    pub connect_timeout_s: f64,
    /// Options passed to the store's client as they are: object_store's configuration keys
    /// (`aws_virtual_hosted_style_request`, `aws_region`, `google_service_account`,
    /// `azure_storage_account_name`, ...). They win over the environment.
    pub options: BTreeMap<String, String>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            retries: 10,
            retry_timeout_s: 180.0,
            backoff_s: 0.1,
            max_backoff_s: 15.0,
            timeout_s: 60.0,
            connect_timeout_s: 5.0,
            options: BTreeMap::new(),
        }
    }
}

impl StoreSettings {
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("retry_timeout_s", self.retry_timeout_s),
            ("backoff_s", self.backoff_s),
            ("max_backoff_s", self.max_backoff_s),
            ("timeout_s", self.timeout_s),
            ("connect_timeout_s", self.connect_timeout_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(Error::Config(format!("store.{name} = {v}: expected seconds in (0, 86400]")));
            }
        }
        if self.retries > 100 {
            return Err(Error::Config(format!("store.retries = {}: at most 100", self.retries)));
        }
        Ok(())
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: secs(self.backoff_s),
                max_backoff: secs(self.max_backoff_s),
                base: 2.0,
            },
            max_retries: self.retries,
            retry_timeout: secs(self.retry_timeout_s),
        }
    }

    fn client(&self, allow_http: bool) -> ClientOptions {
        ClientOptions::new()
            .with_timeout(secs(self.timeout_s))
            .with_connect_timeout(secs(self.connect_timeout_s))
            .with_allow_http(allow_http)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The store kinds syllabus reaches, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Gcs,
    Azure,
    Http,
}

impl Kind {
    pub fn of(scheme: &str) -> Option<Kind> {
        Some(match scheme {
            "s3" | "s3a" => Kind::S3,
            "gs" | "gcs" => Kind::Gcs,
            "az" | "azure" | "abfs" | "abfss" | "adl" => Kind::Azure,
            "http" | "https" => Kind::Http,
            _ => return None,
        })
    }
}

/// A client for the store (bucket, container or host) of `url`, from the environment's
/// credential chain, the AWS profile files and `settings.options`.
pub(super) fn build(kind: Kind, url: &url::Url, settings: &StoreSettings) -> Result<Arc<dyn ObjectStore>> {
    let err = |e: object_store::Error| {
        Error::InvalidArgument(redact(&format!("{}: cannot set up the store client: {e}", super::base_url(url))))
    };
    let base = super::base_url(url);
    let store: Arc<dyn ObjectStore> = match kind {
        Kind::S3 => {
            let mut b = AmazonS3Builder::from_env();
            let env_endpoint = std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL")).ok();
            let mut endpoint = env_endpoint.clone();
            let profile = aws_profile();
            for (key, value) in &profile {
                // The environment wins over the profile files, as in the AWS CLI.
                let env_name = format!("AWS_{}", key.trim_start_matches("aws_").to_ascii_uppercase());
                if std::env::var_os(&env_name).is_some() || (key == "endpoint_url" && env_endpoint.is_some()) {
                    continue;
                }
                if key == "endpoint_url" {
                    endpoint = Some(value.clone());
                }
                if let Ok(k) = key.parse::<AmazonS3ConfigKey>() {
                    b = b.with_config(k, value);
                }
            }
            for (k, v) in &settings.options {
                let key = k.parse::<AmazonS3ConfigKey>().map_err(|_| unknown_option(k, "S3"))?;
                if key == AmazonS3ConfigKey::Endpoint {
                    endpoint = Some(v.clone());
                }
                b = b.with_config(key, v);
            }
            // An endpoint written with http:// (a local S3-compatible server) is consent to
            // plain http, as in the AWS CLI; anything else needs https.
            let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))
                || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
            if endpoint.is_some()
                && std::env::var_os("AWS_REGION").is_none()
                && !profile.iter().any(|(k, _)| k == "region")
            {
                // S3-compatible servers ignore the region, but requests are signed with one.
                b = b.with_region("us-east-1");
            }
            let b =
                b.with_url(base.clone()).with_retry(settings.retry()).with_client_options(settings.client(allow_http));
            Arc::new(b.build().map_err(err)?)
        }
        Kind::Gcs => {
            let mut b = GoogleCloudStorageBuilder::from_env();
            for (k, v) in &settings.options {
                b = b.with_config(k.parse::<GoogleConfigKey>().map_err(|_| unknown_option(k, "GCS"))?, v);
            }
            let b = b.with_url(base.clone()).with_retry(settings.retry()).with_client_options(settings.client(false));
            Arc::new(b.build().map_err(err)?)
        }
        Kind::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env();
            for (k, v) in &settings.options {
                b = b.with_config(k.parse::<AzureConfigKey>().map_err(|_| unknown_option(k, "Azure"))?, v);
            }
            let allow_http = std::env::var("AZURE_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
            let b =
                b.with_url(base.clone()).with_retry(settings.retry()).with_client_options(settings.client(allow_http));
            Arc::new(b.build().map_err(err)?)
        }
        Kind::Http => {
            let b = HttpBuilder::new()
                .with_url(base.clone())
                .with_retry(settings.retry())
                .with_client_options(settings.client(url.scheme() == "http"));
            Arc::new(b.build().map_err(err)?)
        }
    };
    Ok(store)
}

fn unknown_option(key: &str, kind: &str) -> Error {
    Error::Config(format!("store option {key:?} is not a {kind} client option (see object_store's configuration keys)"))
}

/// The keys of the active AWS profile (`AWS_PROFILE`, else `default`) from the shared
/// credentials file and the config file (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, else
/// `~/.aws/credentials` and `~/.aws/config`), credentials file first. Keys are lowercase
/// (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`, `region`,
/// `endpoint_url`).
pub fn aws_profile() -> Vec<(String, String)> {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file =
        |var: &str, rel: &str| std::env::var_os(var).map(Into::into).or_else(|| home.as_ref().map(|h| h.join(rel)));
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |text: &str, section: &str| {
        for (k, v) in ini_section(text, section) {
            if !out.iter().any(|(have, _)| *have == k) {
                out.push((k, v));
            }
        }
    };
    if let Some(text) =
        file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials").and_then(|p| std::fs::read_to_string(p).ok())
    {
        add(&text, &profile);
    }
    if let Some(text) = file("AWS_CONFIG_FILE", ".aws/config").and_then(|p| std::fs::read_to_string(p).ok()) {
        let section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
        add(&text, &section);
    }
    for (k, v) in &out {
        if k.contains("secret") || k.contains("token") {
            remember_secret(v);
        }
    }
    out
}

/// `key = value` lines of `[section]` in an INI file (comments `#`/`;`, keys lowercased).
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

/// Secrets seen outside the environment (the profile files, store options).
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn remember_secret(s: &str) {
    if s.len() >= 4 {
        let mut v = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
}

/// Environment variables whose values are credentials.
const SECRET_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

/// `text` with every known credential replaced by `***` and the query strings of URLs (where
/// presigned signatures and SAS tokens live) cut off. Every store message goes through it.
pub fn redact(text: &str) -> String {
    let mut s = text.to_string();
    let mut secrets: Vec<String> =
        SECRET_VARS.iter().filter_map(|v| std::env::var(v).ok()).filter(|v| v.len() >= 4).collect();
    secrets.extend(SECRETS.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
    for (k, v) in std::env::vars() {
        if (k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_"))
            && (k.contains("SECRET") || k.contains("TOKEN") || k.ends_with("_KEY"))
            && v.len() >= 4
        {
            secrets.push(v);
        }
    }
    for secret in secrets {
        s = s.replace(&secret, "***");
    }
    // Query strings of URLs: `http(s)://...?...` up to the next whitespace or quote.
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let mut end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ')' || c == ',')
            .unwrap_or(tail.len());
        // Punctuation that ends the sentence around the URL ("URL: message") is not the URL's.
        while end > 3 && tail[..end].ends_with([':', ';', '.']) {
            end -= 1;
        }
        let mut url = tail[..end].to_string();
        // userinfo with a password: `scheme://user:pass@host` (not `container@account`).
        let auth_end = url[3..].find('/').map_or(url.len(), |i| i + 3);
        if let Some(at) = url[3..auth_end].rfind('@').map(|i| i + 3) {
            if url[3..at].contains(':') {
                url.replace_range(3..at, "***");
            }
        }
        let url = url.as_str();
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?***");
            }
            None => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Every string in `v` through [`redact`].
pub fn redact_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact(s)),
        Value::Array(a) => Value::Array(a.iter().map(redact_json).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), redact_json(v))).collect()),
        other => other.clone(),
    }
}

pub(super) fn remember_option_secrets(settings: &StoreSettings) {
    for (k, v) in &settings.options {
        let k = k.to_ascii_lowercase();
        if k.contains("secret")
            || k.contains("token")
            || k.contains("key")
            || k.contains("sas")
            || k.contains("password")
        {
            remember_secret(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_sections() {
        let text = "[default]\naws_access_key_id = A\n# c\n[profile dev]\nregion= eu-west-1\nendpoint_url =http://x\n";
        assert_eq!(ini_section(text, "default"), vec![("aws_access_key_id".into(), "A".into())]);
        assert_eq!(
            ini_section(text, "profile dev"),
            vec![("region".into(), "eu-west-1".into()), ("endpoint_url".into(), "http://x".into())]
        );
        assert!(ini_section(text, "other").is_empty());
    }

    #[test]
    fn redaction_cuts_queries_and_secrets() {
        remember_secret("s3cr3tvalue");
        let r = redact("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abc failed: key s3cr3tvalue");
        assert_eq!(r, "GET https://b.s3.amazonaws.com/k?*** failed: key ***");
        assert_eq!(redact("s3://bucket/a.jsonl: not found"), "s3://bucket/a.jsonl: not found");
        // The separator after a URL with a query stays (it is the sentence's, not the URL's),
        // and a message already redacted reads the same when redacted again.
        let once = redact("s3://b/k?sig=1: URLs with a query string are not supported");
        assert_eq!(once, "s3://b/k?***: URLs with a query string are not supported");
        assert_eq!(redact(&once), once);
    }

    #[test]
    fn redaction_cuts_passwords_in_urls_but_keeps_azure_containers() {
        assert_eq!(redact("https://me:pw@host/a.jsonl"), "https://***@host/a.jsonl");
        assert_eq!(redact("abfss://runs@acct.dfs.core.windows.net/x"), "abfss://runs@acct.dfs.core.windows.net/x");
        let v = serde_json::json!({"paths": ["https://h/a.jsonl?sig=abc", "s3://b/k"], "n": 1});
        assert_eq!(super::redact_json(&v), serde_json::json!({"paths": ["https://h/a.jsonl?***", "s3://b/k"], "n": 1}));
    }

    #[test]
    fn settings_are_checked() {
        assert!(StoreSettings::default().check().is_ok());
        let bad = StoreSettings { timeout_s: 0.0, ..Default::default() };
        assert!(bad.check().unwrap_err().to_string().contains("timeout_s"));
        let toml: StoreSettings = toml::from_str("retries = 0\n[options]\naws_region = \"eu-west-1\"\n").unwrap();
        assert_eq!(toml.retries, 0);
        assert_eq!(toml.options["aws_region"], "eu-west-1");
    }
}
