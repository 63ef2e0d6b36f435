package dev.wsproxy;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.internal.RoundRobinSelector;

/**
 * Picks the backend for each new WebSocket session of a route.
 *
 * <p>Built-ins:
 * <ul>
 *   <li>{@link #roundRobin()}: each backend in turn (the default).</li>
 * </ul>
 *
 * <p>You can also implement your own; a selector that routes on a tenant header is a few lines:
 * <pre>{@code
 * BackendSelector byTenant = context -> {
 *     String tenant = context.header("X-Tenant");
 *     return "blue".equals(tenant) ? context.backends().get(0) : context.backends().get(1);
 * };
 * }</pre>
 *
 * <p>Threading: {@link #select} is called on a Jetty thread for every upgrade request, concurrently; it must be
 * thread-safe and must not block. A selector that keeps state (counters, session counts) should return a fresh
 * instance from {@link #forRoute(String)}, so that two routes never share it. The proxy reports each session it opens
 * and closes to the route's instance, exactly once each, so a selector can count active sessions per backend.
 *
 * @see SelectionContext
 * @see ProxyBuilder#backendSelector(BackendSelector)
 */
@FunctionalInterface
public interface BackendSelector {

    /**
     * Returns the backend for a new session.
     *
     * @param context the upgrade request and the route's backends
     * @return one of {@code context.backends()}, or {@code null} when no backend may take the session (the client gets
     *         {@code 503 Service Unavailable} with {@code Retry-After})
     */
    @Nullable Backend select(SelectionContext context);

    /**
     * Returns the instance that serves one route. Called once per route when the proxy is built.
     *
     * @param route the route's path prefix
     * @return {@code this} by default; stateful selectors return a fresh instance
     */
    default BackendSelector forRoute(String route) {
        return this;
    }

    /**
     * Called when a session to {@code backend} has opened: both legs are upgraded.
     *
     * @param backend the backend this selector picked
     */
    default void onSessionOpened(Backend backend) {
    }

    /**
     * Called once when a session reported by {@link #onSessionOpened(Backend)} has ended on both legs.
     *
     * @param backend the backend of the session
     */
    default void onSessionClosed(Backend backend) {
    }

    /**
     * Returns a selector that hands out the route's backends in turn, one per new session.
     *
     * @return a round-robin selector; {@link #forRoute(String)} gives each route its own counter
     */
    static BackendSelector roundRobin() {
        return new RoundRobinSelector();
    }
}
