//! The axum session layer, driving a real `Router` with `oneshot`, against
//! a `MemoryStore` and against a `Client` of an in-process node pair (the
//! `web_suite!` macro runs each behaviour on both).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use session_runtime::node::NodeHandle;
use session_runtime::web::{CookieConfig, SessionLayer, TrackedSession};
use session_runtime::{
    Client, ClientError, MemoryStore, Session, SessionId, SessionStore, Tracked,
};
use tokio::sync::Barrier;
use tower::ServiceExt;

const KEY: &[u8] = b"web-test-cookie-signing-key";

// ------------------------------------------------------------ the store

/// Calls the layer made to the store, by kind.
#[derive(Debug, Default)]
struct Calls {
    create: AtomicU64,
    load: AtomicU64,
    commit: AtomicU64,
    delete: AtomicU64,
    touch: AtomicU64,
}

/// A store that counts the calls made to the one it wraps.
#[derive(Debug, Clone)]
struct Counting<S> {
    inner: S,
    calls: Arc<Calls>,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
        }
    }

    /// (create, commit, delete, touch): every call that could change
    /// something.
    fn writes(&self) -> [u64; 4] {
        let c = &self.calls;
        [&c.create, &c.commit, &c.delete, &c.touch].map(|n| n.load(Ordering::SeqCst))
    }

    fn loads(&self) -> u64 {
        self.calls.load.load(Ordering::SeqCst)
    }
}

impl<S: SessionStore> SessionStore for Counting<S> {
    async fn create<T: Session>(&self, value: &T) -> Result<SessionId, ClientError> {
        self.calls.create.fetch_add(1, Ordering::SeqCst);
        self.inner.create(value).await
    }

    async fn load<T: Session>(&self, id: SessionId) -> Result<Tracked<T>, ClientError> {
        self.calls.load.fetch_add(1, Ordering::SeqCst);
        self.inner.load(id).await
    }

    async fn commit<T: Session>(
        &self,
        id: SessionId,
        tracked: &mut Tracked<T>,
    ) -> Result<u64, ClientError> {
        self.calls.commit.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(id, tracked).await
    }

    async fn delete(&self, id: SessionId) -> Result<(), ClientError> {
        self.calls.delete.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(id).await
    }

    async fn touch(&self, id: SessionId) -> Result<(), ClientError> {
        self.calls.touch.fetch_add(1, Ordering::SeqCst);
        self.inner.touch(id).await
    }
}

/// A store behind the layer, and what keeps it running.
struct Backend<S> {
    store: Counting<S>,
    nodes: Option<(NodeHandle, NodeHandle)>,
}

impl<S: SessionStore> Backend<S> {
    /// Client operations the leader applied (creates, commits, deletes), if
    /// the store is a replica set.
    fn node_commits(&self) -> Option<u64> {
        self.nodes
            .as_ref()
            .map(|(primary, _)| primary.stats().ops_applied)
    }

    async fn stop(self) {
        if let Some((primary, backup)) = self.nodes {
            primary.shutdown().await;
            backup.shutdown().await;
        }
    }
}

async fn memory() -> Backend<MemoryStore> {
    Backend {
        store: Counting::new(MemoryStore::default()),
        nodes: None,
    }
}

async fn nodes() -> Backend<Client> {
    let (primary, backup) = pair().await;
    let client = Client::connect(client_config(&[
        primary.addr().to_string(),
        backup.addr().to_string(),
    ]))
    .await
    .unwrap();
    Backend {
        store: Counting::new(client),
        nodes: Some((primary, backup)),
    }
}

/// `web_suite!(behaviour, ...)`: one `#[tokio::test]` per behaviour in
/// modules `memory` and `nodes`.
macro_rules! web_suite {
    ($($behaviour:ident),* $(,)?) => {
        web_suite!(@backend memory; $($behaviour),*);
        web_suite!(@backend nodes; $($behaviour),*);
    };
    (@backend $backend:ident; $($behaviour:ident),*) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let backend = super::$backend().await;
                    super::$behaviour(&backend).await;
                    backend.stop().await;
                }
            )*
        }
    };
}

web_suite!(
    set_cookie_carries_the_security_attributes,
    the_cookie_names_the_session_on_the_next_request,
    forged_or_foreign_cookies_are_no_session,
    a_read_only_request_sends_nothing_to_the_store,
    login_moves_the_session_to_a_new_id,
    rotate_keeps_the_data_under_a_new_id,
    logout_deletes_the_session_and_clears_the_cookie,
    concurrent_changes_to_one_field_give_one_conflict,
    a_session_gone_before_the_commit_is_409_and_cleared,
);

