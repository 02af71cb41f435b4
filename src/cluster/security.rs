//! Who may use a cluster: a shared token on every call, and TLS on every connection.
//!
//! A scheduler runs the plans it is sent, and an executor's Arrow Flight service hands out
//! the files it is asked for; both read whatever files and buckets the process can. So no
//! server of a syllabus cluster listens beyond the loopback interface unless it checks a token
//! ([`check_bind`]), and with `--tls-cert` / `--tls-key` the token and the data cross the
//! network encrypted.
//!
//! **How the token travels.** Ballista 55 lets its embedder change the gRPC *endpoint* of every
//! client it builds (the client's scheduler calls, an executor's polls and heartbeats, the
//! Flight fetches of results and shuffle partitions: `EndpointOverrideFn`), and lets it serve
//! the executor's Flight service itself (`ArrowFlightServerProvider`). It has no hook for the
//! scheduler's server, so syllabus serves the scheduler's gRPC service with its own tonic
//! server. The one request header an endpoint can set is `user-agent`, so every client
//! syllabus configures sends `user-agent: syllabus-cluster-token/TOKEN tonic/...`; other
//! clients (grpcurl, a Flight client) may send `authorization: Bearer TOKEN` instead. Every
//! server checks one of the two ([`Guard`], constant-time), then removes both from the request
//! before Ballista's code sees it, so no Ballista log line can hold the token. A refused call
//! gets gRPC status `unauthenticated`; the server logs the caller's address and whether the
//! token was missing or wrong, never the token.
//!
//! Executors are pulled by the scheduler's answers to their polls (Ballista's pull-staged
//! scheduling), so no executor serves Ballista's executor gRPC service, which has no hook.
//!
//! **TLS.** With a certificate, the scheduler and the executors serve TLS (rustls on ring);
//! every process of the cluster then dials `https://` and checks the peer's certificate
//! against the cluster's CA (`--tls-ca`, `--cluster-ca`). The certificate of each server must
//! name the host the others dial: the scheduler's in `--cluster df://HOST:PORT`, an
//! executor's `--advertise` host.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tonic::codegen::http;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// The environment variable that holds the cluster's token.
pub const TOKEN_ENV: &str = "SYLLABUS_CLUSTER_TOKEN";
/// The environment variable that names the cluster's CA certificate (PEM) for clients.
pub const CA_ENV: &str = "SYLLABUS_CLUSTER_CA";
/// What precedes the token in the `user-agent` header of syllabus's clients.
const AGENT_PREFIX: &str = "syllabus-cluster-token/";
/// The shortest token accepted: a guessable token protects nothing.
const MIN_TOKEN_LEN: usize = 16;

/// The cluster's shared secret. Its `Debug` shows no byte of it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl Token {
    /// A token from `text` (a file's content or the variable's value; surrounding whitespace
    /// is dropped). `source` names where it came from, for the error, which never quotes it.
    fn parse(text: &str, source: &str) -> Result<Token> {
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{source} is empty: the cluster token must be set to a secret"
            )));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidArgument(format!(
                "{source}: the cluster token must be printable ASCII without spaces (make one with `openssl rand -hex 32`)"
            )));
        }
        if t.len() < MIN_TOKEN_LEN {
            return Err(Error::InvalidArgument(format!(
                "{source}: the cluster token is shorter than {MIN_TOKEN_LEN} characters (make one with `openssl rand -hex 32`)"
            )));
        }
        Ok(Token(t.into()))
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let mine = self.0.as_bytes();
        // Lengths are compared openly: the length of a random token is no secret.
        mine.len() == presented.len() && bool::from(mine.ct_eq(presented))
    }
}

/// Where a process's token and certificates come from (command-line flags).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// A file holding the token (read once); otherwise [`TOKEN_ENV`].
    pub token_file: Option<PathBuf>,
    /// This server's certificate chain and private key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The CA that signed the cluster's certificates (PEM); otherwise, for clients, [`CA_ENV`].
    pub tls_ca: Option<PathBuf>,
    /// Listen beyond loopback without a token.
    pub insecure: bool,
}

/// A process's token and TLS material, loaded once.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub token: Option<Token>,
    /// This server's identity (certificate chain and key).
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The cluster's CA: when set, every call this process makes is TLS.
    ca: Option<Vec<u8>>,
    insecure: bool,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::InvalidArgument(format!("{}: cannot read the {what}: {e}", path.display())))
}

