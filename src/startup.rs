//! The one place that builds and connects everything: stores, limiter, authenticator,
//! AutoShares client, both HTTP servers, and the background chores. `build` takes listeners
//! that are already bound, so tests can use port 0 and read the addresses back.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use tracing_actix_web::TracingLogger;

use crate::audit::Audit;
use crate::auth::{Authenticator, Jwks, StepUp};
use crate::client_address::{ForwardingHeader, TrustedProxies};
use crate::config::{IdentitySource, LimitBackend, Settings};
use crate::http::admin::{AdminState, Readiness, admin_routes};
use crate::http::cors::{self, Cors};
use crate::http::{
    AppState, RequestDeadline, RequestSpan, client, public_routes, request_id, task,
};
use crate::identity::{Identity, LinkStore};
use crate::limits::{
    Backend, KeyedHash, Limits, MemoryLimits, Policy, Records, RedisLimits, RequestRates,
};
use crate::metrics::Metrics;
use crate::net;
use crate::phone::PhoneRules;
use crate::upstream::Upstream;
use crate::verification::{Envelope, Sealer};

/// How often idle limiter keys are dropped.
const EVICTION_INTERVAL: Duration = Duration::from_secs(60);
/// How often a failed start-up migration is tried again.
const MIGRATION_RETRY: Duration = Duration::from_secs(5);
/// How long the audit queue may take to be written at shutdown.
const AUDIT_FLUSH: Duration = Duration::from_secs(5);
/// The first retry of a JWKS that has never loaded; doubles up to `auth.jwks_refresh_s`.
const JWKS_FIRST_RETRY: Duration = Duration::from_secs(1);

/// Both listeners, bound by the caller.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the configured addresses.
    pub fn bind(public: &str, admin: &str) -> anyhow::Result<Self> {
        Ok(Self {
            public: TcpListener::bind(public)
                .with_context(|| format!("cannot listen on {public}"))?,
            admin: TcpListener::bind(admin).with_context(|| format!("cannot listen on {admin}"))?,
        })
    }
}

/// A built service, not yet running.
pub struct Application {
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    public: Server,
    workers: usize,
    admin: Server,
    shutting_down: Arc<AtomicBool>,
    chores: Vec<actix_web::rt::task::JoinHandle<()>>,
    audit: Arc<Audit>,
}

/// Builds every part from `settings` and binds both servers to `listeners`.
///
/// Must run inside an actix system. Starts even when the database is down: the first
/// migration is then retried in the background and `/readyz` says so.
pub async fn build(settings: Settings, listeners: Listeners) -> anyhow::Result<Application> {
    let public_addr = listeners.public.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    net::install_crypto_provider();

    let store = LinkStore::connect_lazy(&settings.database.url)
        .context("configuration: database.url is not usable")?;
    let migrations = match &settings.database.migration_url {
        Some(url) => LinkStore::connect_lazy(url)
            .context("configuration: database.migration_url is not usable")?,
        None => store.clone(),
    };
    let mut chores = Vec::new();
    if let Err(error) = migrations.migrate().await {
        tracing::error!(error = %error, "database migration failed; retrying in the background");
        chores.push(actix_web::rt::spawn(retry_migration(migrations)));
    }

    let metrics = Arc::new(Metrics::new());
    let audit = Arc::new(Audit::new(
        &store,
        settings.audit.queue_capacity,
        settings.audit.retention,
        Arc::clone(&metrics),
    ));
    chores.push(actix_web::rt::spawn(Arc::clone(&audit).run()));
    chores.push(actix_web::rt::spawn(Arc::clone(&audit).prune_forever()));
    chores.push(actix_web::rt::spawn(store.clone().checkpoint_forever()));
    let identity = match &settings.identity {
        IdentitySource::Database => Identity::database(store.clone(), Arc::clone(&metrics)),
        IdentitySource::Claim(name) => Identity::Claim(name.clone()),
    };
    let (auth, jwks) = Authenticator::new(&settings.auth, identity.claim())
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    if let Some(jwks) = &jwks {
        chores.push(actix_web::rt::spawn(refresh_jwks(
            Arc::clone(jwks),
            settings.auth.jwks_refresh,
        )));
    }
    let quotas = &settings.rate_limit;
    let backend = match &quotas.backend {
        LimitBackend::Memory => Backend::Memory(MemoryLimits::new(&settings.abuse.safe)),
        LimitBackend::Redis(redis) => Backend::Redis(
            RedisLimits::new(redis).map_err(|e| anyhow::anyhow!("configuration: {e}"))?,
        ),
    };
    let policy = Policy {
        per_user: quotas.bind_per_user,
        per_phone: quotas.bind_per_phone,
        per_client: quotas.bind_per_client,
        abuse: settings.abuse.clone(),
        idempotency_ttl: quotas.idempotency_ttl,
    };
    let limits = Limits::new(
        backend,
        policy,
        KeyedHash::derive(&settings.verification.token_secret),
        Records::new(
            KeyedHash::derive(&settings.verification.token_secret),
            Envelope::derive(
                &settings.verification.token_secret,
                "autoshares-bff/idempotent-answers/v1",
            ),
        ),
        quotas.on_backend_error,
        quotas.verify_attempts,
        Arc::clone(&metrics),
    );
    let verification = &settings.verification;
    let state = web::Data::new(AppState {
        auth,
        step_up: StepUp::new(&settings.auth),
        identity,
        phone_rules: PhoneRules::new(&settings.phone),
        limits: Arc::new(limits),
        rates: RequestRates::new(quotas.requests_per_user, quotas.requests_per_client),
        audit: Arc::clone(&audit),
        sealer: Sealer::new(
            &verification.token_secret,
            &verification.previous_token_secrets,
            verification.token_ttl,
        ),
    });
    chores.push(actix_web::rt::spawn(evict_idle_limits(state.clone())));

    let tls = net::tls_config(settings.upstream.ca_file.as_deref())
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let upstream = Arc::new(Upstream::new(
        settings.upstream.clone(),
        tls,
        Arc::clone(&metrics),
    ));
    let public_metrics = web::Data::from(Arc::clone(&metrics));
    let grace = settings.server.shutdown_grace;
    let public_state = state.clone();
    let request_timeout = settings.server.request_timeout;
    let deadline = web::Data::new(RequestDeadline(request_timeout));
    let admin_deadline = deadline.clone();
    let cors = web::Data::new(Cors::new(
        &settings.cors.allowed_origins,
        settings.cors.max_age_s,
    ));
    let trusted_proxies = web::Data::new(TrustedProxies::new(
        settings.server.trusted_proxies.clone(),
        ForwardingHeader::named(settings.server.client_address_header)
            .expect("the configuration allows only the two header names"),
        settings.server.client_ipv6_prefix,
    ));
    // One worker per CPU this process may use: its affinity mask and, in a container, its
    // cgroup CPU quota (a pod limited to 2 CPUs runs 2 workers on a 64-core node).
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let public = HttpServer::new(move || {
        App::new()
            .app_data(public_state.clone())
            .app_data(public_metrics.clone())
            .app_data(cors.clone())
            .app_data(deadline.clone())
            .app_data(web::Data::new(upstream.client()))
            .app_data(trusted_proxies.clone())
            .configure(public_routes)
            .wrap(from_fn(task::own))
            .wrap(from_fn(cors::handle))
            .wrap(from_fn(client::locate))
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(from_fn(request_id::assign))
    })
    .workers(workers)
    .client_request_timeout(request_timeout)
    .listen(listeners.public)?
    .shutdown_timeout(grace.as_secs())
    .disable_signals()
    .run();

    let shutting_down = Arc::new(AtomicBool::new(false));
    let links_enabled = settings.admin_token.is_some();
    let admin_state = web::Data::new(AdminState {
        store,
        admin_token: settings.admin_token.clone(),
        jwks: jwks.clone(),
        metrics,
        shutting_down: Arc::clone(&shutting_down),
        readiness: Readiness::default(),
    });
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(admin_state.clone())
            .app_data(admin_deadline.clone())
            .configure(|config| admin_routes(config, links_enabled))
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(from_fn(request_id::assign))
    })
    .workers(1)
    .client_request_timeout(request_timeout)
    .listen(listeners.admin)?
    .shutdown_timeout(grace.as_secs())
    .disable_signals()
    .run();

    Ok(Application {
        public_addr,
        admin_addr,
        public,
        workers,
        admin,
        shutting_down,
        chores,
        audit,
    })
}

