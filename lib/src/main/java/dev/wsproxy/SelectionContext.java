package dev.wsproxy;

import java.util.List;

/**
 * What a {@link BackendSelector} knows when it picks a backend for a new session: the client's
 * {@link HandshakeRequest}, the route's backends, and which of them may take the session now.
 */
public interface SelectionContext extends HandshakeRequest {

    /**
     * Returns every backend of the matched route, in the order they were configured, whatever their state.
     *
     * @return the route's backends; empty only for a route whose backends come from DNS, before its first look-up
     *         succeeded
     */
    List<Backend> backends();

    /**
     * Returns the backends that may take this session now, in configuration order: the primary backends that are
     * {@link BackendStatus.State#UP up} and not at their cap of handshakes in flight
     * ({@link RouteBuilder#maxPendingBackendHandshakes(int)}) nor testing a trial's handshake (a backend back from
     * {@linkplain ProxyBuilder#passiveHealth(int, java.time.Duration) passive health}'s down takes one at a time until
     * one succeeds), or such backups when no primary is, minus those this handshake already failed on (failover).
     * Built-in selectors pick from this list.
     *
     * @return the candidates with their live state; empty when no backend is available
     */
    List<BackendStatus> candidates();
}
