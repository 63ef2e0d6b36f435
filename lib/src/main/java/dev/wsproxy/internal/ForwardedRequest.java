package dev.wsproxy.internal;

import java.util.Objects;

import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.util.NanoTime;
import org.jspecify.annotations.Nullable;

/**
 * One plain HTTP request forwarded on a route, across its attempts: the backend of the current attempt (for passive
 * health) and the route's failover budget, as a {@link Handshake} has for an upgrade. An attempt starts on the thread
 * that handles the request, or on the one that saw the attempt before it fail; attempts never overlap, but they run
 * on different threads, hence the volatile fields.
 */
final class ForwardedRequest {

    final Route route;
    final HandshakeRequestView view;
    /** The route's {@link Timeouts}, read once for the request. */
    final Timeouts timeouts;
    private final long deadline;
    private volatile int attempts;
    private volatile @Nullable BackendState backend;
    private volatile @Nullable HttpURI target;

    ForwardedRequest(Route route, HandshakeRequestView view, Timeouts timeouts) {
        this.route = route;
        this.view = view;
        this.timeouts = timeouts;
        this.deadline = NanoTime.now() + route.failover().maxTime().toNanos();
    }

    /** Starts an attempt on {@code state}'s backend, at {@code target}. */
    void attempt(BackendState state, HttpURI target) {
        this.backend = state;
        this.target = target;
        attempts++;
    }

    /** The backend of the current attempt. */
    BackendState backend() {
        return Objects.requireNonNull(backend, "no attempt started");
    }

    /** The URI of the current attempt. */
    HttpURI target() {
        return Objects.requireNonNull(target, "no attempt started");
    }

    /** Whether the route's failover allows another attempt: attempts and time left. */
    boolean mayTryAnother() {
        return attempts < route.failover().maxAttempts() && NanoTime.now() - deadline < 0;
    }
}
