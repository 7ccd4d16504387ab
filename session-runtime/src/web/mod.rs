//! axum integration: a tower layer that loads the session named by a signed
//! cookie before the handler, and commits its delta after.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use session_runtime::web::{CookieConfig, SessionLayer, TrackedSession};
//! use session_runtime::{MemoryStore, Session};
//!
//! #[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Visits {
//!     count: u32,
//! }
//!
//! async fn visit(mut session: TrackedSession<Visits>) -> String {
//!     match session.tracked_mut() {
//!         Some(v) => *v.edit().count() += 1,
//!         None => session.start(Visits { count: 1 }),
//!     }
//!     format!("visits: {}", session.get().map_or(0, |v| v.count))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", post(visit))
//!     .layer(SessionLayer::<_, Visits>::new(MemoryStore::default(), CookieConfig::new(b"signing key".to_vec())));
//! ```
//!
//! What happens after the handler returns:
//!
//! - nothing written: nothing is sent to the store;
//! - fields written: their delta is committed; if another request committed
//!   a conflicting change to the same fields since this one loaded the
//!   session, the response is replaced by `409 Conflict` (the client may
//!   retry; nothing is half-applied);
//! - [`TrackedSession::start`] (log in): a new session with a fresh id; the
//!   previous one, if any, is deleted (so an id planted before login is
//!   worthless afterwards);
//! - [`TrackedSession::rotate`]: the same data under a fresh id;
//! - [`TrackedSession::end`] (log out): the session is deleted and the
//!   cookie cleared.
//!
//! A cookie that is missing, forged, or names a session that expired is
//! treated as no session. A store that cannot be reached yields
//! `503 Service Unavailable` and a log line, within the store's timeouts.

mod cookie;

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use http::request::Parts;
use http::{Request, StatusCode};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use cookie::{CookieConfig, SameSite};

use crate::backend::SessionStore;
use crate::client::ClientError;
use crate::id::SessionId;
use crate::session::Session;
use crate::tracked::Tracked;

/// What the handler asked for, besides edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Start,
    Rotate,
    End,
}

struct Slot<T: Session> {
    id: Option<SessionId>,
    tracked: Option<Tracked<T>>,
    action: Action,
}

struct SlotHandle<T: Session>(Arc<Mutex<Slot<T>>>);

impl<T: Session> Clone for SlotHandle<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// Layer that gives handlers a [`TrackedSession<T>`] kept in store `S`.
pub struct SessionLayer<S, T> {
    store: S,
    cookie: Arc<CookieConfig>,
    _session: PhantomData<fn() -> T>,
}

impl<S: Clone, T> Clone for SessionLayer<S, T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            cookie: self.cookie.clone(),
            _session: PhantomData,
        }
    }
}

impl<S: std::fmt::Debug, T> std::fmt::Debug for SessionLayer<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &self.store)
            .field("cookie", &self.cookie.name)
            .finish()
    }
}

impl<S: SessionStore, T: Session> SessionLayer<S, T> {
    /// Sessions of type `T` in `store`, named by the cookie `cookie`.
    pub fn new(store: S, cookie: CookieConfig) -> Self {
        Self {
            store,
            cookie: Arc::new(cookie),
            _session: PhantomData,
        }
    }
}

impl<Svc, S: Clone, T> tower::Layer<Svc> for SessionLayer<S, T> {
    type Service = SessionService<Svc, S, T>;

    fn layer(&self, inner: Svc) -> Self::Service {
        SessionService {
            inner,
            store: self.store.clone(),
            cookie: self.cookie.clone(),
            _session: PhantomData,
        }
    }
}

/// The service [`SessionLayer`] wraps handlers in.
pub struct SessionService<Svc, S, T> {
    inner: Svc,
    store: S,
    cookie: Arc<CookieConfig>,
    _session: PhantomData<fn() -> T>,
}

impl<Svc: Clone, S: Clone, T> Clone for SessionService<Svc, S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            store: self.store.clone(),
            cookie: self.cookie.clone(),
            _session: PhantomData,
        }
    }
}

impl<Svc, S, T> std::fmt::Debug for SessionService<Svc, S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionService")
    }
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

impl<Svc, S, T> tower::Service<Request<Body>> for SessionService<Svc, S, T>
where
    Svc: tower::Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    Svc::Response: IntoResponse,
    Svc::Future: Send,
    S: SessionStore,
    T: Session,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (store, cookie) = (self.store.clone(), self.cookie.clone());
        Box::pin(async move {
            let mut id = cookie.session_id(req.headers());
            let mut tracked = None;
            if let Some(sid) = id {
                match store.load::<T>(sid).await {
                    Ok(t) => tracked = Some(t),
                    Err(ClientError::NotFound) => id = None,
                    Err(e @ (ClientError::SchemaMismatch { .. } | ClientError::Decode(_))) => {
                        tracing::warn!(error = %e, "session cookie names a session of another type; ignoring it");
                        id = None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "session store unavailable");
                        return Ok(status(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "session store unavailable",
                        ));
                    }
                }
            }
            let slot = Arc::new(Mutex::new(Slot {
                id,
                tracked,
                action: Action::Keep,
            }));
            req.extensions_mut().insert(SlotHandle(slot.clone()));
            let response = match inner.call(req).await {
                Ok(r) => r.into_response(),
                Err(never) => match never {},
            };
            let mut slot = slot.lock().await;
            Ok(finish(&store, &cookie, &mut slot, response).await)
        })
    }
}

