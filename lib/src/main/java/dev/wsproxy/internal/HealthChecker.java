package dev.wsproxy.internal;

import java.net.URI;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpHeaderValue;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.client.CoreClientUpgradeRequest;
import org.eclipse.jetty.websocket.core.client.WebSocketCoreClient;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.BackendStatus;
import dev.wsproxy.HealthCheck;

/**
 * Probes the backends of one route every interval, asynchronously, on the proxy's backend client. A backend whose
 * previous probe is still pending is skipped in a round, so a slow backend never stacks probes when the timeout is
 * longer than the interval: with one probe per round, a stalled backend would hold timeout / interval of them, and
 * their late failures would reset the good streak of a backend that had recovered meanwhile. Each probe has its
 * timeout, so each ends and its backend is probed again.
 *
 * <p>A WebSocket probe's verdict is its {@code 101}, but the probe ends only when its connection has: it sends a close
 * frame at once and waits for the answer at most the check's timeout, then drops the connection. Counted done at the
 * {@code 101}, a probe to a backend that never answers the close left its connection to Jetty's idle timeout (30 s),
 * and with a new probe each interval the backend held about 30 s / interval of them.
 */
final class HealthChecker {

    private static final Logger LOG = LoggerFactory.getLogger(HealthChecker.class);

    private final Route route;
    private final HealthCheck check;
    private final WebSocketCoreClient webSocketClient;
    private final HttpClient httpClient;
    private final Scheduler scheduler;
    private volatile boolean stopped;
    private volatile Scheduler.@Nullable Task next;
    /** The backends with a probe in flight, until it ends. */
    private final Set<BackendState> probing = ConcurrentHashMap.newKeySet();
    /** Whether the last probe could not be sent: the warning is logged once per run of such failures. */
    private volatile boolean unsent;

    HealthChecker(Route route, HealthCheck check, WebSocketCoreClient webSocketClient, HttpClient httpClient,
            Scheduler scheduler) {
        this.route = route;
        this.check = check;
        this.webSocketClient = webSocketClient;
        this.httpClient = httpClient;
        this.scheduler = scheduler;
    }

    void start() {
        LOG.info("Health checks for route {}: {}", route.prefix(), check);
        round();
    }

    void stop() {
        stopped = true;
        Scheduler.Task task = next;
        if (task != null) {
            task.cancel();
        }
    }

    private void round() {
        if (stopped) {
            return;
        }
        for (BackendState state : route.backends().states()) {
            if (probing.add(state)) {
                probe(state);
            }
        }
        next = scheduler.schedule(this::round, check.interval().toMillis(), TimeUnit.MILLISECONDS);
    }

    private void probe(BackendState state) {
        Runnable end = probeEnd(state);
        URI base = state.backend().uri();
        try {
            if (check.kind() == HealthCheck.Kind.HTTP) {
                String scheme = "wss".equals(base.getScheme()) ? "https" : "http";
                // Each probe on a connection of its own, as each handshake is: over a kept-alive one, a backend that
                // took no new connection (its accept loop stalled, its listener closed) still answered 200, and UP.
                httpClient.newRequest(URI.create(scheme + "://" + base.getRawAuthority() + check.path()))
                        .headers(headers -> headers.put(HttpHeader.CONNECTION, HttpHeaderValue.CLOSE.asString()))
                        .timeout(check.timeout().toMillis(), TimeUnit.MILLISECONDS)
                        .send(result -> {
                            end.run();
                            record(state, result.isSucceeded() && result.getResponse().getStatus() / 100 == 2);
                        });
            } else {
                URI uri = URI.create(base.getScheme() + "://" + base.getRawAuthority() + check.path());
                Probe probe = new Probe(end, scheduler, check.timeout().toMillis());
                CoreClientUpgradeRequest upgrade = CoreClientUpgradeRequest.from(webSocketClient, uri, probe);
                upgrade.timeout(check.timeout().toMillis(), TimeUnit.MILLISECONDS);
                webSocketClient.connect(upgrade).whenComplete((session, failure) -> {
                    if (failure != null) {
                        // No session: nothing else ends the probe. An open one ends in Probe.onClosed.
                        end.run();
                    }
                    record(state, failure == null);
                });
            }
        } catch (Exception e) {
            // The proxy's own side failed, not the backend: a failed probe all the same (nothing was checked), but
            // said, or every backend goes down without a word.
            if (!unsent) {
                unsent = true;
                LOG.warn("Health check of {} (route {}) could not be sent: counted as a failed probe", state.backend(),
                        route.prefix(), e);
            }
            end.run();
            record(state, false);
            return;
        }
        unsent = false;
    }

    /** Ends a probe of {@code state} once, however often it runs: the backend may be probed again. */
    private Runnable probeEnd(BackendState state) {
        AtomicBoolean ended = new AtomicBoolean();
        return () -> {
            if (ended.compareAndSet(false, true)) {
                probing.remove(state);
            }
        };
    }

    /** Counts one probe result; package-private for tests, which feed results without probing. */
    void record(BackendState state, boolean good) {
        if (stopped) {
            return;
        }
        BackendStatus.State previous = state.recordProbe(good, check.unhealthyThreshold(), check.healthyThreshold());
        if (previous != null) {
            LOG.warn("Backend {} of route {} is {} (health check {})", state.backend(), route.prefix(),
                    good ? "up again" : "down", check.path());
            route.listener().onBackendStateChanged(route.prefix(), state, previous);
        }
    }

    /**
     * Closes the probe session with 1000 as soon as it opens, and reads until the close answer; drops the connection
     * when that answer has not come within {@code closeMillis}. Ends the probe when the session has closed.
     */
    private static final class Probe implements FrameHandler {
        private final Runnable end;
        private final Scheduler scheduler;
        private final long closeMillis;
        private volatile @Nullable CoreSession session;
        private volatile Scheduler.@Nullable Task closeTimer;

        Probe(Runnable end, Scheduler scheduler, long closeMillis) {
            this.end = end;
            this.scheduler = scheduler;
            this.closeMillis = closeMillis;
        }

        @Override
        public void onOpen(CoreSession coreSession, Callback callback) {
            session = coreSession;
            // Armed before the close is sent, so that onClosed, however soon, finds it to cancel.
            try {
                closeTimer = scheduler.schedule(coreSession::abort, closeMillis, TimeUnit.MILLISECONDS);
            } catch (RuntimeException e) {
                // The scheduler is stopping, and so is the proxy: no wait for the close answer.
                callback.succeeded();
                coreSession.abort();
                return;
            }
            callback.succeeded();
            coreSession.close(CloseStatus.NORMAL, "health check", Callback.NOOP);
            coreSession.demand();
        }

        @Override
        public void onFrame(Frame frame, Callback callback) {
            callback.succeeded();
            CoreSession current = session;
            if (frame.getOpCode() != org.eclipse.jetty.websocket.core.OpCode.CLOSE && current != null) {
                current.demand();
            }
        }

        @Override
        public void onError(Throwable cause, Callback callback) {
            callback.succeeded();
        }

        @Override
        public void onClosed(CloseStatus closeStatus, Callback callback) {
            Scheduler.Task timer = closeTimer;
            if (timer != null) {
                timer.cancel();
            }
            callback.succeeded();
            end.run();
        }
    }
}
