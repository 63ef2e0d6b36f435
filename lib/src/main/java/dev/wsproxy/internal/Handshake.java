package dev.wsproxy.internal;

import java.net.URI;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.io.EofException;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;

/**
 * One client handshake, backend first, with failover: picks a backend, connects to it asynchronously, and either
 * upgrades the client with the backend's subprotocol or, when the connection fails (refused, unknown host, timeout,
 * invalid {@code 101}), counts the failure against the backend's passive health and tries the next candidate, within
 * the route's attempt and time budget. A backend's own refusal (any status but {@code 101}) is relayed, never retried,
 * but for a 2xx to a client over HTTP/2, to whom a 2xx means the WebSocket is open (RFC 8441): that client gets
 * {@code 502}; nothing is retried after the client got its {@code 101}. The backend connection is made by
 * {@link BackendHandshake}, not Jetty's {@code WebSocketCoreClient}; the proxy's own timer bounds it.
 *
 * <p>Each connect holds one of the backend's pending handshake slots ({@link BackendState#tryStartHandshake}), given
 * back when the connect's future completes: every end (101, refusal, failure, the timer, a cancellation on shutdown,
 * the client leaving, which its socket's watch sees) completes it, and the timer guarantees one does; a fault of the
 * proxy's own before the connect's end is handled gives back at once what the attempt took. A backend whose
 * slots are all taken is not connected to: that attempt fails with {@code 503} and moves on like a failed connection,
 * without counting against passive health.
 *
 * <p>A backend back from passive health's down is on trial ({@link BackendState}): a connect to it also holds its
 * trial ({@link BackendState#tryTrial}), given back once the connect's success or failure has been recorded, so that
 * no other handshake tests the backend in between, or at once when the connect ended otherwise (the client gone, the
 * proxy stopping, a drain, a timer the failover time cut short). A backend whose trial another handshake holds is
 * not connected to: that attempt fails with {@code 503} and moves on, as for a busy backend. A backend's refusal (a
 * status other than {@code 101}) is a success for passive health: the backend was reachable and decided.
 *
 * <p>Each connect's timer is the connect timeout, or what is left of the failover time when that is shorter. A timeout
 * counts against the backend only when the backend had the time a first connect gets: one whose timer was cut short
 * because earlier attempts spent the failover time did not exceed its own timeout, and counting it would take a healthy
 * backend down for being tried late (nginx never shortens the connect timeout of its next try).
 */
final class Handshake {

    private static final Logger LOG = LoggerFactory.getLogger(Handshake.class);

    private final WebSocketProxyHandler proxy;
    private final Request request;
    private final Response response;
    private final Callback callback;
    private final Route route;
    private final HandshakeRequestView view;
    private final Timeouts timeouts;
    private final FailoverBudget budget;
    private final ConnectionLimits.@Nullable Permit permit;
    /** Whether the client's handshake is an RFC 8441 extended {@code CONNECT} on an HTTP/2 stream. */
    private final boolean overHttp2;
    /** The client's socket or stream, watched while a backend handshake is pending. */
    private final ClientWatch watch;
    /** Whether an earlier attempt of this handshake connected, spending failover time. */
    private boolean connectedBefore;

    Handshake(WebSocketProxyHandler proxy, Request request, Response response, Callback callback, Route route,
            Timeouts timeouts, HandshakeRequestView view, ConnectionLimits.@Nullable Permit permit,
            boolean overHttp2, ClientWatch watch) {
        this.proxy = proxy;
        this.request = request;
        this.response = response;
        this.callback = callback;
        this.route = route;
        this.view = view;
        this.timeouts = timeouts;
        this.budget = new FailoverBudget(route.failover());
        this.permit = permit;
        this.overHttp2 = overHttp2;
        this.watch = watch;
    }

    /** Answers the client without a session: the connection slot is given back. */
    private void refuse(int status, String token, @Nullable String reason) {
        releasePermit();
        proxy.reject(view, response, callback, route, status, token, reason);
    }

    private void releasePermit() {
        if (permit != null) {
            permit.release();
        }
    }

