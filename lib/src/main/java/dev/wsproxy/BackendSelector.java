package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.util.function.Function;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.internal.Selectors;

/**
 * Picks the backend for each new WebSocket session of a route.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", Backend.of("ws://10.0.0.1:8080"), Backend.of("ws://10.0.0.2:8080").withWeight(2))
 *         .backendSelector(BackendSelector.leastConnections());
 * }</pre>
 *
 * <p>A WebSocket session stays on the backend it got for minutes or hours, so the pick matters more than for HTTP
 * requests: a backend that gets a burst of sessions keeps them. Built-ins, each picking among
 * {@link SelectionContext#candidates()} (the backends that may take a session now: up, not draining, not at their cap
 * of handshakes in flight, primaries before backups, minus those this handshake already failed on) and returning
 * {@code null} when there is none:
 * <ul>
 *   <li>{@link #roundRobin()}: each candidate in turn (the default). Even spread when sessions live about as long as
 *       each other.</li>
 *   <li>{@link #weightedRoundRobin()}: in turn, in proportion to {@link Backend#weight()}, interleaved like nginx's
 *       smooth weighted round robin.</li>
 *   <li>{@link #random()}: at random, in proportion to weight. No state at all.</li>
 *   <li>{@link #powerOfTwoChoices()}: the less loaded of two random candidates. Near least-connections balance
 *       without any shared order.</li>
 *   <li>{@link #leastConnections()}: the fewest active sessions per unit of weight. The best spread when session
 *       lifetimes vary, and it refills a backend that was restarted or added.</li>
 *   <li>{@link #ipHash()}: sticky by client address.</li>
 *   <li>{@link #consistentHash(Function)}: sticky by a key from the request, such as a user header or a cookie
 *       ({@link HashKeys}); the same on every proxy instance.</li>
 * </ul>
 *
 * <p>You can also implement your own; a selector that routes on the tenant your {@link Authenticator} verified (an
 * attribute, never a header the client could write) to the backend whose host or path starts with the tenant is a few
 * lines (from {@code examples/quickstart}):
 * <pre>{@code
 * BackendSelector byTenant = context -> {
 *     if (!(context.attribute("tenant") instanceof String tenant) || tenant.isEmpty()) {
 *         return null;
 *     }
 *     for (BackendStatus candidate : context.candidates()) {
 *         URI uri = candidate.backend().uri();
 *         if (uri.getHost().startsWith(tenant + ".") || uri.getPath().startsWith("/" + tenant + "/")) {
 *             return candidate.backend();
 *         }
 *     }
 *     return null; // 503
 * };
 * }</pre>
 * Pick from {@link SelectionContext#candidates()} rather than {@link SelectionContext#backends()}, so that down,
 * draining, busy and already failed backends are skipped and failover can move on.
 *
 * <p>Threading: {@link #select} is called on a Jetty thread for every upgrade request (and every plain HTTP request
 * proxied on the route), concurrently; it must be thread-safe and must not block. A selector that keeps state
 * (counters, session counts) should return a fresh instance from {@link #forRoute(String)}, so that two routes never
 * share it. The proxy reports each session it opens and closes to the route's instance, exactly once each; the
 * built-ins need not count, as {@link BackendStatus#activeSessions()} already does. None of its methods (nor the key
 * of {@link #consistentHash}) may stop the proxy, which would wait for the Jetty thread they run on, and for the
 * session being opened or closed: {@link WebSocketProxy#stop(java.time.Duration)} throws
 * {@code IllegalStateException} there, a failure of the selector's like any other it lets out ({@code 500} from
 * {@link #select}, logged from the others); hand the stop to a thread of yours.
 *
 * @see SelectionContext
 * @see HashKeys
 * @see ProxyBuilder#backendSelector(BackendSelector)
 * @see RouteBuilder#backendSelector(BackendSelector)
 */
@FunctionalInterface
public interface BackendSelector {

    /**
     * Returns the backend for a new session.
     *
     * @param context the upgrade request and the route's backends
     * @return one of {@code context.candidates()} (or of {@code context.backends()}), or {@code null} when no backend
     *         may take the session: the client gets {@code 503 Service Unavailable} with {@code Retry-After}, or the
     *         last failure when failover has already tried a backend
     */
    @Nullable Backend select(SelectionContext context);

    /**
     * Returns the instance that serves one route. Called once per route when the proxy is built.
     *
     * @param route the route's path prefix
     * @return {@code this} by default; stateful selectors return a fresh instance; never {@code null}
     *         ({@link ProxyBuilder#build()} throws {@link IllegalStateException} for it)
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
     * Returns a selector that hands out the route's candidates in turn, one per new session, whatever their weight.
     *
     * <p>The default. For long-lived sessions it spreads new sessions evenly but not load: after a backend restarts,
     * it gets no more than its turn while the others keep their old sessions; {@link #leastConnections()} refills it.
     * Lock-free; {@link #forRoute(String)} gives each route its own counter. Like nginx's default {@code upstream}
     * balancing without weights.
     *
     * @return a round-robin selector
     */
    static BackendSelector roundRobin() {
        return Selectors.roundRobin();
    }

