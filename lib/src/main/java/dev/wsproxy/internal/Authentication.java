package dev.wsproxy.internal;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.Scheduler;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.AuthDecision;
import dev.wsproxy.Authenticator;

/**
 * Runs a route's {@link Authenticator} on one upgrade request, then goes on with the handshake or refuses it, on
 * whichever thread decides: the request thread when the decision is immediate, the authenticator's thread when it
 * completes later, the scheduler's when it is late ({@code 504}). Exactly one of them acts.
 *
 * <p>While a later decision is pending, an upgrade's client is watched as during the backend handshake
 * ({@link ClientWatch}: its socket, or its HTTP/2 stream): a client that leaves ends the attempt at once, on the selector thread that
 * saw it, as the fourth of those that may act: its connection slot is given back, listeners get {@code 499}, nothing
 * is written, and the decision that comes later is ignored (the authenticator's stage is not cancelled: it is the
 * authenticator's, and may serve other requests). The watch is armed before the timer and the stage can act, and
 * disarmed by whichever acts before it answers the client or goes on, so that the handshake's own watch, armed next,
 * is never undone. Plain HTTP requests are not watched: the socket may carry their body.
 *
 * <p>A pending decision is known to the proxy ({@link WebSocketProxyHandler#authenticationPending}) until one of them
 * acts, so that a stop acts as a fifth: the client gets {@code 503} and the {@code Retry-After} of a request that
 * arrives while the proxy stops, and its slot back, before the stop closes its connection. Unknown to the drain, the
 * client's connection was closed by the server's stop without an answer, and listeners heard {@code 499}, a client
 * that left, of a client the proxy had dropped. Decisions made at once are never pending: nothing to track.
 */
final class Authentication {

    private static final Logger LOG = LoggerFactory.getLogger(Authentication.class);

    private final WebSocketProxyHandler proxy;
    private final Route route;
    /** The connect timeout of the session's policy: the authenticator's deadline. */
    private final Duration timeout;
    private final HandshakeRequestView view;
    private final Response response;
    private final Callback callback;
    private final ConnectionLimits.@Nullable Permit permit;
    private final Runnable proceed;
    /** The client watched while a decision is pending; {@code null}: none. */
    private final @Nullable ClientWatch watched;
    private final AtomicBoolean decided = new AtomicBoolean();
    /** The deadline's timer, once scheduled: a client gone first cancels it. */
    private volatile Scheduler.@Nullable Task timer;

    private Authentication(WebSocketProxyHandler proxy, Route route, Duration timeout, HandshakeRequestView view,
            Response response, Callback callback, ConnectionLimits.@Nullable Permit permit,
            @Nullable ClientWatch watched, Runnable proceed) {
        this.proxy = proxy;
        this.watched = watched;
        this.route = route;
        this.timeout = timeout;
        this.view = view;
        this.response = response;
        this.callback = callback;
        this.permit = permit;
        this.proceed = proceed;
    }

    /**
     * Authenticates; runs {@code proceed} if allowed, otherwise answers the client and gives the permit back. Watches
     * the client ({@code watched}: an upgrade's {@link ClientWatch}, or {@code null}: none) while a later decision is
     * pending.
     */
    static void run(WebSocketProxyHandler proxy, Authenticator authenticator, Route route, Duration timeout,
            HandshakeRequestView view, Response response, Callback callback, ConnectionLimits.@Nullable Permit permit,
            @Nullable ClientWatch watched, Runnable proceed) {
        new Authentication(proxy, route, timeout, view, response, callback, permit, watched, proceed)
                .start(authenticator);
    }

    private void unwatch() {
        if (watched != null) {
            watched.unwatch();
        }
    }