// ------------------------------------------------------------ the app

async fn whoami(session: TrackedSession<Cart>) -> String {
    match session.get() {
        None => "none".into(),
        Some(c) => format!("user={} items={}", c.user, c.items.join(",")),
    }
}

async fn add(mut session: TrackedSession<Cart>, Path(item): Path<String>) -> (StatusCode, String) {
    match session.tracked_mut() {
        None => (StatusCode::UNAUTHORIZED, "no session".into()),
        Some(t) => {
            t.edit().items().push(item);
            (StatusCode::OK, format!("items={}", t.items.len()))
        }
    }
}

async fn login(mut session: TrackedSession<Cart>, Path(user): Path<u64>) -> String {
    session.start(Cart::new(user));
    format!("hello {user}")
}

async fn rotate(mut session: TrackedSession<Cart>) -> &'static str {
    session.rotate();
    "rotated"
}

async fn logout(mut session: TrackedSession<Cart>) -> &'static str {
    session.end();
    "bye"
}

/// Pushes `who` to the items and changes a field of its own (`note` for
/// "a", `blob` otherwise), then waits until both racers have edited.
async fn race(mut session: TrackedSession<Cart>, who: String, barrier: Arc<Barrier>) -> StatusCode {
    let Some(t) = session.tracked_mut() else {
        return StatusCode::UNAUTHORIZED;
    };
    t.edit().items().push(who.clone());
    if who == "a" {
        t.edit().note().push_str("by-a");
    } else {
        t.edit().blob()[0] = 1;
    }
    barrier.wait().await;
    StatusCode::OK
}

/// Deletes the session behind the layer's back (as an expiry or another
/// server's logout would), then edits it.
async fn vanish<S: SessionStore>(
    mut session: TrackedSession<Cart>,
    item: String,
    store: S,
) -> StatusCode {
    let (Some(id), Some(t)) = (session.id(), session.tracked_mut()) else {
        return StatusCode::UNAUTHORIZED;
    };
    store.delete(id).await.unwrap();
    t.edit().items().push(item);
    StatusCode::OK
}

fn router_with<S: SessionStore>(store: S, cookie: CookieConfig) -> Router {
    let barrier = Arc::new(Barrier::new(2));
    let store2 = store.clone();
    Router::new()
        .route("/whoami", get(whoami))
        .route("/add/{item}", post(add))
        .route("/login/{user}", post(login))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .route(
            "/race/{who}",
            post(move |s: TrackedSession<Cart>, Path(who): Path<String>| {
                race(s, who, barrier.clone())
            }),
        )
        .route(
            "/vanish/{item}",
            post(move |s: TrackedSession<Cart>, Path(item): Path<String>| {
                vanish(s, item, store.clone())
            }),
        )
        .layer(SessionLayer::<_, Cart>::new(store2, cookie))
}

fn router<S: SessionStore>(store: S) -> Router {
    router_with(store, CookieConfig::new(KEY.to_vec()))
}

/// One response, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: String,
}

impl Reply {
    /// The single `Set-Cookie`, which must be there.
    fn set_cookie(&self) -> &str {
        assert_eq!(self.set_cookies.len(), 1, "{self:?}");
        &self.set_cookies[0]
    }

    /// What a browser sends back: `name=value` of the single `Set-Cookie`.
    fn cookie(&self) -> String {
        self.set_cookie().split(';').next().unwrap().to_string()
    }
}

async fn send(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        request = request.header(COOKIE, c);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        app.clone().oneshot(request.body(Body::empty()).unwrap()),
    )
    .await
    .expect("a response within 20 s")
    .unwrap();
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        set_cookies,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// The session id a `name=value` cookie names (signature not checked).
fn id_of(cookie: &str) -> SessionId {
    let value = cookie.split_once('=').unwrap().1;
    value.split_once('.').unwrap().0.parse().unwrap()
}