/// Commits what the handler did to the session.
async fn finish<S: SessionStore, T: Session>(
    store: &S,
    cookie: &CookieConfig,
    slot: &mut Slot<T>,
    mut response: Response,
) -> Response {
    let failed = |e: ClientError| match e {
        ClientError::Conflict { .. } => status(
            StatusCode::CONFLICT,
            "the session was changed by another request at the same time; reload and try again",
        ),
        e => {
            tracing::error!(error = %e, "session store unavailable");
            status(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable")
        }
    };
    match slot.action {
        Action::Keep => {
            if let (Some(id), Some(t)) = (slot.id, slot.tracked.as_mut()) {
                // The store's TTL counts from the last access, so the
                // cookie's lifetime restarts with every response too.
                response
                    .headers_mut()
                    .append(SET_COOKIE, cookie.set_cookie(&id));
                if t.is_dirty() {
                    match store.commit(id, t).await {
                        Ok(_) => {}
                        Err(ClientError::NotFound) => {
                            response =
                                status(StatusCode::CONFLICT, "the session expired; log in again");
                            response
                                .headers_mut()
                                .append(SET_COOKIE, cookie.clear_cookie());
                        }
                        Err(e) => return failed(e),
                    }
                }
            }
        }
        Action::Start | Action::Rotate => {
            let Some(t) = slot.tracked.as_ref() else {
                return response;
            };
            let new_id = match store.create::<T>(t).await {
                Ok(id) => id,
                Err(e) => return failed(e),
            };
            if let Some(old) = slot.id.replace(new_id) {
                if let Err(e) = store.delete(old).await {
                    tracing::warn!(error = %e, "old session not deleted on rotation");
                }
            }
            response
                .headers_mut()
                .append(SET_COOKIE, cookie.set_cookie(&new_id));
        }
        Action::End => {
            if let Some(old) = slot.id.take() {
                match store.delete(old).await {
                    Ok(()) | Err(ClientError::NotFound) => {}
                    Err(e) => return failed(e),
                }
            }
            response
                .headers_mut()
                .append(SET_COOKIE, cookie.clear_cookie());
        }
    }
    slot.action = Action::Keep;
    response
}

/// The session of the current request, typed.
///
/// Read it with [`get`](TrackedSession::get), write through
/// [`tracked_mut`](TrackedSession::tracked_mut)`.edit()`, and start, rotate
/// or end it; the layer stores the result after the handler returns. Holds
/// the request's session exclusively while it lives: extract it once per
/// request (a second extraction is refused with `500`).
pub struct TrackedSession<T: Session> {
    slot: OwnedMutexGuard<Slot<T>>,
}

impl<T: Session + std::fmt::Debug> std::fmt::Debug for TrackedSession<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedSession")
            .field("id", &self.slot.id)
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Session> TrackedSession<T> {
    /// The session's value, if the request has a session.
    pub fn get(&self) -> Option<&T> {
        self.slot.tracked.as_deref()
    }

    /// The tracked session, to edit: `session.tracked_mut()?.edit().cart()`.
    pub fn tracked_mut(&mut self) -> Option<&mut Tracked<T>> {
        self.slot.tracked.as_mut()
    }

    /// The session's id (after the request: the new one, if it starts).
    pub fn id(&self) -> Option<SessionId> {
        self.slot.id
    }

    /// Starts a new session holding `value`, under a fresh id (log in). A
    /// previous session of this client is deleted.
    pub fn start(&mut self, value: T) {
        self.slot.tracked = Some(Tracked::new(value));
        self.slot.action = Action::Start;
    }

    /// Keeps the data but moves it to a fresh id (after a privilege change).
    pub fn rotate(&mut self) {
        if self.slot.tracked.is_some() && self.slot.action == Action::Keep {
            self.slot.action = Action::Rotate;
        }
    }

    /// Deletes the session and clears the cookie (log out).
    pub fn end(&mut self) {
        self.slot.tracked = None;
        self.slot.action = Action::End;
    }
}

impl<St: Send + Sync, T: Session> FromRequestParts<St> for TrackedSession<T> {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let Some(handle) = parts.extensions.get::<SlotHandle<T>>().cloned() else {
            tracing::error!(
                session = std::any::type_name::<T>(),
                "TrackedSession extractor used without a SessionLayer for this session type"
            );
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "session layer missing"));
        };
        // A second extractor in the same request would wait for the first
        // forever; refuse it instead.
        match handle.0.try_lock_owned() {
            Ok(slot) => Ok(TrackedSession { slot }),
            Err(_) => {
                tracing::error!(
                    session = std::any::type_name::<T>(),
                    "TrackedSession extracted twice in one request"
                );
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "session extracted twice in one request",
                ))
            }
        }
    }
}