impl Security {
    /// Load what `settings` names, and the token from [`TOKEN_ENV`] when no file is named.
    pub fn load(settings: &Settings) -> Result<Security> {
        let token = match &settings.token_file {
            Some(path) => {
                let text = String::from_utf8(read(path, "cluster token")?).map_err(|_| {
                    Error::InvalidArgument(format!("{}: the cluster token file is not UTF-8 text", path.display()))
                })?;
                Some(Token::parse(&text, &format!("{} (--token-file)", path.display()))?)
            }
            None => match std::env::var(TOKEN_ENV) {
                Ok(v) => Some(Token::parse(&v, TOKEN_ENV)?),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::InvalidArgument(format!("{TOKEN_ENV} is not UTF-8 text")))
                }
            },
        };
        let identity = match (&settings.tls_cert, &settings.tls_key) {
            (Some(c), Some(k)) => Some((read(c, "TLS certificate")?, read(k, "TLS private key")?)),
            (None, None) => None,
            _ => return Err(Error::InvalidArgument("--tls-cert and --tls-key go together".into())),
        };
        let ca_path = settings.tls_ca.clone().or_else(|| std::env::var_os(CA_ENV).map(PathBuf::from));
        let ca = ca_path.as_deref().map(|p| read(p, "CA certificate")).transpose()?;
        if identity.is_some() && ca.is_none() {
            return Err(Error::InvalidArgument(
                "--tls-cert needs --tls-ca too: with TLS on, this process calls the cluster's other servers over TLS and checks their certificates against the cluster's CA".into(),
            ));
        }
        Ok(Security { token, identity, ca, insecure: settings.insecure })
    }

    /// Whether this process speaks TLS to the cluster.
    pub fn tls(&self) -> bool {
        self.ca.is_some()
    }

    /// The TLS settings of this process's servers, if it has a certificate.
    fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.identity.as_ref().map(|(cert, key)| ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
    }

    /// `endpoint` as this process's clients dial it: `https://` with the cluster's CA when TLS
    /// is on, and the token in the `user-agent` header.
    pub fn configure(&self, endpoint: Endpoint) -> std::result::Result<Endpoint, tonic::transport::Error> {
        let mut endpoint = match &self.ca {
            Some(ca) => {
                let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
                if endpoint.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                    endpoint.tls_config(tls)?
                } else {
                    // Ballista dials some servers (the scheduler, from an executor) as http://
                    // whatever its TLS setting: the same endpoint as https://, with Ballista's
                    // client settings (an endpoint cannot change its scheme, nor be read back).
                    let mut parts = endpoint.uri().clone().into_parts();
                    parts.scheme = Some(http::uri::Scheme::HTTPS);
                    // The parts come from a valid URI, with only the scheme changed.
                    let uri = http::Uri::from_parts(parts).unwrap_or_else(|_| endpoint.uri().clone());
                    let defaults = ballista_core::utils::GrpcClientConfig::default();
                    let secs = std::time::Duration::from_secs;
                    Endpoint::from(uri)
                        .connect_timeout(
                            endpoint.get_connect_timeout().unwrap_or(secs(defaults.connect_timeout_seconds)),
                        )
                        .tcp_nodelay(true)
                        .tcp_keepalive(endpoint.get_tcp_keepalive())
                        .http2_keep_alive_interval(secs(defaults.http2_keepalive_interval_seconds))
                        .keep_alive_timeout(secs(20))
                        .keep_alive_while_idle(true)
                        .initial_connection_window_size(defaults.initial_connection_window_size)
                        .initial_stream_window_size(defaults.initial_stream_window_size)
                        .tls_config(tls)?
                }
            }
            None => endpoint,
        };
        if let Some(t) = &self.token {
            endpoint = endpoint.user_agent(format!("{AGENT_PREFIX}{}", t.0))?;
        }
        Ok(endpoint)
    }

    /// This process's settings as Ballista's endpoint hook, or `None` when they change nothing.
    pub fn endpoint_override(&self) -> Option<ballista_core::extension::EndpointOverrideFn> {
        if self.token.is_none() && self.ca.is_none() {
            return None;
        }
        let me = self.clone();
        Some(Arc::new(move |e: Endpoint| {
            me.configure(e).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        }))
    }

    /// A tonic server builder for this process: Ballista's settings, and TLS if it has a
    /// certificate.
    pub fn server(&self, config: &ballista_core::utils::GrpcServerConfig) -> Result<tonic::transport::Server> {
        let server = ballista_core::utils::create_grpc_server(config);
        match self.server_tls() {
            Some(tls) => server
                .tls_config(tls)
                .map_err(|e| Error::InvalidArgument(format!("the TLS certificate or key cannot be used: {e}"))),
            None => Ok(server),
        }
    }

    /// The interceptor that checks each call's token on a server of this process.
    pub fn guard(&self, server: &'static str) -> Guard {
        Guard { token: self.token.clone(), server }
    }
}