/// Logs in as `user`; returns the cookie to send back.
async fn logged_in(app: &Router, user: u64) -> String {
    let r = send(app, "POST", &format!("/login/{user}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.cookie()
}

// ------------------------------------------------------------ behaviours

async fn set_cookie_carries_the_security_attributes<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let r = send(&app, "POST", "/login/1", None).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello 1"));
    let set = r.set_cookie();
    assert!(set.starts_with("session="), "{set}");
    let attributes: Vec<&str> = set.split(';').skip(1).map(str::trim).collect();
    for a in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=1800",
        "Secure",
    ] {
        assert!(attributes.contains(&a), "{a} missing from {set}");
    }
    // The clearing cookie is scoped the same way.
    let out = send(&app, "POST", "/logout", Some(&r.cookie())).await;
    let clear: Vec<&str> = out.set_cookie().split(';').map(str::trim).collect();
    for a in [
        "session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=0",
        "Secure",
    ] {
        assert!(clear.contains(&a), "{a} missing from {clear:?}");
    }

    // `Secure` off, for plain-HTTP development.
    let mut config = CookieConfig::new(KEY.to_vec());
    config.secure = false;
    let plain = router_with(b.store.clone(), config);
    let r = send(&plain, "POST", "/login/1", None).await;
    let set = r.set_cookie();
    assert!(!set.contains("Secure"), "{set}");
    for a in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=1800"] {
        assert!(set.contains(a), "{a} missing from {set}");
    }
}

async fn the_cookie_names_the_session_on_the_next_request<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    assert_eq!(send(&app, "GET", "/whoami", None).await.body, "none");
    let cookie = logged_in(&app, 5).await;
    let me = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(
        (me.status, me.body.as_str()),
        (StatusCode::OK, "user=5 items=")
    );
    // The cookie is sent again, unchanged, so that its lifetime slides
    // with the store's idle TTL.
    assert_eq!(me.set_cookies.len(), 1, "{me:?}");
    assert!(
        me.set_cookies[0].starts_with(&format!("{cookie};")),
        "{me:?}"
    );

    for (n, item) in ["tea", "cups"].iter().enumerate() {
        let r = send(&app, "POST", &format!("/add/{item}"), Some(&cookie)).await;
        assert_eq!(
            (r.status, r.body),
            (StatusCode::OK, format!("items={}", n + 1))
        );
    }
    let me = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(me.body, "user=5 items=tea,cups");
    // It is stored: another application server with the same key sees it.
    let stored = b.store.load::<Cart>(id_of(&cookie)).await.unwrap();
    assert_eq!(
        (stored.items.as_slice(), stored.version()),
        (&["tea".to_string(), "cups".to_string()][..], 3)
    );
    let other_server = router(b.store.clone());
    assert_eq!(
        send(&other_server, "GET", "/whoami", Some(&cookie))
            .await
            .body,
        "user=5 items=tea,cups"
    );
    // Among other cookies.
    let mixed = format!("theme=dark; {cookie}; lang=en");
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&mixed)).await.body,
        "user=5 items=tea,cups"
    );
}

async fn forged_or_foreign_cookies_are_no_session<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let cookie = logged_in(&app, 9).await;
    let value = cookie.strip_prefix("session=").unwrap();
    let (id, mac) = value.split_once('.').unwrap();
    let flip = |s: &str, i: usize| {
        let mut bytes = s.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).unwrap()
    };
    let real: SessionId = id.parse().unwrap();
    let another = b.store.create(&Cart::new(666)).await.unwrap();
    let bad = [
        format!("session={}.{mac}", flip(id, 5)),  // id tampered
        format!("session={id}.{}", flip(mac, 40)), // signature tampered
        format!("session={another}.{mac}"),        // a real id, another's signature
        format!("session={id}"),                   // unsigned
        format!(
            "session={}",
            CookieConfig::new(b"other".to_vec()).sign(&real)
        ), // another key
        format!(
            "session={}",
            CookieConfig::new(b"other".to_vec()).sign(&another)
        ),
        "session=garbage".to_string(),
        "session=".to_string(),
        format!("session={id}.{mac}{mac}"),
    ];
    for forged in &bad {
        let r = send(&app, "GET", "/whoami", Some(forged)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "none"),
            "{forged}"
        );
        assert!(r.set_cookies.is_empty(), "{forged}: {r:?}");
        // A write needs a session: the handler's own answer, not the layer's.
        let r = send(&app, "POST", "/add/x", Some(forged)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::UNAUTHORIZED, "no session"),
            "{forged}"
        );
    }
    // Nothing was changed through them.
    assert!(b.store.load::<Cart>(real).await.unwrap().items.is_empty());
    assert!(b
        .store
        .load::<Cart>(another)
        .await
        .unwrap()
        .items
        .is_empty());
    // The genuine cookie still works.
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&cookie)).await.body,
        "user=9 items="
    );
    // A correctly signed cookie for a session that does not exist is no session either.
    let gone = CookieConfig::new(KEY.to_vec()).sign(&SessionId::random());
    let r = send(&app, "GET", "/whoami", Some(&format!("session={gone}"))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
}