    /**
     * Starts the handshake, with or without an authenticator before it: a failure of the proxy's own (nothing a client
     * or a backend can cause) gives the connection slot back and answers {@code 500}, or fails the request once its
     * response is committed, rather than reaching Jetty with the slot held.
     */
    void start() {
        try {
            attempt(0, AccessLog.NONE, null);
        } catch (Throwable e) {
            LOG.warn("Could not start the handshake of {}", view, e);
            releasePermit();
            try {
                if (!response.isCommitted()) {
                    proxy.reject(view, response, callback, route, HttpStatus.INTERNAL_SERVER_ERROR_500,
                            "internal_error", "internal error");
                    return;
                }
            } catch (Throwable again) {
                e.addSuppressed(again);
            }
            callback.failed(e);
        }
    }

    /**
     * Picks the next backend and connects; after a failure, {@code lastStatus} is what the client gets if none is left
     * ({@code lastToken} for the access log, {@code lastReason} for listeners).
     */
    private void attempt(int lastStatus, String lastToken, @Nullable String lastReason) {
        view.selecting();
        Backend backend = proxy.select(view, response, callback, route, lastStatus, lastToken, lastReason,
                this::releasePermit);
        if (backend == null) {
            return;
        }
        // The state in the list the selector picked from: a backend removed since is found removed, and turned away.
        BackendState state = route.backends().stateOf(backend, view.seenBackends());
        if (!view.attempt(state)) {
            // The selector picked a backend this handshake already failed on: no further attempt.
            refuse(lastStatus, lastToken, lastReason);
            return;
        }
        budget.attempt();
        URI backendUri;
        try {
            backendUri = WebSocketProxyHandler.backendUri(request, route, backend, true);
        } catch (IllegalArgumentException e) {
            refuse(HttpStatus.BAD_REQUEST_400, "bad_path", "request path cannot be forwarded");
            return;
        }
        BackendState.HandshakeSlot slot = state.tryStartHandshake(route.maxPendingBackendHandshakes());
        if (slot == null) {
            busy(backend, "backend busy: " + route.maxPendingBackendHandshakes() + " handshakes pending to "
                    + backend.uri());
            return;
        }
        // Held until the attempt's success or failure is recorded, or it ends otherwise; the connect timer ends it
        // within the connect timeout, well before the hold would lapse.
        BackendState.Trial trial = state.tryTrial(timeouts.connectTimeout().toNanos()
                + route.passiveHealth().failTimeout().toNanos());
        if (trial == null) {
            // Back from passive health's down, and another attempt is testing it (picked by a selector that read
            // the candidates before that attempt started, or that picks from backends()).
            slot.release();
            busy(backend, "backend on trial: another handshake is testing " + backend.uri());
            return;
        }
        Relay relay = new Relay(proxy, proxy.nextSessionId(), route, timeouts, view.clientAddress(), backend,
                backendUri, state.acquire(), overHttp2);
        relay.attributes(view.attributes());
        if (!proxy.register(relay)) {
            slot.release();
            trial.release();
            relay.onBackendFailed();
            refuse(HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown", "proxy is shutting down");
            return;
        }
        if (state.state() == BackendStatus.State.DRAINING) {
            // Drained or removed since the selector chose it (or chosen by a selector that ignores the state):
            // drain() gives up the handshakes it finds registered after marking the backend
            // (Relay.drainBeforeUpgrade, failover in failed()), so one registered before this check is found, and one
            // registered after it is turned away here. Another backend, or 503.
            slot.release();
            trial.release();
            relay.onBackendFailed();
            nextAttemptOrRefuse(HttpStatus.SERVICE_UNAVAILABLE_503, "backend_draining", "backend draining");
            return;
        }
        connect(relay, state, slot, trial, backend, backendUri);
    }

    /**
     * The backend has its cap of handshakes in flight, or its trial's one: a failed attempt, but the backend is busy,
     * not broken.
     */
    private void busy(Backend backend, String reason) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("Backend {} not tried for {}: {}", backend, view, reason);
        }
        nextAttemptOrRefuse(HttpStatus.SERVICE_UNAVAILABLE_503, "backend_busy", reason);
    }

    private void connect(Relay relay, BackendState state, BackendState.HandshakeSlot slot, BackendState.Trial trial,
            Backend backend, URI backendUri) {
        long connectMillis = timeouts.connectTimeout().toMillis();
        long remainingMillis = budget.remainingMillis();
        long timeoutMillis = Math.max(1, Math.min(connectMillis, remainingMillis));
        // A first connect cut short by a failover time below the connect timeout had all the time the route allows.
        boolean cutShort = connectedBefore && remainingMillis < connectMillis;
        connectedBefore = true;
        Configuration.ConfigurationCustomizer legConfiguration = WebSocketProxyHandler.legConfiguration(timeouts);
        BackendResponse backendResponse = new BackendResponse(WebSocketProxyHandler.MAX_REFUSAL_BODY);
        CompletableFuture<CoreSession> started = null;
        Scheduler.Task armed = null;
        try {
            HttpFields.Mutable headers = HttpFields.build();
            for (String subprotocol : view.subprotocols()) {
                headers.add(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, subprotocol);
            }
            if (route.compressionPassThrough()) {
                // The client's valid permessage-deflate offers only (see DeflatePassThrough), one line each.
                for (String offer : DeflatePassThrough.offers(request.getHeaders())) {
                    headers.add(HttpHeader.SEC_WEBSOCKET_EXTENSIONS, offer);
                }
            }
            ForwardedHeaders.copy(request, headers, route.preserveHost(), true, view.identity());
            view.addAuthorizedHeaders(headers);
            if (LOG.isDebugEnabled()) {
                LOG.debug("[{}] Connecting {} to {} (attempt {})", relay.id(), view, Relay.withoutQuery(backendUri),
                        budget.attempts());
            }
            // On the client's own selector when its connector allows (WebSocketEndPoints: one selector per session).
            Object home = WebSocketEndPoints.home(request);
            CompletableFuture<CoreSession> connecting = proxy.backendHandshake().connect(backendUri, headers,
                    relay.backendLeg, legConfiguration, backendResponse, home);
            started = connecting;
            relay.onConnecting(() -> connecting.cancel(false));
            // The proxy's own timer, cancelled on completion; completing the future closes the pending connection.
            armed = timeout(connecting, timeoutMillis, cutShort);
            // A client that leaves meanwhile ends the attempt at once, rather than when its 101 is written.
            watch.watch(() -> connecting.completeExceptionally(new ClientGone("the backend handshake")));
        } catch (RuntimeException | Error e) {
            notStarted(relay, slot, trial, started, armed, e);
            return;
        }
        CompletableFuture<CoreSession> future = started;
        Scheduler.Task timer = armed;
        future.whenComplete((backendSession, failure) -> {
            // Before anything is written to the client: from here an HTTP/1.1 connection reads its own socket.
            watch.unwatch();
            if (timer != null) {
                timer.cancel();
            }
            slot.release();
            // The trial's hold outlives the recording of this attempt's success or failure (which ends the trial),
            // so that no other attempt takes the backend's trial in between; released whatever happens here.
            try {
                if (failure instanceof ClientGone gone) {
                    trial.release();
                    relay.onBackendFailed();
                    clientGone(backend, gone);
                } else if (failure != null) {
                    relay.onBackendFailed();
                    failed(relay, state, trial, backend, backendResponse, failure);
                } else {
                    state.recordSuccess();
                    trial.release();
                    upgradeClient(relay, backendSession, legConfiguration,
                            DeflatePassThrough.accepted(backendResponse.headers()));
                }
            } finally {
                trial.release();
            }
        });
    }

    /**
     * A fault of the proxy's own while the connect was set up, before its end was handled (nothing a client or a
     * backend can cause, but a bug, or an {@link Error}): nothing else would give back what the attempt holds, nor
     * answer the client. Each is given back once (all are idempotent), the connection closed if it was started, and
     * the client gets {@code 502}, or {@code 503} when the proxy is stopping; no blame, no failover.
     */
    private void notStarted(Relay relay, BackendState.HandshakeSlot slot, BackendState.Trial trial,
            @Nullable CompletableFuture<CoreSession> future, Scheduler.@Nullable Task timer, Throwable e) {
        LOG.warn("[{}] Could not start the backend handshake of {}", relay.id(), view, e);
        watch.unwatch();
        if (timer != null) {
            timer.cancel();
        }
        if (future != null) {
            future.cancel(false);
        }
        slot.release();
        trial.release();
        relay.onBackendFailed();
        if (proxy.isDraining()) {
            refuse(HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown", "proxy is shutting down");
        } else {
            refuse(HttpStatus.BAD_GATEWAY_502, "upgrade_failed", "backend handshake could not start");
        }
    }

    /**
     * Fails {@code future} with a {@link TimeoutException} after {@code millis} (a {@link FailoverTimeUp} when
     * {@code cutShort}); fails it at once with a {@link TimerRefused} when the scheduler refuses the task (a
     * {@link RejectedExecutionException}: it is stopping), so that the handshake still ends and gives back what it
     * holds. Any other exception of the scheduler's is a fault, thrown to the caller ({@link #notStarted}).
     */
    private Scheduler.@Nullable Task timeout(CompletableFuture<CoreSession> future, long millis, boolean cutShort) {
        try {
            return proxy.scheduler().schedule(() -> future.completeExceptionally(cutShort
                    ? new FailoverTimeUp(millis)
                    : new TimeoutException("backend handshake took more than " + millis + " ms")),
                    millis, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException e) {
            // A refusal only: any other fault of the scheduler is the proxy's own, which notStarted answers.
            future.completeExceptionally(new TimerRefused(e));
            return null;
        }
    }

    /** Upgrades the client; {@code extension} is the {@code permessage-deflate} element the backend accepted. */
    private void upgradeClient(Relay relay, CoreSession backendSession,
            Configuration.ConfigurationCustomizer legConfiguration, @Nullable String extension) {
        // From here the relay owns the connection slot: it gives it back when it finishes, whatever happens.
        relay.holdPermit(permit);
        if (proxy.isDraining()) {
            relay.onClientUpgradeFailed("proxy shutting down");
            proxy.reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown",
                    "proxy is shutting down");
            return;
        }
        String subprotocol = backendSession.getNegotiatedSubProtocol();
        relay.onBackendConnected(subprotocol);
        // The 101's write ends once: written (Jetty upgrades the connection, the session opens and is reported), or
        // failed, or ClientUpgrade threw after committing it; only the first of the two failures is reported.
        AtomicBoolean ended = new AtomicBoolean();
        Callback upgraded = Callback.from(() -> {
            ended.set(true);
            callback.succeeded();
        }, failure -> {
            relay.onClientUpgradeFailed("client connection lost during the handshake");
            if (ended.compareAndSet(false, true)) {
                clientLostBefore101("client connection lost before its 101 was written");
            }
            callback.failed(failure);
        });
        try {
            if (overHttp2) {
                ClientUpgrade.upgradeStream(request, response, upgraded, relay.clientLeg, subprotocol, extension,
                        proxy.components(), legConfiguration);
            } else {
                ClientUpgrade.upgrade(request, response, upgraded, relay.clientLeg, subprotocol, extension,
                        proxy.components(), legConfiguration);
            }
        } catch (Exception | Error e) {
            LOG.warn("[{}] Could not upgrade the client", relay.id(), e);
            relay.onClientUpgradeFailed("client upgrade failed");
            if (response.isCommitted()) {
                if (ended.compareAndSet(false, true)) {
                    clientLostBefore101("client upgrade failed after its 101 was committed");
                }
                callback.failed(e);
            } else {
                proxy.reject(view, response, callback, route, HttpStatus.BAD_GATEWAY_502, "upgrade_failed",
                        "client upgrade failed");
            }
        }
    }

    /**
     * The backend accepted, but the client's {@code 101} could not be written: a connection that is not watched
     * (behind a connector that is not the proxy's, see {@link WebSocketEndPoints#watchClient}) is found gone only
     * now, when the write fails. The backend leg is closed with {@code 1001} ({@link Relay#onClientUpgradeFailed}), no
     * session opens, and listeners hear of it as {@link #CLIENT_CLOSED_REQUEST}, as of a client gone while the backend
     * handshake was pending ({@link #clientGone}): nothing usable reached the client.
     */
    private void clientLostBefore101(String reason) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("Client of {} not upgraded: {}", view, reason);
        }
        proxy.refused(view, route, CLIENT_CLOSED_REQUEST, "client_left", reason);
    }

    /**
     * The client's connection ended while the backend handshake was pending (the client closed or reset it, or the
     * server closed it): the backend connection is closed (completing the future did it), nothing counts against the
     * backend, and nothing is written to the client. Listeners hear of it as {@link #CLIENT_CLOSED_REQUEST}, the
     * status nginx logs for the same case.
     */
    private void clientGone(Backend backend, ClientGone gone) {
        releasePermit();
        if (LOG.isDebugEnabled()) {
            LOG.debug("Client of {} left while the handshake with {} was pending", view, backend);
        }
        abandon(proxy, route, view, callback, "client connection closed before the backend answered", gone);
    }

    /**
     * Ends the exchange of a client whose connection ended while it waited (for the backend here, for its
     * authenticator in {@link Authentication}): listeners and the access log hear of it as
     * {@link #CLIENT_CLOSED_REQUEST}, and the request is aborted, so that Jetty closes the connection without writing
     * an error page to a client that may still read.
     */
    static void abandon(WebSocketProxyHandler proxy, Route route, HandshakeRequestView view, Callback callback,
            String reason, EofException gone) {
        proxy.refused(view, route, CLIENT_CLOSED_REQUEST, "client_left", reason);
        callback.failed(new Request.Handler.AbortException(gone));
    }

    private void failed(Relay relay, BackendState state, BackendState.Trial trial, Backend backend,
            BackendResponse backendResponse, Throwable failure) {
        Throwable cause = failure instanceof CompletionException && failure.getCause() != null
                ? failure.getCause() : failure;
        int status = backendResponse.status();
        if (status > 0) {
            backendResponse.closeConnection();
        }
        if (status > 0 && status != HttpStatus.SWITCHING_PROTOCOLS_101) {
            // The backend refused the upgrade: the client gets the backend's own answer; no retry. The backend was
            // reachable and decided: a success for passive health, as any response to a plain HTTP request is.
            if (LOG.isDebugEnabled()) {
                LOG.debug("Backend {} refused {} with {}", backend, view, status);
            }
            state.recordSuccess();
            trial.release();
            releasePermit();
            if (overHttp2 && HttpStatus.isSuccess(status)) {
                // Only a 101 opens a WebSocket over HTTP/1.1, so there a 2xx is a refusal like any other; but a 2xx is
                // what opens one over HTTP/2 (RFC 8441 section 5): relayed, the client would take its stream for an
                // open WebSocket and read the backend's body as frames. A 502, as for an invalid 101.
                proxy.reject(view, response, callback, route, HttpStatus.BAD_GATEWAY_502, "backend_not_upgraded",
                        "backend answered " + status + " without upgrading");
                return;
            }
            proxy.refused(view, route, status, "backend_refused", "backend refused the upgrade with " + status);
            Responses.relay(response, callback, status, backendResponse.headers(), backendResponse.body(),
                    backendResponse.whole());
            return;
        }
        // The ends below that say nothing about the backend leave its trial, if this attempt was it, to the next one.
        if (relay.closedBeforeUpgrade()) {
            // ProxySession.close on a session still in its backend handshake: the application's decision, kept
            // whatever ended the handshake (no blame, no failover). Its cancel usually ends it (a
            // CancellationException); a close that comes just after the handshake failed (refused, the proxy's timer)
            // cancels nothing, and the failure it finds here would otherwise fail over, and the client get its 101 on
            // another backend as a session the application never saw.
            trial.release();
            refuse(HttpStatus.SERVICE_UNAVAILABLE_503, "closed_by_app", "session closed before its upgrade");
            return;
        }
        boolean draining = proxy.isDraining();
        if ((cause instanceof CancellationException && draining) || cause instanceof TimerRefused) {
            // The proxy stopping (a scheduler refuses tasks only then): its decision, not the backend's failure (no
            // blame, no failover, whose attempts would find the scheduler stopped too).
            trial.release();
            refuse(HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown", "proxy is shutting down");
            return;
        }
        if (cause instanceof CancellationException && relay.drainedBeforeUpgrade()) {
            // proxy.drain(backend) while this handshake was in flight to it: another backend, as for a handshake that
            // finds the backend draining (see attempt), or 503; not the backend's failure.
            if (LOG.isDebugEnabled()) {
                LOG.debug("Backend {} drained while the handshake of {} was pending", backend, view);
            }
            trial.release();
            nextAttemptOrRefuse(HttpStatus.SERVICE_UNAVAILABLE_503, "backend_draining", "backend draining");
            return;
        }
        if (cause instanceof DeflatePassThrough.Unmatched) {
            // A permessage-deflate answer the client's offers do not allow: the client would refuse this 101, so it
            // gets 502. But the backend is up and answered what this client asked (Jetty and gorilla ignore an offer's
            // server_max_window_bits, which any client may send): counted against it, one such request took every
            // backend it failed over to down for passive health. A success, as a refusal is; no other backend tried.
            if (LOG.isDebugEnabled()) {
                LOG.debug("Backend {} answered the deflate offers of {} on other terms", backend, view);
            }
            state.recordSuccess();
            trial.release();
            refuse(HttpStatus.BAD_GATEWAY_502, "backend_invalid_101", "backend sent an invalid 101: "
                    + cause.getMessage());
            return;
        }
        boolean timeout = isTimeout(cause);
        int answer = timeout ? HttpStatus.GATEWAY_TIMEOUT_504 : HttpStatus.BAD_GATEWAY_502;
        boolean invalid101 = status == HttpStatus.SWITCHING_PROTOCOLS_101;
        String token = cause instanceof FailoverTimeUp ? "failover_timeout"
                : timeout ? "backend_timeout" : invalid101 ? "backend_invalid_101" : "backend_unreachable";
        String reason = cause instanceof FailoverTimeUp
                ? "failover time ran out while the backend handshake was pending"
                : timeout
                ? "backend did not complete the handshake in time"
                : invalid101
                        ? "backend sent an invalid 101: " + cause.getMessage()
                        : "backend unreachable: " + cause;
        LOG.warn("Backend {} failed for {}: {}", backend, view, reason);
        // A timer cut short by the failover time says nothing about the backend (see the class comment). A failure
        // counted on trial takes the backend down again: the trial's hold is released after, not before.
        if (!(cause instanceof FailoverTimeUp)) {
            WebSocketProxyHandler.countConnectFailure(route, state);
        }
        trial.release();
        route.listener().onBackendConnectFailed(view, backend, cause);
        nextAttemptOrRefuse(answer, token, reason);
    }

    /** Tries the next backend while the failover budget lasts; otherwise the client gets {@code status}. */
    private void nextAttemptOrRefuse(int status, String token, String reason) {
        if (budget.allowsAnother() && !proxy.isDraining()) {
            attempt(status, token, reason);
        } else {
            refuse(status, token, reason);
        }
    }

    /** The status listeners get for a client that left before the backend answered: nothing is sent. */
    static final int CLIENT_CLOSED_REQUEST = 499;

    /** A client gone while it waited; no stack trace, it tells nothing. */
    static final class ClientGone extends EofException {

        private static final long serialVersionUID = 1L;

        ClientGone(String during) {
            super("client closed the connection during " + during);
        }

        @Override
        public synchronized Throwable fillInStackTrace() {
            return this;
        }
    }

    /**
     * The timer of a connect that had less than the connect timeout because earlier attempts spent the failover time:
     * the client gets {@code 504}, but the backend is not blamed.
     */
    private static final class FailoverTimeUp extends TimeoutException {

        private static final long serialVersionUID = 1L;

        FailoverTimeUp(long millis) {
            super("failover time ran out " + millis + " ms into the backend handshake");
        }

        @Override
        public synchronized Throwable fillInStackTrace() {
            return this;
        }
    }

    /**
     * The scheduler refused a connect's timer: it is stopping, with the server. The proxy's end of the handshake, not
     * the backend's: the client gets {@code 503}, as from a stopping proxy, and the backend is not blamed.
     */
    private static final class TimerRefused extends Exception {

        private static final long serialVersionUID = 1L;

        TimerRefused(RejectedExecutionException cause) {
            super("the scheduler refused the backend handshake's timer", cause);
        }
    }

    private static boolean isTimeout(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof TimeoutException || t instanceof java.net.SocketTimeoutException) {
                return true;
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return false;
    }
}