static ACTIVE: OnceLock<Security> = OnceLock::new();
static CLIENT_SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Make `security` this process's (a scheduler's or an executor's, at start).
pub fn activate(security: Security) -> &'static Security {
    ACTIVE.get_or_init(|| security)
}

/// Where a client's token and CA come from (`--cluster-token-file`, `--cluster-ca`), loaded on
/// its first connection ([`active`]).
pub fn set_client(settings: Settings) {
    let _ = CLIENT_SETTINGS.set(settings);
}

/// This process's security: a server's, or a client's, loaded once from its settings and the
/// environment on first use.
pub fn active() -> Result<&'static Security> {
    if let Some(s) = ACTIVE.get() {
        return Ok(s);
    }
    let loaded = Security::load(CLIENT_SETTINGS.get().unwrap_or(&Settings::default()))?;
    Ok(activate(loaded))
}

/// The security already loaded, if any ([`active`] loads it), for the session settings.
pub fn loaded() -> Option<&'static Security> {
    ACTIVE.get()
}

/// Refuse to listen beyond loopback without a token (unless `--insecure`), and warn about
/// what stays open or in clear text.
pub fn check_bind(addr: std::net::SocketAddr, security: &Security, what: &str) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if security.token.is_none() {
        if !security.insecure {
            return Err(Error::InvalidArgument(format!(
                "refusing to listen on {addr} without a cluster token: anyone who can reach it could run jobs that read every file and bucket this {what} can read. \
                 Set {TOKEN_ENV} (or --token-file PATH) to a secret shared by the scheduler, every executor and every client (make one with `openssl rand -hex 32`), \
                 or bind to 127.0.0.1, or pass --insecure on a network where everyone who can connect may do that"
            )));
        }
        eprintln!(
            "syllabus cluster {what}: WARNING: --insecure: listening on {addr} with no token; anyone who can connect can run jobs that read every file and bucket this {what} can read"
        );
    } else if security.identity.is_none() {
        eprintln!(
            "syllabus cluster {what}: warning: listening on {addr} without TLS: the token and the data cross the network in clear text (add --tls-cert, --tls-key and --tls-ca)"
        );
    }
    Ok(())
}

/// The check a syllabus server makes on every call: the token, from `authorization: Bearer`
/// or from the `user-agent` of syllabus's own clients. Both headers leave the request here.
#[derive(Clone)]
pub struct Guard {
    token: Option<Token>,
    server: &'static str,
}

/// The token a call presents, if any.
fn presented(req: &Request<()>) -> Option<Vec<u8>> {
    let m = req.metadata();
    if let Some(v) = m.get("authorization") {
        let v = v.as_bytes();
        return Some(v.strip_prefix(b"Bearer ").unwrap_or(v).to_vec());
    }
    let agent = m.get("user-agent")?.as_bytes();
    let rest = agent.strip_prefix(AGENT_PREFIX.as_bytes())?;
    Some(rest.split(|&b| b == b' ').next().unwrap_or_default().to_vec())
}

impl tonic::service::Interceptor for Guard {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        let token = presented(&req);
        let m = req.metadata_mut();
        m.remove("authorization");
        m.remove("user-agent");
        let Some(mine) = &self.token else { return Ok(req) };
        if token.as_deref().is_some_and(|t| mine.matches(t)) {
            return Ok(req);
        }
        let why = if token.is_some() { "its cluster token is wrong" } else { "it carries no cluster token" };
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "an unknown address".into());
        log::warn!("syllabus {}: refused a call from {peer}: {why}", self.server);
        Err(Status::unauthenticated(format!(
            "the syllabus cluster's {} refused the call: {why} (set {TOKEN_ENV}, or --cluster-token-file / --token-file, to the token the cluster was started with)",
            self.server
        )))
    }
}