async fn a_read_only_request_sends_nothing_to_the_store<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let cookie = logged_in(&app, 4).await;
    send(&app, "POST", "/add/tea", Some(&cookie)).await;
    let (writes, loads, commits) = (b.store.writes(), b.store.loads(), b.node_commits());
    for _ in 0..3 {
        let r = send(&app, "GET", "/whoami", Some(&cookie)).await;
        assert_eq!(r.body, "user=4 items=tea");
        assert!(
            r.set_cookies
                .iter()
                .all(|c| c.starts_with(&format!("{cookie};"))),
            "{r:?}"
        );
    }
    assert_eq!(
        b.store.writes(),
        writes,
        "(create, commit, delete, touch) calls"
    );
    assert_eq!(b.store.loads(), loads + 3, "one load per request");
    assert_eq!(b.node_commits(), commits, "the primary committed nothing");
    assert_eq!(
        b.store
            .load::<Cart>(id_of(&cookie))
            .await
            .unwrap()
            .version(),
        2
    );
    // Requests without a session do not reach the store at all.
    let loads = b.store.loads();
    send(&app, "GET", "/whoami", None).await;
    assert_eq!((b.store.writes(), b.store.loads()), (writes, loads));
}

async fn login_moves_the_session_to_a_new_id<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    // An anonymous session, as planted by an attacker or made before login.
    let before = logged_in(&app, 0).await;
    send(&app, "POST", "/add/planted", Some(&before)).await;
    let r = send(&app, "POST", "/login/42", Some(&before)).await;
    assert_eq!(r.status, StatusCode::OK);
    let after = r.cookie();
    assert_ne!(after, before);
    assert_ne!(id_of(&after), id_of(&before));
    // The old id is worthless now.
    assert!(matches!(
        b.store.load::<Cart>(id_of(&before)).await,
        Err(ClientError::NotFound)
    ));
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&before)).await.body,
        "none"
    );
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&after)).await.body,
        "user=42 items="
    );
    let r = send(&app, "POST", "/add/x", Some(&before)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn rotate_keeps_the_data_under_a_new_id<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let old = logged_in(&app, 7).await;
    send(&app, "POST", "/add/a", Some(&old)).await;
    send(&app, "POST", "/add/b", Some(&old)).await;
    let r = send(&app, "POST", "/rotate", Some(&old)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "rotated"));
    let new = r.cookie();
    assert_ne!(id_of(&new), id_of(&old));
    let moved = b.store.load::<Cart>(id_of(&new)).await.unwrap();
    assert_eq!(
        (moved.user, moved.items.as_slice()),
        (7, &["a".to_string(), "b".to_string()][..])
    );
    assert!(matches!(
        b.store.load::<Cart>(id_of(&old)).await,
        Err(ClientError::NotFound)
    ));
    assert_eq!(send(&app, "GET", "/whoami", Some(&old)).await.body, "none");
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&new)).await.body,
        "user=7 items=a,b"
    );
    // Without a session, rotating does nothing.
    let r = send(&app, "POST", "/rotate", None).await;
    assert!(r.set_cookies.is_empty(), "{r:?}");
}

async fn logout_deletes_the_session_and_clears_the_cookie<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let cookie = logged_in(&app, 3).await;
    let r = send(&app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "bye"));
    let clear = r.set_cookie();
    assert!(clear.starts_with("session=;"), "{clear}");
    assert!(clear.contains("Max-Age=0"), "{clear}");
    assert!(matches!(
        b.store.load::<Cart>(id_of(&cookie)).await,
        Err(ClientError::NotFound)
    ));
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&cookie)).await.body,
        "none"
    );
    // Logging out without a session clears the cookie all the same.
    let r = send(&app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookie().contains("Max-Age=0"));
}

