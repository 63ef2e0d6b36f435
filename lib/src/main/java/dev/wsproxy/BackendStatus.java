package dev.wsproxy;

/**
 * A live view of one backend of a route: its state and its sessions. Selectors see the backends they may pick as
 * {@link SelectionContext#candidates()}; {@link WebSocketProxy#backendStatus(String)} shows all of a route's.
 *
 * <p>Values are read live and may change between two calls; reading them is cheap and thread-safe.
 */
public interface BackendStatus {

    /**
     * Returns the backend.
     *
     * @return the backend
     */
    Backend backend();

    /**
     * Returns whether the backend takes new sessions. A backend back from passive health's down is {@code UP} on
     * trial: it takes one handshake at a time until one succeeds, and is left out of
     * {@link SelectionContext#candidates()} while that one is in flight ({@link ProxyBuilder#passiveHealth}).
     *
     * @return the state
     */
    State state();

    /**
     * Returns the sessions to this backend that are open or being opened (backend handshake in progress).
     *
     * @return the active session count
     */
    int activeSessions();

    /**
     * Returns the backend handshakes to this backend in flight: connecting, in TLS or waiting for the backend's
     * answer to the upgrade request. At most {@link RouteBuilder#maxPendingBackendHandshakes(int)}; a backend at that
     * cap gets no further handshake until one ends. (A default method, so that a status implemented elsewhere, in a
     * test for instance, need not change.)
     *
     * @return the pending handshake count; {@code 0} by default
     */
    default int pendingHandshakes() {
        return 0;
    }

    /**
     * Returns the sessions ever opened to this backend.
     *
     * @return the total session count
     */
    long totalSessions();

    /**
     * Returns the failed connection attempts (refused, timed out, invalid handshake) within the passive health
     * window ({@link ProxyBuilder#passiveHealth}): those since the first of them, until the window has passed; while
     * passive health keeps the backend down, those that took it down. Zero once the window has passed without a
     * failure, whether or not anything was tried since. The only backend of a route counts its failures too, although
     * passive health never takes it down. A backend on trial after its window (see {@link #state()}) shows {@code 0}
     * until its trial fails, then that one failure, which took it down again.
     *
     * @return the recent failure count
     */
    int recentFailures();

    /** Whether a backend takes new sessions. */
    enum State {
        /** Takes new sessions. */
        UP,
        /** Failed too often recently (passive health) or failed its health checks: skipped until it recovers. */
        DOWN,
        /** Being drained or removed: takes no new sessions; its open sessions are not affected by this state alone. */
        DRAINING
    }
}