/// Turn an error of a call to a cluster into what the user must do, when it was a refusal of
/// the token or a TLS mismatch.
pub fn explain(url: &str, error: &str) -> Option<String> {
    let sec = loaded();
    if error.contains("Unauthenticated") || error.contains("refused the call") {
        return Some(if sec.is_some_and(|s| s.token.is_some()) {
            format!(
                "the cluster at {url} refused this client's token: it is not the token the cluster was started with (check {TOKEN_ENV} or --cluster-token-file)"
            )
        } else {
            format!(
                "the cluster at {url} requires a token and this client has none: set {TOKEN_ENV} (or --cluster-token-file PATH) to the token its scheduler and executors were started with"
            )
        });
    }
    if error.contains("certificate") || error.contains("UnknownIssuer") {
        return Some(format!(
            "the cluster at {url} presented a TLS certificate this client does not trust: give the CA that signed the cluster's certificates with --cluster-ca PATH (or {CA_ENV}), and check that the certificate names the host of the URL ({error})"
        ));
    }
    if error.contains("transport error") || error.contains("transport::Error") {
        return Some(if sec.is_some_and(Security::tls) {
            format!("could not speak TLS to the cluster at {url}: was it started with --tls-cert? ({error})")
        } else {
            format!(
                "the connection to the cluster at {url} failed ({error}); if the cluster serves TLS, give its CA with --cluster-ca PATH (or {CA_ENV})"
            )
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole_and_never_shown() {
        let t = Token::parse("  0123456789abcdef0123\n", "test").unwrap();
        assert!(t.matches(b"0123456789abcdef0123"));
        assert!(!t.matches(b"0123456789abcdef012"));
        assert!(!t.matches(b"0123456789abcdef0124"));
        assert!(!t.matches(b""));
        assert!(!format!("{t:?}").contains("0123"));
        let short = Token::parse("abc", "the file").unwrap_err().to_string();
        assert!(short.contains("shorter than 16") && !short.contains("abc"), "{short}");
        let spaced = Token::parse("0123456789 abcdef", "the file").unwrap_err().to_string();
        assert!(spaced.contains("printable ASCII") && !spaced.contains("0123"), "{spaced}");
        assert!(Token::parse(" \n", "X").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn the_guard_takes_either_header_and_strips_both() {
        use tonic::service::Interceptor;
        let s = Security { token: Some(Token::parse("0123456789abcdef", "t").unwrap()), ..Default::default() };
        let mut g = s.guard("scheduler");
        let call = |h: &[(&'static str, &str)]| {
            let mut r = Request::new(());
            for (k, v) in h {
                r.metadata_mut().insert(*k, v.parse().unwrap());
            }
            r
        };
        let ok = g.call(call(&[("user-agent", "syllabus-cluster-token/0123456789abcdef tonic/0.14.9")])).unwrap();
        assert!(ok.metadata().get("user-agent").is_none());
        let ok = g.call(call(&[("authorization", "Bearer 0123456789abcdef")])).unwrap();
        assert!(ok.metadata().get("authorization").is_none());
        let no = g.call(call(&[("user-agent", "tonic/0.14.9")])).unwrap_err();
        assert_eq!(no.code(), tonic::Code::Unauthenticated);
        assert!(no.message().contains("carries no cluster token"));
        let wrong = g.call(call(&[("authorization", "Bearer 0123456789abcdeX")])).unwrap_err();
        assert!(wrong.message().contains("is wrong") && !wrong.message().contains("0123"));
        // A server without a token lets calls through, still without the headers.
        let mut open = Security::default().guard("executor");
        let r = open.call(call(&[("authorization", "Bearer whatever-it-is")])).unwrap();
        assert!(r.metadata().get("authorization").is_none());
    }

    #[test]
    fn clients_dial_https_with_the_token_when_configured() {
        let s = Security {
            token: Some(Token::parse("0123456789abcdef", "t").unwrap()),
            ca: Some(std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem")).unwrap()),
            ..Default::default()
        };
        let e = s.configure(Endpoint::from_static("http://127.0.0.1:50050")).unwrap();
        assert_eq!(e.uri().scheme_str(), Some("https"));
        assert_eq!(e.uri().authority().map(|a| a.as_str()), Some("127.0.0.1:50050"));
        assert!(Security::default().endpoint_override().is_none());
    }
}