async fn concurrent_changes_to_one_field_give_one_conflict<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let cookie = logged_in(&app, 8).await;
    let id = id_of(&cookie);
    // Both load version 1, edit, and wait for each other before returning
    // (and so before the layer commits).
    let (ra, rb) = tokio::join!(
        send(&app, "POST", "/race/a", Some(&cookie)),
        send(&app, "POST", "/race/b", Some(&cookie)),
    );
    let statuses = [ra.status, rb.status];
    assert!(
        statuses == [StatusCode::OK, StatusCode::CONFLICT]
            || statuses == [StatusCode::CONFLICT, StatusCode::OK],
        "{ra:?} {rb:?}"
    );
    let loser = if ra.status == StatusCode::CONFLICT {
        &ra
    } else {
        &rb
    };
    assert!(loser.body.contains("reload and try again"), "{loser:?}");
    assert!(
        loser.set_cookies.is_empty(),
        "the session is still good: {loser:?}"
    );
    // Exactly the winner's changes, whole; none of the loser's.
    let now = b.store.load::<Cart>(id).await.unwrap();
    assert_eq!(now.version(), 2);
    if ra.status == StatusCode::OK {
        assert_eq!(
            (now.items.as_slice(), now.note.as_str(), now.blob[0]),
            (&["a".to_string()][..], "by-a", 0)
        );
    } else {
        assert_eq!(
            (now.items.as_slice(), now.note.as_str(), now.blob[0]),
            (&["b".to_string()][..], "", 1)
        );
    }
    // The loser's retry, from the current version, applies.
    let retry = if ra.status == StatusCode::CONFLICT {
        "/add/a"
    } else {
        "/add/b"
    };
    assert_eq!(
        send(&app, "POST", retry, Some(&cookie)).await.status,
        StatusCode::OK
    );
    let now = b.store.load::<Cart>(id).await.unwrap();
    assert_eq!((now.version(), now.items.len()), (3, 2));
}

async fn a_session_gone_before_the_commit_is_409_and_cleared<S: SessionStore>(b: &Backend<S>) {
    let app = router(b.store.clone());
    let cookie = logged_in(&app, 6).await;
    let r = send(&app, "POST", "/vanish/x", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert!(r.body.contains("expired"), "{r:?}");
    assert!(r.set_cookie().starts_with("session=;") && r.set_cookie().contains("Max-Age=0"));
    // The commit did not bring it back.
    assert!(matches!(
        b.store.load::<Cart>(id_of(&cookie)).await,
        Err(ClientError::NotFound)
    ));
}

// ------------------------------------------------------------ single cases

#[tokio::test]
async fn an_unreachable_store_is_503_within_the_failover_timeout() {
    const FAILOVER: Duration = Duration::from_secs(1);
    let (primary, backup) = pair().await;
    let mut config = client_config(&[primary.addr().to_string(), backup.addr().to_string()]);
    config.failover_timeout = FAILOVER;
    config.request_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(200);
    let client = Client::connect(config).await.unwrap();
    let app = router(client);
    let cookie = logged_in(&app, 1).await;
    primary.shutdown().await;
    backup.shutdown().await;

    for (method, uri, cookie) in [
        ("GET", "/whoami", Some(cookie.as_str())), // load fails
        ("POST", "/login/2", None),                // create fails
    ] {
        let start = Instant::now();
        let r = send(&app, method, uri, cookie).await;
        let took = start.elapsed();
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "session store unavailable"),
            "{method} {uri}"
        );
        assert!(r.set_cookies.is_empty(), "{r:?}");
        assert!(
            took < FAILOVER + Duration::from_secs(1),
            "{method} {uri}: 503 after {took:?}"
        );
    }
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_500() {
    let app: Router = Router::new().route("/whoami", get(whoami));
    let r = send(&app, "GET", "/whoami", None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "session layer missing")
    );
    // With a layer for another session type, too.
    #[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Other {
        n: u32,
    }
    let app: Router =
        Router::new()
            .route("/whoami", get(whoami))
            .layer(SessionLayer::<_, Other>::new(
                MemoryStore::default(),
                CookieConfig::new(KEY.to_vec()),
            ));
    let r = send(&app, "GET", "/whoami", None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "session layer missing")
    );
}

#[tokio::test]
async fn an_expired_session_is_no_session() {
    let store = MemoryStore::new(Duration::from_millis(200));
    let app = router(store.clone());
    let cookie = logged_in(&app, 1).await;
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&cookie)).await.body,
        "user=1 items="
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
    // Logging in again works, and deletes nothing it should not.
    let fresh = logged_in(&app, 2).await;
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&fresh)).await.body,
        "user=2 items="
    );
}

#[tokio::test]
async fn extracting_the_session_twice_is_refused_not_a_hang() {
    async fn twice(_a: TrackedSession<Cart>, _b: TrackedSession<Cart>) -> &'static str {
        "unreachable"
    }
    let store = MemoryStore::default();
    let app: Router =
        Router::new()
            .route("/twice", get(twice))
            .layer(SessionLayer::<_, Cart>::new(
                store,
                CookieConfig::new(KEY.to_vec()),
            ));
    let r = tokio::time::timeout(Duration::from_secs(2), send(&app, "GET", "/twice", None))
        .await
        .expect("answered, not hung");
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "session extracted twice in one request"
        )
    );
}
