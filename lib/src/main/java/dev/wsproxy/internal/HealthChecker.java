package dev.wsproxy.internal;

import java.net.URI;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.client.HttpClient;
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
        URI base = state.backend().uri();
        try {
            if (check.kind() == HealthCheck.Kind.HTTP) {
                String scheme = "wss".equals(base.getScheme()) ? "https" : "http";
                httpClient.newRequest(URI.create(scheme + "://" + base.getRawAuthority() + check.path()))
                        .timeout(check.timeout().toMillis(), TimeUnit.MILLISECONDS)
                        .send(result -> probed(state, result.isSucceeded()
                                && result.getResponse().getStatus() / 100 == 2));
            } else {
                URI uri = URI.create(base.getScheme() + "://" + base.getRawAuthority() + check.path());
                CoreClientUpgradeRequest upgrade = CoreClientUpgradeRequest.from(webSocketClient, uri, new Probe());
                upgrade.timeout(check.timeout().toMillis(), TimeUnit.MILLISECONDS);
                webSocketClient.connect(upgrade).whenComplete((session, failure) -> probed(state, failure == null));
            }
        } catch (Exception e) {
            probed(state, false);
        }
    }

    /** A probe ended: the backend may be probed again. */
    private void probed(BackendState state, boolean good) {
        probing.remove(state);
        record(state, good);
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

    /** Closes the probe session with 1000 as soon as it opens, and reads until the close answer. */
    private static final class Probe implements FrameHandler {
        private volatile @Nullable CoreSession session;

        @Override
        public void onOpen(CoreSession coreSession, Callback callback) {
            session = coreSession;
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
            callback.succeeded();
        }
    }
}