    private void start(Authenticator authenticator) {
        CompletionStage<AuthDecision> stage;
        Object outer = UserCode.enter(authenticator);
        try {
            stage = authenticator.authenticate(view);
        } catch (Throwable e) {
            failed(authenticator, e);
            return;
        } finally {
            UserCode.exit(outer);
        }
        if (stage == null) {
            failed(authenticator, new NullPointerException("authenticate returned null"));
            return;
        }
        CompletableFuture<AuthDecision> future = null;
        try {
            // A CompletableFuture is itself; a minimal stage (CompletableFuture.completedStage) gives a copy, whereas
            // its own isDone() and join() throw.
            future = stage.toCompletableFuture();
        } catch (RuntimeException e) {
            // A stage that has none (UnsupportedOperationException) is waited for below.
        }
        if (future != null && future.isDone()) {
            // The common case: decided at once, no timer needed.
            decided.set(true);
            AuthDecision decision = null;
            Throwable failure = null;
            try {
                decision = future.join();
            } catch (CompletionException | CancellationException e) {
                failure = e;
            }
            complete(authenticator, decision, failure);
            return;
        }
        // Before anything else can act (see the class comment); runs clientGone at once if the client left already.
        if (watched != null) {
            watched.watch(this::clientGone);
        }
        if (decided.get()) {
            return;
        }
        if (!proxy.authenticationPending(this)) {
            shutdown(); // the proxy started to stop: its drain may have looked for pending decisions already
            return;
        }
        if (decided.get()) {
            // The client left as the decision was being kept: kept after clientGone forgot it, forgotten here.
            proxy.authenticationEnded(this);
            return;
        }
        long timeoutMillis = timeout.toMillis();
        Scheduler.Task deadline;
        try {
            deadline = proxy.scheduler().schedule(() -> {
                if (decide()) {
                    unwatch();
                    refuse(HttpStatus.GATEWAY_TIMEOUT_504, "auth_timeout",
                            "authentication took more than " + timeoutMillis + " ms", null);
                }
            }, timeoutMillis, TimeUnit.MILLISECONDS);
        } catch (RuntimeException e) {
            // The scheduler refuses tasks once it stops: the proxy is stopping.
            if (decide()) {
                unwatch();
                refuse(HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown", "proxy is shutting down", null);
            }
            return;
        }
        timer = deadline;
        if (decided.get()) {
            // The client left while the timer was being scheduled (clientGone found no timer to cancel), or the
            // timer ran already (cancelling is then a no-op).
            deadline.cancel();
        }
        try {
            stage.whenComplete((decision, failure) -> {
                if (decide()) {
                    deadline.cancel();
                    unwatch();
                    complete(authenticator, decision, failure);
                }
            });
        } catch (Throwable e) {
            if (decide()) {
                deadline.cancel();
                unwatch();
                failed(authenticator, e);
            }
        }
    }

    /**
     * The client's connection ended while the decision was pending (see the class comment): as
     * {@link Handshake}'s client gone during the backend handshake, with the same status for listeners.
     */
    private void clientGone() {
        if (!decide()) {
            return;
        }
        Scheduler.Task deadline = timer;
        if (deadline != null) {
            deadline.cancel();
        }
        if (permit != null) {
            permit.release();
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("Client of {} left while its authentication was pending", view);
        }
        Handshake.abandon(proxy, route, view, callback, "client connection closed during authentication",
                new Handshake.ClientGone("authentication"));
    }

    /**
     * Takes the one action on a pending decision; {@code false} when another took it. The proxy forgets the decision
     * then: nothing is left for its stop to answer.
     */
    private boolean decide() {
        if (!decided.compareAndSet(false, true)) {
            return false;
        }
        proxy.authenticationEnded(this);
        return true;
    }

    /**
     * The proxy stops while the decision is pending (see the class comment): {@code 503}, as for a request that arrives
     * while it stops; the decision that comes after is ignored.
     */
    void shutdown() {
        if (!decide()) {
            return;
        }
        Scheduler.Task deadline = timer;
        if (deadline != null) {
            deadline.cancel();
        }
        unwatch();
        refuse(HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown", "proxy is shutting down", null);
    }

    private void complete(Authenticator authenticator, @Nullable AuthDecision decision, @Nullable Throwable failure) {
        if (failure != null) {
            failed(authenticator, failure instanceof CompletionException && failure.getCause() != null
                    ? failure.getCause() : failure);
        } else if (decision == null) {
            failed(authenticator, new NullPointerException("the decision was null"));
        } else if (!decision.isAllowed()) {
            refuse(decision.status(), "auth_refused", "authentication refused", decision);
        } else {
            view.authorized(decision);
            proceed();
        }
    }

    /**
     * Goes on with the handshake or the plain request. Each answers a failure of its own start itself
     * ({@link Handshake#start()}: the slot back and {@code 500}; the plain forward's {@code 502}): an exception
     * thrown here after a later decision would be lost inside the authenticator's stage (a dependent future nobody
     * reads), the callback never completed and the slot held until the client left.
     */
    private void proceed() {
        proceed.run();
    }

    private void failed(Authenticator authenticator, Throwable failure) {
        decided.set(true);
        LOG.warn("Authenticator {} failed on {}", authenticator, view, failure);
        refuse(HttpStatus.INTERNAL_SERVER_ERROR_500, "auth_failed", "authenticator failed", null);
    }

    private void refuse(int status, String token, String reason, @Nullable AuthDecision decision) {
        if (permit != null) {
            permit.release();
        }
        proxy.reject(view, response, callback, route, status, token, reason,
                decision == null ? List.of() : decision.headers());
    }
}
