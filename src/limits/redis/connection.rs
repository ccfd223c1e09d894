//! The connection to whichever Redis deployment holds the limits: one server, a Redis
//! Cluster (the client follows MOVED/ASK, slot changes and failovers), or the primary that
//! the Sentinels name (asked again whenever the one in hand fails or turns replica).
//! `rediss://` trusts the usual roots plus `redis.ca_file`, and may present a client
//! certificate (docs/operations.md "Redis").

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, RedisError,
    RedisFuture, TlsCertificates, TlsMode, Value,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::config::{RedisSettings, RedisTopology};

use super::RedisLimitError;

/// How long one Redis round trip (or connecting) may take before the check fails.
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// Makes and keeps the connection of one topology.
pub enum Connector {
    /// Reconnects by itself.
    Single {
        client: Client,
        connection: Mutex<Option<ConnectionManager>>,
    },
    /// Keeps the slot map and a connection per node; follows the Cluster by itself.
    Cluster {
        client: ClusterClient,
        connection: Mutex<Option<ClusterConnection>>,
    },
    /// The primary the sentinels named last; forgotten after an error that says it may
    /// no longer be the primary, so the next call asks them again.
    Sentinel {
        sentinels: Mutex<SentinelClient>,
        connection: Mutex<Option<MultiplexedConnection>>,
    },
}

/// A connection to the node (or Cluster) that decides limits.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Primary(MultiplexedConnection),
}

impl Connector {
    /// Checks the URLs and reads the TLS files; connects on first use, so `serve` starts
    /// while Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisLimitError> {
        let certificates = certificates(settings)?;
        let parse = |url: &SecretString| {
            url.expose_secret()
                .into_connection_info()
                .map_err(|_| RedisLimitError::BadUrl)
        };
        Ok(match &settings.topology {
            RedisTopology::Single(url) => {
                let info = parse(url)?;
                let client = match (&certificates, is_tls(info.addr())) {
                    (Some(certificates), true) => {
                        Client::build_with_tls(info, certificates.clone())
                    }
                    _ => Client::open(info),
                }
                .map_err(|_| RedisLimitError::BadUrl)?;
                Self::Single {
                    client,
                    connection: Mutex::new(None),
                }
            }
            RedisTopology::Cluster(nodes) => {
                let infos = nodes.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
                let mut builder = ClusterClientBuilder::new(infos)
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    // Within a call's bound (`timed`): a failover shows as a failed call,
                    // and the slot map is read again for the next one.
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(200);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                Self::Cluster {
                    client: builder.build().map_err(|_| RedisLimitError::BadUrl)?,
                    connection: Mutex::new(None),
                }
            }
            RedisTopology::Sentinel { nodes, master } => {
                let infos = nodes.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
                let first = infos.first().ok_or(RedisLimitError::BadUrl)?;
                let tls_mode = match first.addr() {
                    ConnectionAddr::TcpTls {
                        insecure: false, ..
                    } => Some(TlsMode::Secure),
                    ConnectionAddr::TcpTls { insecure: true, .. } => Some(TlsMode::Insecure),
                    _ => None,
                };
                let auth = first.redis_settings();
                let addresses = infos.iter().map(|info| info.addr().clone());
                let mut builder =
                    SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)
                        .map_err(|_| RedisLimitError::BadUrl)?;
                if let Some(mode) = tls_mode {
                    builder = builder
                        .set_client_to_redis_tls_mode(mode)
                        .set_client_to_sentinel_tls_mode(mode);
                }
                if let Some(certificates) = certificates {
                    builder = builder
                        .set_client_to_redis_certificates(certificates.clone())
                        .set_client_to_sentinel_certificates(certificates);
                }
                if let Some(user) = auth.username() {
                    builder = builder
                        .set_client_to_redis_username(user)
                        .set_client_to_sentinel_username(user);
                }
                if let Some(password) = auth.password() {
                    builder = builder
                        .set_client_to_redis_password(password)
                        .set_client_to_sentinel_password(password);
                }
                Self::Sentinel {
                    sentinels: Mutex::new(builder.build().map_err(|_| RedisLimitError::BadUrl)?),
                    connection: Mutex::new(None),
                }
            }
        })
    }

    /// The connection, made on first use.
    pub async fn connection(&self) -> Result<Connection, RedisLimitError> {
        match self {
            Self::Single { client, connection } => {
                let mut slot = connection.lock().await;
                if let Some(connection) = slot.as_ref() {
                    return Ok(Connection::Single(connection.clone()));
                }
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1);
                let made =
                    bounded(ConnectionManager::new_with_config(client.clone(), config)).await?;
                *slot = Some(made.clone());
                Ok(Connection::Single(made))
            }
            Self::Cluster { client, connection } => {
                let mut slot = connection.lock().await;
                if let Some(connection) = slot.as_ref() {
                    return Ok(Connection::Cluster(connection.clone()));
                }
                let made = bounded(client.get_async_connection()).await?;
                *slot = Some(made.clone());
                Ok(Connection::Cluster(made))
            }
            Self::Sentinel {
                sentinels,
                connection,
            } => {
                let mut slot = connection.lock().await;
                if let Some(connection) = slot.as_ref() {
                    return Ok(Connection::Primary(connection.clone()));
                }
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT));
                let made = bounded(async {
                    let primary = sentinels.lock().await.async_get_client().await?;
                    primary
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                })
                .await?;
                *slot = Some(made.clone());
                Ok(Connection::Primary(made))
            }
        }
    }

    /// After a failed call: a primary found through the sentinels is asked for again
    /// (it may have failed, or turned replica in a failover). The other two follow by
    /// themselves.
    pub async fn failed(&self) {
        if let Self::Sentinel { connection, .. } = self {
            connection.lock().await.take();
        }
    }
}

async fn bounded<T>(
    future: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisLimitError> {
    match tokio::time::timeout(TIMEOUT * 2, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RedisLimitError::Timeout),
    }
}

fn is_tls(addr: &ConnectionAddr) -> bool {
    matches!(addr, ConnectionAddr::TcpTls { .. })
}

/// The trust and identity of `rediss://` connections, when the settings add to the
/// defaults: the system's roots and `redis.ca_file`, and the client certificate.
fn certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, RedisLimitError> {
    if settings.ca_file.is_none() && settings.client_cert.is_none() {
        return Ok(None);
    }
    let root_cert = match &settings.ca_file {
        Some(path) => {
            let mut pem = read(path, "redis.ca_file")?;
            if !pem.windows(11).any(|w| w == b"CERTIFICATE") {
                return Err(RedisLimitError::Tls(
                    "redis.ca_file holds no PEM certificate",
                ));
            }
            pem.push(b'\n');
            // The client's roots are replaced by what is given here: give the system's
            // roots too, so that the usual CAs stay trusted.
            for certificate in rustls_native_certs::load_native_certs().certs {
                pem.extend_from_slice(pem_certificate(&certificate).as_bytes());
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match &settings.client_cert {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read(cert, "redis.client_cert_file")?,
            client_key: read(key, "redis.client_key_file")?,
        }),
        None => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, RedisLimitError> {
    std::fs::read(path).map_err(|_| RedisLimitError::File(key))
}

fn pem_certificate(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
            Self::Primary(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Primary(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
            Self::Primary(connection) => connection.get_db(),
        }
    }
}