    /**
     * Returns a selector that hands out the route's candidates in turn in proportion to their
     * {@link Backend#weight()}, interleaved exactly like nginx's smooth weighted round robin: weights 5, 1 and 1 give
     * {@code a a b a c a a}, not five {@code a} in a row.
     *
     * <p>Pick it for backends of unequal size when sessions live about as long as each other; with all weights equal
     * it is {@link #roundRobin()}. For long-lived sessions whose lifetimes vary, {@link #leastConnections()} (which
     * also honours weights) keeps the load, not just the arrivals, in proportion. Thread-safe: a pick takes a short
     * lock on the route's instance; {@link #forRoute(String)} gives each route its own.
     *
     * @return a smooth weighted round-robin selector
     */
    static BackendSelector weightedRoundRobin() {
        return Selectors.weightedRoundRobin();
    }

    /**
     * Returns a selector that picks a candidate at random, with a probability proportional to its
     * {@link Backend#weight()}, like nginx's {@code random}.
     *
     * <p>No state and no coordination, so many proxy instances together spread like one. Over many sessions the
     * spread is even; over a few it is lumpy, which long-lived sessions keep. Prefer {@link #powerOfTwoChoices()},
     * which costs the same. Stateless and thread-safe; one shared instance.
     *
     * @return a random selector
     */
    static BackendSelector random() {
        return Selectors.random();
    }

    /**
     * Returns a selector that draws two distinct candidates at random, each with a probability proportional to its
     * {@link Backend#weight()}, and picks the one with fewer {@link BackendStatus#activeSessions() active sessions}
     * per unit of weight, like nginx's {@code random two least_conn}.
     *
     * <p>It balances load almost as well as {@link #leastConnections()}, yet a burst of concurrent handshakes does not
     * converge on one backend, and the most loaded backend is picked only when the other one drawn is as loaded.
     * Good when several proxy instances share the backends, since each sees only its own sessions. Stateless and
     * thread-safe; one shared instance.
     *
     * @return a power-of-two-choices selector
     */
    static BackendSelector powerOfTwoChoices() {
        return Selectors.powerOfTwoChoices();
    }

    /**
     * Returns a selector that picks the candidate with the fewest {@link BackendStatus#activeSessions() active
     * sessions} per unit of {@link Backend#weight()}, like nginx's {@code least_conn}. Ties go in turn, so a burst
     * of new sessions does not pile onto one backend: round-robin among tied backends of equal weight, smooth weighted
     * round robin among tied backends of unequal weights, so that sessions ending before the next one starts (every
     * count 0 at each pick) still land in proportion to the weights.
     *
     * <p>The usual best choice for long-lived sessions: it balances the sessions that are open, not those that were
     * opened, so a backend that was restarted, added or drained and brought back is refilled first. Sessions count
     * from the start of their backend handshake, so concurrent handshakes see each other. The counts are this proxy
     * instance's own: behind several proxy instances each balances its own share. Lock-free but for a tie among
     * unequal weights (a few additions under a lock); {@link #forRoute(String)} gives each route its own tie-breaking
     * turn.
     *
     * @return a least-connections selector
     */
    static BackendSelector leastConnections() {
        return Selectors.leastConnections();
    }

    /**
     * Returns a selector that keeps each client address on one backend, like nginx's {@code ip_hash}: rendezvous
     * hashing of the address over the candidates, weight-aware.
     *
     * <p>Pick it when a client's reconnects must find the backend that holds its state (a session cache, a
     * Socket.IO long-polling fallback) and the client has no better key. The key is
     * {@link HandshakeRequest#clientAddress()}, whole (nginx uses the first three octets of IPv4), with an IPv4-mapped
     * IPv6 address ({@code ::ffff:10.0.0.1}) taken as the IPv4 address. Clients behind one NAT or one forward proxy
     * share a backend; behind another proxy of yours, name it in {@link ProxyBuilder#trustedProxies(String...)} so
     * that the address is the client's from its {@code X-Forwarded-For}, or use {@link #consistentHash(Function)} with
     * a key you trust. Removing or losing one backend
     * moves only its own clients; they come back when it is up again. No state: every proxy instance with the same
     * backends picks the same backend for the same address. Stateless and thread-safe; one shared instance.
     *
     * @return an IP-hash selector
     */
    static BackendSelector ipHash() {
        return Selectors.ipHash();
    }

    /**
     * Returns a selector that keeps each key on one backend, like nginx's {@code hash $key consistent}, using
     * rendezvous (highest-random-weight) hashing of the key with each candidate's URI.
     *
     * <pre>{@code
     * .backendSelector(BackendSelector.consistentHash(HashKeys.header("X-User")))
     * }</pre>
     *
     * <p>Pick it for stickiness by user, room or document: every session of one key meets the same backend, and
     * removing (or losing) one of N backends moves only the keys it had, about 1/N of them, while the others stay
     * put. A backend wins keys in proportion to its {@link Backend#weight()}. The hash (xxHash64) has no seed and no
     * state, so every proxy instance with the same backend list picks the same backend for the same key: run as many
     * instances as you like behind an L4 balancer and stickiness holds. A request whose key is {@code null} or empty
     * is handed out by smooth weighted round robin, as {@link #weightedRoundRobin()} hands them out (nginx, too, gives
     * a request without a key to its weighted round robin): a client's first session, before the backend set its
     * cookie, goes to a backend in proportion to its weight. Thread-safe: a pick without a key takes that round robin's
     * short lock; {@link #forRoute(String)} gives each route its own.
     *
     * @param key computes the key of a request; called once per pick, on a Jetty thread, must not block. See
     *     {@link HashKeys} for the usual ones
     * @return a consistent-hash selector
     */
    static BackendSelector consistentHash(Function<? super SelectionContext, ? extends @Nullable String> key) {
        return Selectors.consistentHash(requireNonNull(key, "key"));
    }
}