impl Application {
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// How many threads serve the public listener.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Serves until `stop` resolves, then shuts down gracefully (docs/api.md "The operations API"): `/readyz`
    /// turns 503, the public listener stops accepting, requests in flight get
    /// `server.shutdown_grace_s` to finish, then the admin listener stops.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let public_handle = self.public.handle();
        let admin_handle = self.admin.handle();
        // Servers only act on commands (stop included) while they are polled: spawn them.
        let mut public = actix_web::rt::spawn(self.public);
        let mut admin = actix_web::rt::spawn(self.admin);
        let outcome = tokio::select! {
            result = &mut public => result.map_err(anyhow::Error::from).and_then(|r| Ok(r?)),
            result = &mut admin => result.map_err(anyhow::Error::from).and_then(|r| Ok(r?)),
            () = stop => {
                tracing::info!("shutting down");
                self.shutting_down.store(true, Ordering::SeqCst);
                public_handle.stop(true).await;
                admin_handle.stop(true).await;
                Ok(())
            }
        };
        // Every request has its answer: what they recorded is written before exit.
        self.audit.flush(AUDIT_FLUSH).await;
        // Each chore is dropped here, within the runtime: one holding a pooled connection
        // (a checkpoint, a retention pass) hands it back through a task of the pool's,
        // which cannot be spawned once the runtime is gone.
        for chore in self.chores {
            chore.abort();
            let _ = chore.await;
        }
        tracing::info!("stopped");
        outcome
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn retry_migration(store: LinkStore) {
    loop {
        tokio::time::sleep(MIGRATION_RETRY).await;
        match store.migrate().await {
            Ok(()) => {
                tracing::info!("database migration applied");
                return;
            }
            Err(error) => tracing::warn!(error = %error, "database migration failed again"),
        }
    }
}

/// Refreshes the key set every `every`. Until a first set has loaded, every token is
/// refused, so the fetch is retried sooner: after 1 s, doubling up to `every`.
async fn refresh_jwks(jwks: Arc<Jwks>, every: Duration) {
    let mut retry = JWKS_FIRST_RETRY;
    loop {
        let pause = match jwks.refresh().await {
            Ok(()) => every,
            Err(error) if jwks.is_loaded() => {
                tracing::warn!(error = %error, "jwks refresh failed; keeping the last good set");
                every
            }
            Err(error) => {
                tracing::warn!(error = %error, "jwks not loaded yet; retrying");
                let pause = retry.min(every);
                retry = retry.saturating_mul(2);
                pause
            }
        };
        tokio::time::sleep(pause).await;
    }
}

async fn evict_idle_limits(state: web::Data<AppState>) {
    loop {
        tokio::time::sleep(EVICTION_INTERVAL).await;
        state.limits.evict_idle();
        state.rates.evict_idle();
    }
}
